"""Bruker ``.brml`` (zip of XML: Experiment0/RawData*.xml with ``Datum`` rows) and binary ``.raw``
(versions 3 ``RAW1.01`` and 4 ``RAW4.00``; versions 1-2 are refused).

RAW limits: written from the published layout of the format and tested on files made to that
layout only (no instrument ``.raw`` sample was available); only the first range of a file with
several ranges is read, and only coupled 2theta/theta or detector scans are accepted.
"""

import re
import struct

import numpy as np

from ..errors import PatternError
from ..pattern import Pattern
from .base import Reader, numbered_members, open_zip, parse_xml, read_bytes, read_head, read_member, sum_scans

_RAW_DATA = re.compile(r"^Experiment\d+/RawData(\d+)\.xml$", re.IGNORECASE)


def _local(tag):
    return tag.rsplit("}", 1)[-1]


def _value(element, name):
    """Float of the ``Value`` attribute of the first descendant called ``name``."""
    for node in element.iter():
        if _local(node.tag) == name:
            try:
                return float(node.get("Value"))
            except (TypeError, ValueError):
                return None
    return None


def _is_float(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


class BrmlReader(Reader):
    name = "brml"
    extensions = (".brml",)
    description = "Bruker BRML (zip): Datum rows of Experiment0/RawData0.xml; wavelength from the tube"

    def read(self, path):
        source = str(path)
        with open_zip(path, "brml") as archive:
            names = numbered_members(archive, _RAW_DATA, source, "no Experiment*/RawData*.xml in the archive")
            roots = [parse_xml(read_member(archive, name, source), source, "brml") for name in names]
        metadata = {"instrument": "Bruker"}
        curves = [self._scan(root, source, metadata) for root in roots]
        two_theta, intensity = sum_scans(curves, source, metadata)
        root = roots[0]
        wavelength = _value(root, "WaveLengthAlpha1") or _value(root, "WaveLength")
        metadata.update(
            kalpha1=_value(root, "WaveLengthAlpha1"),
            kalpha2=_value(root, "WaveLengthAlpha2"),
            ka2_ratio=_value(root, "WaveLengthRatio"),
        )
        metadata["wavelength_source"] = "unknown" if wavelength is None else "file"
        return Pattern(two_theta, intensity, wavelength, source, metadata)

    @staticmethod
    def _scan(root, source, metadata):
        info = next((node for node in root.iter() if _local(node.tag) == "ScanInformation"), None)
        axes = []
        if info is not None:
            metadata["scan_name"] = info.get("ScanName")
            scan_axes = next((node for node in info if _local(node.tag) == "ScanAxes"), None)
            if scan_axes is not None:
                axes = [axis.get("AxisId") for axis in scan_axes if _local(axis.tag) == "ScanAxisInfo"]
        metadata["scan_axes"] = axes
        if axes and "TwoTheta" not in axes:
            raise PatternError(
                source, f"the scan moves {', '.join(axes)} but not 2theta (a rocking curve?): not a powder 2theta scan"
            )
        rows = [node.text for node in root.iter() if _local(node.tag) == "Datum"]
        if not rows:
            raise PatternError(source, "no Datum rows in the raw data")
        try:
            parsed = [[float(value) for value in (row or "").split(",")] for row in rows]
        except ValueError:
            bad = next(row for row in rows if not all(_is_float(value) for value in (row or "").split(",")))
            raise PatternError(source, f"a Datum row is not numbers: {(bad or '')[:60]!r}") from None
        widths = {len(row) for row in parsed}
        if len(widths) > 1:
            width = max(widths, key=[len(row) for row in parsed].count)
            parsed = [row for row in parsed if len(row) == width]
            metadata["dropped_rows"] = len(rows) - len(parsed)
        table = np.array(parsed)
        angle_column, count_column, factor_column = None, None, None
        for view in (node for node in root.iter() if _local(node.tag) == "RawDataView"):
            kind = view.get("{http://www.w3.org/2001/XMLSchema-instance}type", "")
            start = int(view.get("Start", -1))
            if kind == "VaryingRawDataView":
                fields = [node.get("FieldName") for node in view.iter() if _local(node.tag) == "FieldDefinitions"]
                if "TwoTheta" in fields:
                    angle_column = start + fields.index("TwoTheta")
            elif kind == "RecordedRawDataView" and count_column is None:
                count_column = start
            elif view.get("LogicName") == "AbsorptionFactor":
                factor_column = start
        if angle_column is None:  # older files: time, factor, then the scan axes, counts last
            angle_column = 2 + (axes.index("TwoTheta") if "TwoTheta" in axes else 0)
        if count_column is None:
            count_column = table.shape[1] - 1
        two_theta, counts = table[:, angle_column], table[:, count_column]
        if factor_column is not None and (table[:, factor_column] > 0).all():
            counts = counts * table[:, factor_column]
        if np.ptp(two_theta) == 0:
            raise PatternError(
                source, f"2theta is fixed at {two_theta[0]:g} deg (a rocking curve?): not a powder 2theta scan"
            )
        return two_theta, counts


# --- binary RAW ---------------------------------------------------------------------------

COUPLED_SCANS = ("locked coupled", "unlocked coupled", "detector scan", "coupled")


class BrukerRawReader(Reader):
    name = "bruker-raw"
    extensions = (".raw",)
    description = "Bruker/Siemens binary RAW v3 (RAW1.01) and v4 (RAW4.00): first range, coupled 2theta scans"

    def guess_can_open(self, path):
        try:
            head = read_head(path, 8)
        except OSError:
            return False
        return head.startswith((b"RAW1.01", b"RAW4.00", b"RAW2", b"RAW "))

    def read(self, path):
        source = str(path)
        data = read_bytes(path)
        metadata = {"instrument": "Bruker"}
        if data.startswith(b"RAW4.00"):
            two_theta, intensity, wavelength = _read_raw4(data, source, metadata)
        elif data.startswith(b"RAW1.01"):
            two_theta, intensity, wavelength = _read_raw3(data, source, metadata)
        elif data.startswith((b"RAW2", b"RAW ")):
            raise PatternError(source, "Bruker RAW version 1/2 is not supported: export the scan as .xy or .brml")
        else:
            raise PatternError(source, "not a Bruker RAW file (no RAW1.01/RAW4.00 signature)")
        metadata["wavelength_source"] = "unknown" if wavelength is None else "file"
        return Pattern(two_theta, intensity, wavelength, source, metadata)


def _unpack(fmt, data, offset):
    size = struct.calcsize(fmt)
    if offset + size > len(data):
        raise ValueError(f"file ends at byte {len(data)} inside a header (offset {offset})")
    return struct.unpack_from(fmt, data, offset)


def _text(data, offset, size):
    return data[offset : offset + size].split(b"\x00", 1)[0].decode("latin-1").strip()


def _plausible(value):
    return value if value is not None and 0.05 <= value <= 5.0 else None


def _read_raw4(data, source, metadata):
    """RAW4.00: file header, then typed segments (uint32 type, uint32 length) until a range
    header (type 0 or 160) followed by its own header, extra segments and the data."""
    offset = 61
    wavelength = None
    while True:
        (kind,) = _unpack("<I", data, offset)
        if kind in (0, 160):
            break
        (length,) = _unpack("<I", data, offset + 4)
        length = max(length, 8)
        if kind == 30:  # X-ray source: Ka mean, Ka1, Ka2, Kb, Ka2/Ka1 (float64) then the anode
            mean, ka1, ka2, kb, ratio = _unpack("<5d", data, offset + 8 + 64)
            metadata.update(kalpha1=ka1, kalpha2=ka2, ka2_ratio=ratio, anode=_text(data, offset + 8 + 64 + 44, 4))
            wavelength = _plausible(ka1) or _plausible(mean)
        offset += length
    scan_type = _text(data, offset + 32, 24)
    metadata["scan_type"] = scan_type
    if scan_type.lower() not in COUPLED_SCANS:
        raise PatternError(source, f"scan type {scan_type!r} is not a coupled 2theta scan")
    start, step = _unpack("<2d", data, offset + 72)
    (steps,) = _unpack("<I", data, offset + 88)
    (used_wavelength,) = _unpack("<d", data, offset + 112)
    datum_size, extra_header = _unpack("<2I", data, offset + 136)
    if wavelength is None:
        wavelength = _plausible(used_wavelength)
    datum_size = max(datum_size, 4)
    begin = offset + 160 + extra_header
    end = begin + steps * datum_size
    if steps == 0 or end > len(data):
        raise PatternError(source, f"could not read as bruker-raw: {steps} steps do not fit in the file")
    values = np.frombuffer(data[begin:end], dtype="<f4").reshape(steps, datum_size // 4)[:, 0]
    return start + step * np.arange(steps), values.astype(np.float64), wavelength


def _read_raw3(data, source, metadata):
    """RAW1.01: fixed file header (wavelengths at byte 616), ranges from byte 712."""
    mean, ka1, ka2, kb, ratio = _unpack("<5d", data, 616)
    metadata.update(kalpha1=ka1, kalpha2=ka2, ka2_ratio=ratio, anode=_text(data, 608, 4))
    wavelength = _plausible(ka1) or _plausible(mean)
    position = 712
    header_length, steps = _unpack("<2i", data, position)
    (start,) = _unpack("<d", data, position + 16)
    (step,) = _unpack("<d", data, position + 176)
    (supplementary,) = _unpack("<i", data, position + 256)
    begin = position + header_length + supplementary
    end = begin + 4 * steps
    if steps <= 0 or end > len(data):
        raise PatternError(source, f"could not read as bruker-raw: {steps} steps do not fit in the file")
    values = np.frombuffer(data[begin:end], dtype="<f4").astype(np.float64)
    return start + step * np.arange(steps), values, wavelength
