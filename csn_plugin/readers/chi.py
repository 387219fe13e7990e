"""Fit2D / pyFAI ``.chi`` files: 4 header lines (title, x-axis name, y-axis name, point count)."""

import re

import numpy as np

from ..errors import PatternError
from ..pattern import Pattern
from .base import Reader, number_table, read_text, wavelength_in_text


class ChiReader(Reader):
    name = "chi"
    extensions = (".chi",)
    description = "Fit2D/pyFAI .chi: title, axis names, point count, then 2theta intensity [esd]"

    def read(self, path):
        source = str(path)
        lines = read_text(path).splitlines()
        if len(lines) < 5:
            raise PatternError(source, "too short for a .chi file (4 header lines, then data)")
        title, x_name, y_name, count_line = (line.strip() for line in lines[:4])
        x_lower = x_name.lower()
        to_degrees = False
        if re.search(r"2[- ]?theta|two[- ]?theta|2th", x_lower):
            to_degrees = "rad" in x_lower
        elif re.search(r"\bq\b|q[ _(]|1/nm|1/a|nm\^-1|radial|mm\b|\bd\b", x_lower):
            raise PatternError(source, f"the x axis is {x_name!r}, not 2theta: integrate to 2theta (deg) instead")
        try:
            expected = int(float(count_line.split()[0]))
        except (ValueError, IndexError):
            raise PatternError(source, f"line 4 should be the number of points, not {count_line[:40]!r}") from None
        rows = []
        for number, line in enumerate(lines[4:], 5):
            tokens = line.split()
            if not tokens:
                continue
            try:
                rows.append([float(token) for token in tokens])
            except ValueError:
                raise PatternError(source, f"line {number} is not numbers: {line.strip()[:60]!r}") from None
        data = number_table(rows, source, "no data after the 4 header lines",
                            "the data need at least two columns (2theta, intensity)")
        metadata = {"title": title, "x_axis": x_name, "y_axis": y_name}
        if len(data) != expected:
            metadata["declared_points"] = expected
        two_theta = np.degrees(data[:, 0]) if to_degrees else data[:, 0]
        if to_degrees:
            metadata["converted_from_radians"] = True
        wavelength = wavelength_in_text(title)
        metadata["wavelength_source"] = "unknown" if wavelength is None else "file"
        esd = data[:, 2] if data.shape[1] >= 3 else None
        return Pattern(two_theta, data[:, 1], wavelength, source, metadata, esd)
