"""GSAS (old-format) powder data, constant wavelength: ``BANK ... CONST`` with STD, ESD, FXY or
FXYE data; angles in centidegrees. Time-of-flight and energy-dispersive banks are refused."""

import numpy as np

from ..errors import PatternError
from ..pattern import Pattern
from .base import Reader, read_head, read_text, wavelength_in_text


def _field(text):
    text = text.strip()
    return float(text) if text else 0.0


class GsasReader(Reader):
    name = "gsas"
    extensions = (".gsa", ".gsas", ".fxye", ".gss", ".gda")
    description = "GSAS powder data (BANK line, CONST binning, STD/ESD/FXY/FXYE); angles in centidegrees"

    def guess_can_open(self, path):
        if super().guess_can_open(path):
            return True
        try:
            head = read_head(path, 2048).decode("latin-1")
        except OSError:
            return False
        return any(line.startswith("BANK ") for line in head.splitlines()[1:])

    def read(self, path):
        source = str(path)
        lines = read_text(path).splitlines()
        banks = [index for index, line in enumerate(lines) if line.startswith("BANK")]
        if not banks:
            raise PatternError(source, "no BANK line: not a GSAS powder data file")
        start_line = banks[0]
        fields = lines[start_line].split()
        if len(fields) < 5:
            raise PatternError(source, f"BANK line too short: {lines[start_line].strip()!r}")
        channels = int(fields[2])
        binning = fields[4].upper()
        kind = fields[-1].upper() if len(fields) > 5 else "STD"
        if binning in ("TIME_MAP", "RALF", "SLOG") or kind == "ALT":
            raise PatternError(source, f"time-of-flight data ({binning} {kind}), not a 2theta scan")
        if "EDS" in binning:
            raise PatternError(source, "energy-dispersive data, not a 2theta scan")
        if binning not in ("CONST", "CONS", "FXYE", "FXY") and kind not in ("FXYE", "FXY"):
            raise PatternError(source, f"unsupported GSAS binning {binning!r} (only CONST)")
        end_line = banks[1] if len(banks) > 1 else len(lines)
        body = [line for line in lines[start_line + 1 : end_line] if line.strip() and not line.startswith("#")]
        esd = None
        if kind in ("FXYE", "FXY") or binning in ("FXYE", "FXY"):
            table = np.array([[float(value) for value in line.split()[:3]] for line in body])
            two_theta = table[:, 0] / 100.0
            intensity = table[:, 1]
            esd = table[:, 2] if table.shape[1] >= 3 else None
        else:
            start, step = float(fields[5]) / 100.0, float(fields[6]) / 100.0
            if kind == "ESD":
                pairs = []
                for line in body:
                    for offset in range(0, min(len(line.rstrip("\n")), 80), 16):
                        chunk = line[offset : offset + 16]
                        if chunk.strip():
                            pairs.append((_field(chunk[:8]), _field(chunk[8:16])))
                table = np.array(pairs)
                intensity, esd = table[:, 0], table[:, 1]
            else:  # STD: 10 fields of (I2 counter count, F6 value)
                values = []
                for line in body:
                    for offset in range(0, min(len(line.rstrip("\n")), 80), 8):
                        chunk = line[offset : offset + 8]
                        if chunk.strip():
                            values.append(_field(chunk[2:8]))
                intensity = np.array(values)
            intensity = intensity[:channels]
            esd = None if esd is None else esd[:channels]
            two_theta = start + step * np.arange(len(intensity))
        metadata = {"title": lines[0].strip(), "bank": fields[1], "data_type": kind, "banks": len(banks)}
        if len(intensity) != channels:
            metadata["declared_points"] = channels
        header = "\n".join(lines[:start_line])
        wavelength = wavelength_in_text(header)
        metadata["wavelength_source"] = "unknown" if wavelength is None else "file"
        return Pattern(two_theta, intensity, wavelength, source, metadata, esd)
