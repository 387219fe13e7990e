"""Powder CIF (pdCIF): the measured profile of a Rietveld CIF.

The CIF is parsed by gemmi's CIF parser (``gemmi.cif``, a maintained, linear-time C++ parser of
CIF 1.1 and 2.0); a file gemmi's strict grammar refuses (an unclosed quote, a stray
``data_`` name, ...) is parsed again by the tolerant tokenizer below (quotes, semicolon text
fields, loops, several data blocks), which is also linear in the file's length. The block with a
measured/processed profile is used; the wavelength comes from that block or, failing that, from
another block of the file that is not a simulated pattern.
"""

import math
import re

import numpy as np

from ..errors import PatternError
from ..pattern import Pattern
from .base import Reader, number_and_esd, read_head, read_text

_TOKEN = re.compile(r"""'(?:[^']|'(?=\S))*'(?=\s|$)|"(?:[^"]|"(?=\S))*"(?=\s|$)|#.*|\S+""")

# Intensities, best first (measured before processed; never calculated).
INTENSITY_TAGS = (
    "_pd_meas_counts_total",
    "_pd_meas_intensity_total",
    "_pd_proc_intensity_total",
    "_pd_proc_intensity_net",
    "_pd_meas_counts_net",
    "_pd_meas_intensity_net",
)
ANGLE_TAGS = ("_pd_meas_2theta_scan", "_pd_proc_2theta_corrected", "_pd_meas_angle_2theta", "_pd_proc_2theta")
NOT_ANGLE_TAGS = ("_pd_meas_time_of_flight", "_pd_proc_d_spacing", "_pd_proc_energy_incident", "_pd_proc_recip_len_q")
WAVELENGTH_TAGS = ("_diffrn_radiation_wavelength", "_pd_proc_wavelength", "_diffrn_radiation_wavelength_wavelength")


class CifBlock:
    """One data block: ``items`` (tag -> raw value) and ``loops`` (list of (tags, rows))."""

    def __init__(self, name):
        self.name = name
        self.items = {}
        self.loops = []

    def loop_with(self, tag):
        for tags, rows in self.loops:
            if tag in tags:
                return tags, rows
        return None

    def values(self, tag):
        """All values of ``tag``: the item, else the loop column (raw strings)."""
        if tag in self.items:
            return [self.items[tag]]
        found = self.loop_with(tag)
        if found is None:
            return []
        tags, rows = found
        column = tags.index(tag)
        return [row[column] for row in rows]

    def has_tag(self, tag):
        return tag in self.items or self.loop_with(tag) is not None


def _tokens(text):
    """(token, is_value_only) pairs; quoted strings and text fields are always values."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith(";"):
            field = [line[1:]]
            index += 1
            while index < len(lines) and not lines[index].startswith(";"):
                field.append(lines[index])
                index += 1
            index += 1
            yield "\n".join(field), True
            continue
        for match in _TOKEN.finditer(line):
            token = match.group(0)
            if token[0] == "#":
                break
            if token[0] in "'\"" and len(token) >= 2:
                yield token[1:-1], True
            else:
                yield token, False
        index += 1


def parse_cif(text):
    """Parse CIF text into a list of :class:`CifBlock` (lower-case tags, unquoted values):
    gemmi when it is installed and accepts the text, else :func:`parse_cif_tolerant`."""
    try:
        from gemmi import cif as gemmi_cif
    except ImportError:  # pragma: no cover - gemmi is a declared dependency
        return parse_cif_tolerant(text)
    try:
        document = gemmi_cif.read_string(text)
    except (RuntimeError, ValueError):
        return parse_cif_tolerant(text)
    blocks = []

    def unquote(value):  # gemmi keeps quotes; '?' and '.' (unknown, inapplicable) stay as written
        return value if value in ("?", ".") else gemmi_cif.as_string(value)

    for gemmi_block in document:
        block = CifBlock(gemmi_block.name)
        for item in gemmi_block:
            if item.pair is not None:
                tag, value = item.pair
                block.items.setdefault(tag.lower(), unquote(value))
            elif item.loop is not None:
                loop = item.loop
                width = loop.width()
                values = [unquote(value) for value in loop.values]
                rows = [values[start : start + width] for start in range(0, len(values) - width + 1, width)]
                block.loops.append(([tag.lower() for tag in loop.tags], rows))
        blocks.append(block)
    return blocks


def parse_cif_tolerant(text):
    """Parse CIF text into a list of :class:`CifBlock` (lower-case tags) with the tolerant,
    hand-written tokenizer (linear time: one regex pass per line, no backtracking across lines)."""
    blocks = []
    block = None
    loop_tags = None
    loop_values = None
    pending_tag = None

    def close_loop():
        nonlocal loop_tags, loop_values
        if loop_tags is not None and block is not None:
            width = len(loop_tags)
            rows = [loop_values[start : start + width] for start in range(0, len(loop_values) - width + 1, width)]
            block.loops.append((loop_tags, rows))
        loop_tags, loop_values = None, None

    for token, value_only in _tokens(text):
        lower = token.lower()
        if not value_only and lower.startswith("data_"):
            close_loop()
            pending_tag = None
            block = CifBlock(token[5:])
            blocks.append(block)
            continue
        if block is None:
            continue
        if not value_only and (lower == "loop_" or lower.startswith("save_") or lower in ("global_", "stop_")):
            close_loop()
            pending_tag = None
            if lower == "loop_":
                loop_tags, loop_values = [], []
            continue
        if not value_only and token.startswith("_"):
            if loop_tags is not None and not loop_values:
                loop_tags.append(lower)
                continue
            close_loop()
            pending_tag = lower
            continue
        if pending_tag is not None:
            block.items[pending_tag] = token
            pending_tag = None
        elif loop_tags is not None:
            loop_values.append(token)
    close_loop()
    return blocks


def _number(raw):
    try:
        return number_and_esd(raw)
    except ValueError:
        return math.nan, math.nan


def _wavelength(block):
    """The first plausible wavelength in a block (angstrom), or None."""
    for tag in WAVELENGTH_TAGS:
        for raw in block.values(tag):
            value = _number(raw)[0]
            if math.isfinite(value) and 0.05 <= value <= 5.0:
                return value
    return None


def _is_simulated(block):
    """A block holding only a calculated pattern (no measured profile)."""
    has_calc = any(tag.startswith("_pd_calc_intensity") for tags, _ in block.loops for tag in tags)
    return has_calc and _profile_tag(block) is None


def _profile_tag(block):
    for tag in INTENSITY_TAGS:
        if block.loop_with(tag) is not None:
            return tag
    return None


class PowderCifReader(Reader):
    name = "pdcif"
    extensions = (".cif", ".pdcif", ".rtv")
    description = "powder CIF: _pd_meas_*/_pd_proc_* profile loops; wavelength from _diffrn_radiation_wavelength"

    def guess_can_open(self, path):
        if not super().guess_can_open(path):
            return False
        try:
            head = read_head(path, 65536).decode("latin-1").lower()
        except OSError:
            return False
        return "data_" in head

    def read(self, path):
        source = str(path)
        blocks = parse_cif(read_text(path))
        if not blocks:
            raise PatternError(source, "no CIF data block (data_...)")
        profiles = [block for block in blocks if _profile_tag(block) is not None]
        if not profiles:
            if any(block.has_tag(tag) for block in blocks for tag in NOT_ANGLE_TAGS):
                raise PatternError(source, "the profile is not on a 2theta axis (time-of-flight, d or Q)")
            if any(_is_simulated(block) for block in blocks):
                raise PatternError(source, "the CIF holds only a calculated pattern (_pd_calc_*), no measured profile")
            raise PatternError(source, "no powder profile (_pd_meas_* or _pd_proc_* intensities): a structure-only CIF?")
        block = profiles[0]
        tag = _profile_tag(block)
        tags, rows = block.loop_with(tag)
        column = tags.index(tag)
        parsed = np.array([_number(row[column]) for row in rows], dtype=np.float64).reshape(-1, 2)
        intensity, esd = parsed[:, 0], parsed[:, 1]
        metadata = {"data_block": block.name, "intensity_tag": tag, "data_blocks": len(blocks)}
        angle_tag = next((name for name in ANGLE_TAGS if name in tags), None)
        if angle_tag is not None:
            angle_column = tags.index(angle_tag)
            two_theta = np.array([_number(row[angle_column])[0] for row in rows], dtype=np.float64)
            metadata["angle_tag"] = angle_tag
        else:
            if any(name in tags for name in NOT_ANGLE_TAGS):
                raise PatternError(source, "the profile is not on a 2theta axis (time-of-flight, d or Q)")
            two_theta = self._angles_from_range(block, tag, len(intensity), source, metadata)
        keep = np.isfinite(two_theta) & np.isfinite(intensity)
        if not keep.all():
            metadata["dropped_points"] = int((~keep).sum())
            two_theta, intensity, esd = two_theta[keep], intensity[keep], esd[keep]
        esd = esd if np.isfinite(esd).all() and len(esd) else None

        wavelength = _wavelength(block)
        if wavelength is None:
            for other in blocks:
                if other is not block and not _is_simulated(other) and "simulated" not in other.name.lower():
                    wavelength = _wavelength(other)
                    if wavelength is not None:
                        metadata["wavelength_block"] = other.name
                        break
        probe = block.items.get("_diffrn_radiation_probe")
        if probe:
            metadata["probe"] = probe
        metadata["wavelength_source"] = "unknown" if wavelength is None else "file"
        return Pattern(two_theta, intensity, wavelength, source, metadata, esd)

    @staticmethod
    def _angles_from_range(block, intensity_tag, count, source, metadata):
        """2theta from _pd_{meas,proc}_2theta_range_min/max/inc (same category as the intensities first)."""
        first = "_pd_meas" if intensity_tag.startswith("_pd_meas") else "_pd_proc"
        second = "_pd_proc" if first == "_pd_meas" else "_pd_meas"
        for prefix in (first, second):
            low = _number(block.items.get(f"{prefix}_2theta_range_min", "?"))[0]
            high = _number(block.items.get(f"{prefix}_2theta_range_max", "?"))[0]
            step = _number(block.items.get(f"{prefix}_2theta_range_inc", "?"))[0]
            if math.isfinite(low) and math.isfinite(step) and step != 0:
                metadata["angle_tag"] = f"{prefix}_2theta_range_min/max/inc"
                if math.isfinite(high) and abs(low + step * (count - 1) - high) > abs(step):
                    metadata["range_mismatch"] = (
                        f"{count} points from {low:g} by {step:g} end at {low + step * (count - 1):g}, "
                        f"not at {high:g}"
                    )
                return low + step * np.arange(count)
        raise PatternError(
            source, f"the intensities ({intensity_tag}) have no 2theta column and no _pd_*_2theta_range_min/inc"
        )
