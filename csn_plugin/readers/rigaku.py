"""Rigaku ``.rasx`` (zip: Data0/Profile0.txt + MesurementConditions0.xml) and ``.ras`` (text with
``*RAS_HEADER_START`` / ``*RAS_INT_START`` blocks). Profile rows are ``angle intensity
attenuation``; the intensity is multiplied by the attenuation coefficient."""

import re
import warnings

from ..errors import PatternError, PatternWarning, display_name
from ..pattern import Pattern
from .base import Reader, decode, number_table, numbered_members, open_zip, parse_xml, read_bytes, read_head, read_member, sum_scans

_PROFILE = re.compile(r"^Data(\d+)/Profile(\d+)\.txt$", re.IGNORECASE)


def _is_two_theta_axis(name):
    """True for a scan axis that moves 2theta (TwoTheta, TwoThetaOmega, 2-Theta/Omega, ...)."""
    compact = re.sub(r"[^a-z0-9]", "", (name or "").lower())
    return "2theta" in compact or "twotheta" in compact or compact in ("2t", "2th", "tth")


def _profile(text, source):
    """(angles, intensities) from profile rows; an attenuation column multiplies the intensity."""
    rows = []
    for line in text.splitlines():
        tokens = line.replace(",", " ").split()
        if not tokens or line.lstrip().startswith("*"):
            continue
        try:
            rows.append([float(token) for token in tokens[:3]])
        except ValueError:
            raise PatternError(source, f"profile line is not numbers: {line.strip()[:60]!r}") from None
    if len(rows) > 2 and len(rows[-1]) < len(rows[-2]) == min(len(row) for row in rows[:-1]):
        rows.pop()  # a last row cut short: the others keep their attenuation column
    table = number_table(rows, source, "the profile holds no data", "profile rows need an angle and an intensity")
    intensity = table[:, 1] * table[:, 2] if table.shape[1] >= 3 else table[:, 1]
    return table[:, 0], intensity


def _refuse_axis(axis, source):
    if axis and not _is_two_theta_axis(axis):
        raise PatternError(
            source, f"the scan axis is {axis!r} (2theta fixed: a rocking curve or omega scan): not a powder 2theta scan"
        )


def _ras_sections(text):
    """(header of the first scan {key: value}, [data blocks as lists of lines], the lines of a
    last block without *RAS_INT_END or None); one pass over the lines."""
    header, blocks, current = {}, [], None
    for line in text.splitlines():
        if line.startswith("*RAS_INT_START"):
            current = []
        elif line.startswith("*RAS_INT_END"):
            if current is not None:
                blocks.append(current)
            current = None
        elif current is not None:
            current.append(line)
        elif not blocks and line.startswith("*"):
            parts = line[1:].split(None, 1)
            if parts and parts[0] not in header:
                header[parts[0]] = (parts[1] if len(parts) > 1 else "").strip().strip('"').strip()
    return header, blocks, current


def ras_header(text) -> dict:
    """``*KEY "value"`` lines of a RAS header (before the first data block) -> {KEY: value}."""
    return _ras_sections(text)[0]


def ras_wavelength(header: dict):
    """The K-alpha1 wavelength (angstrom) of a RAS header, honouring its nm unit flag; None when
    the header records none."""
    try:
        wavelength = float(header.get("HW_XG_WAVE_LENGTH_ALPHA1", ""))
    except ValueError:
        return None
    if header.get("HW_XG_WAVE_LENGTH_UNIT", "").lower().startswith("nm"):
        wavelength *= 10.0
    return wavelength


class RasxReader(Reader):
    name = "rasx"
    extensions = (".rasx",)
    description = "Rigaku RASX (zip): Data0/Profile0.txt; wavelength from MesurementConditions0.xml"

    def read(self, path):
        source = str(path)
        with open_zip(path, "rasx") as archive:
            profiles = numbered_members(archive, _PROFILE, source, "no Data*/Profile*.txt in the archive")
            folder = profiles[0].split("/")[0]
            conditions = [name for name in archive.namelist() if name.startswith(folder + "/") and name.lower().endswith(".xml")]
            metadata = {"instrument": "Rigaku"}
            wavelength, axis = None, None
            if conditions:
                wavelength, axis = self._conditions(read_member(archive, conditions[0], source), metadata, source)
            _refuse_axis(axis, source)
            curves = [_profile(decode(read_member(archive, name, source)), source) for name in profiles]
        two_theta, intensity = sum_scans(curves, source, metadata)
        metadata["wavelength_source"] = "unknown" if wavelength is None else "file"
        return Pattern(two_theta, intensity, wavelength, source, metadata)

    @staticmethod
    def _conditions(data, metadata, source):
        root = parse_xml(decode(data).encode("utf-8"), source, "rasx")
        generator = root.find(".//XrayGenerator")
        wavelength = None
        if generator is not None:
            def number(tag):
                try:
                    return float(generator.findtext(tag))
                except (TypeError, ValueError):
                    return None

            wave_type = (generator.findtext("WaveType") or "").strip()
            metadata.update(
                target=generator.findtext("TargetName"),
                wave_type=wave_type,
                kalpha1=number("WavelengthKalpha1"),
                kalpha2=number("WavelengthKalpha2"),
            )
            wavelength = number("WavelengthKbeta") if wave_type.lower().startswith("kb") else number("WavelengthKalpha1")
        axis = root.findtext(".//ScanInformation/AxisName")
        metadata["scan_axis"] = axis
        metadata["system"] = root.findtext(".//GeneralInformation/SystemName")
        return wavelength, axis


class RasReader(Reader):
    name = "ras"
    extensions = (".ras",)
    description = "Rigaku RAS text: *RAS_INT_START data blocks; wavelength *HW_XG_WAVE_LENGTH_ALPHA1"

    def guess_can_open(self, path):
        if super().guess_can_open(path):
            return True
        try:
            return read_head(path, 64).lstrip(b"\xef\xbb\xbf").startswith(b"*RAS_DATA_START")
        except OSError:
            return False

    def read(self, path):
        source = str(path)
        text = read_bytes(path).decode("latin-1")  # headers are ASCII; comments may be Shift-JIS
        if "*RAS_INT_START" not in text:
            raise PatternError(source, "no *RAS_INT_START data block: not a Rigaku RAS file")
        header, blocks, unterminated = _ras_sections(text)
        metadata = {"instrument": "Rigaku", "scan_axis": header.get("MEAS_SCAN_AXIS_X")}
        _refuse_axis(header.get("MEAS_SCAN_AXIS_X"), source)
        if unterminated is not None:
            if not any(line.strip() for line in unterminated):
                raise PatternError(source, "the last *RAS_INT_START block is empty and has no *RAS_INT_END: the file is cut")
            blocks.append(unterminated)
            note = (
                f"no *RAS_INT_END after the last data block: the file may be truncated; "
                f"read the {sum(1 for line in unterminated if line.strip())} rows it holds"
            )
            metadata.setdefault("warnings", []).append(note)
            warnings.warn(f"{display_name(source)}: {note}", PatternWarning, stacklevel=2)
        curves = [_profile("\n".join(block), source) for block in blocks]
        two_theta, intensity = sum_scans(curves, source, metadata)
        wavelength = ras_wavelength(header)
        if wavelength is not None:
            try:
                metadata["kalpha2"] = float(header.get("HW_XG_WAVE_LENGTH_ALPHA2", "nan"))
            except ValueError:
                pass
        metadata["target"] = header.get("HW_XG_TARGET_NAME")
        metadata["wavelength_source"] = "unknown" if wavelength is None else "file"
        return Pattern(two_theta, intensity, wavelength, source, metadata)
