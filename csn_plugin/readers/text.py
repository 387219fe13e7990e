"""Column text files: .xy, .xye, .txt, .dat, .csv (2theta, intensity[, esd, ...])."""

import re
import warnings
from collections import Counter

import numpy as np

from ..errors import PatternError, PatternWarning, display_name
from ..pattern import Pattern
from .base import Reader, head_text, read_text, wavelength_in_text

COMMENT_PREFIXES = ("#", "!", ";", "%", "//")
SAMPLE_LINES = 200


def _split_whitespace(line):
    return line.split()


def _split_comma(line):
    # str.split then strip: linear (a regex like r"\s*,\s*" retries every run of blanks: quadratic)
    return [token.strip() for token in line.split(",") if token.strip()]


def _split_semicolon(line):
    return [token.strip() for token in line.split(";") if token.strip()]


def _decimal_comma(split):
    return lambda line: [token.replace(",", ".") for token in split(line)]


# (name, decimal mark, splitter); on a tie the earlier one wins.
DIALECTS = (
    ("whitespace", ".", _split_whitespace),
    ("comma", ".", _split_comma),
    ("semicolon", ".", _split_semicolon),
    ("semicolon", ",", _decimal_comma(_split_semicolon)),
    ("whitespace", ",", _decimal_comma(_split_whitespace)),
    ("whitespace", "thousands", lambda line: [token.replace(",", "") for token in line.split()]),
)

# First-column names that say the x axis is not 2theta in degrees.
_NOT_TWO_THETA = re.compile(r"^(q\b|q[_(\[]|d\b|d[-_ ]?spacing|d[_(\[]|r_mm|chi\b|tof\b|time)", re.IGNORECASE)
_RADIANS = re.compile(r"^(2th|tth|2theta|two_?theta)[_( \[]*rad", re.IGNORECASE)
_ESD_NAME = re.compile(r"^(esd|e?sigma|sig|s\.?u\.?|err|error|uncertainty|dy|e)\b", re.IGNORECASE)


def _numbers(split, line):
    """The numbers on a data line, or None when it is not one (fewer than 2 numbers or words)."""
    if "#" in line:
        line = line.split("#", 1)[0]
    tokens = split(line)
    if len(tokens) < 2:
        return None
    try:
        return [float(token) for token in tokens]
    except ValueError:
        return None


def _is_comment(stripped):
    return stripped.startswith(COMMENT_PREFIXES)


def detect_dialect(lines):
    """The (name, decimal, split) dialect under which most candidate lines hold >= 2 numbers."""
    candidates = [line for line in lines if line.strip() and not _is_comment(line.strip())]
    if len(candidates) > SAMPLE_LINES:  # skip the header region: sample from the middle
        middle = len(candidates) // 2
        candidates = candidates[middle - SAMPLE_LINES // 2 : middle + SAMPLE_LINES // 2]
    best, best_score = None, 0
    sample = "\n".join(candidates)
    has_comma, has_semicolon = "," in sample, ";" in sample
    for dialect in DIALECTS:
        name, decimal = dialect[0], dialect[1]
        if (name == "comma" or decimal in (",", "thousands")) and not has_comma:
            continue  # nothing for this dialect to split or convert: it scores as plain whitespace at best
        if name == "semicolon" and not has_semicolon:
            continue
        rows = [_numbers(dialect[2], line) for line in candidates]
        counts = Counter(len(row) for row in rows if row is not None)
        score = counts.most_common(1)[0][1] if counts else 0
        if score > best_score:
            best, best_score = dialect, score
    return best, best_score


_NUMBER_LIKE = re.compile(r"[-+0-9.,eEdD]+")
_THOUSANDS = re.compile(r"[-+]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?")


def _whitespace_commas(lines, dialect):
    """Whitespace-delimited columns with commas in them: per column, thousands separators
    (``1,834``) or decimal commas (``12,5``), decided by the whole column (every line of it):
    a column is read with thousands separators when every comma token in it is grouped in threes
    (``1,834``, ``12,345,678.5``) and decimal points are used in the file (``45.00 1,834``), or a
    token holds two or more commas; otherwise its commas are decimal commas.
    Returns (dialect, thousands columns)."""
    if not any("," in line and not _is_comment(line.strip()) for line in lines):  # a comma in a comment only
        return ("whitespace", ".", _split_whitespace), []
    tokens_of = []
    point_used = False
    for line in lines:
        stripped = line.strip()
        if not stripped or _is_comment(stripped):
            continue
        tokens = stripped.split("#", 1)[0].split()
        if len(tokens) < 2 or not all(_NUMBER_LIKE.fullmatch(token) for token in tokens):
            continue
        tokens_of.append(tokens)
        if not point_used:
            point_used = any("." in token and "," not in token for token in tokens)
    if not tokens_of:
        return dialect, []
    width = max(len(tokens) for tokens in tokens_of)
    grouped = [True] * width
    any_comma = [False] * width
    multiple = [False] * width
    for tokens in tokens_of:
        for column, token in enumerate(tokens):
            if "," in token:
                any_comma[column] = True
                if not _THOUSANDS.fullmatch(token):
                    grouped[column] = False
                elif token.count(",") > 1 or "." in token:
                    multiple[column] = True
    thousands = [
        column for column in range(width)
        if any_comma[column] and grouped[column] and (point_used or multiple[column])
    ]
    if not any(any_comma):
        return ("whitespace", ".", _split_whitespace), []
    if not thousands:
        return ("whitespace", ",", _decimal_comma(_split_whitespace)), []
    chosen = frozenset(thousands)

    def split(line):
        return [
            token.replace(",", "") if column in chosen else token.replace(",", ".")
            for column, token in enumerate(line.split())
        ]

    return ("whitespace", "thousands", split), thousands


def _cut_line_after(lines, last_data):
    """(line number, text) of a damaged line right after the last data line (the file cut
    mid-row: '45.12' or '45.12 1.2e+'), when nothing but blank lines follows it; else None."""
    if last_data is None:
        return None
    rest = [(number, line.strip()) for number, line in enumerate(lines[last_data:], last_data + 1) if line.strip()]
    if len(rest) != 1:
        return None
    number, text = rest[0]
    if _is_comment(text) or not all(_NUMBER_LIKE.fullmatch(token) for token in text.replace(";", " ").split()):
        return None
    return number, text


def check_index_column(two_theta, source, columns):
    """Refuse a first column that counts points (0, 1, 2, ... or 1, 2, 3, ...) instead of 2theta."""
    if len(two_theta) < 3 or two_theta[0] not in (0.0, 1.0):
        return
    steps = np.diff(two_theta)
    if np.all(steps == 1.0):
        hint = " (columns 2 and 3 may be 2theta and intensity: remove the first column)" if columns >= 3 else ""
        raise PatternError(
            source,
            f"the first column counts the points ({two_theta[0]:g}, {two_theta[1]:g}, {two_theta[2]:g}, ... "
            f"{two_theta[-1]:g}), it is not 2theta in degrees{hint}",
        )


def d_spacing_note(x):
    """A warning text when an unlabelled first column looks like d-spacings (decreasing, within
    0.3-30 A), else None. (Q-like ranges are judged against the wavelength by read_pattern.)"""
    if len(x) < 3:
        return None
    first, last = float(x[0]), float(x[-1])
    if first > last and 0.3 <= last and first <= 30.0 and first / last >= 1.5:
        return (
            f"the first column decreases from {first:g} to {last:g}: it looks like d-spacings (A), "
            "not 2theta in degrees; if so, convert it to 2theta"
        )
    return None


def warn_pattern(pattern, note):
    """Record a warning about a pattern (metadata["warnings"]) and issue it as a PatternWarning."""
    message = f"{display_name(pattern.source)}: {note}" if pattern.source is not None else note
    pattern.metadata.setdefault("warnings", []).append(note)
    warnings.warn(message, PatternWarning, stacklevel=3)


class TextReader(Reader):
    name = "text"
    extensions = (".xy", ".xye", ".txt", ".dat", ".csv", ".tsv", ".asc", ".x_y")
    description = (
        "columns of numbers: 2theta (deg), intensity, optional esd; whitespace, comma, semicolon or "
        "tab delimited; comment lines (# ! ; %) and word headers skipped; decimal commas"
    )

    def sniff(self, path) -> bool:
        """True when the start of the file is text holding lines of >= 2 numbers (any extension)."""
        try:
            lines = head_text(path).splitlines()  # a bounded head, whatever the file's size
        except OSError:
            return False
        if not lines:
            return False
        _, score = detect_dialect(lines)
        return score >= 3

    def read(self, path):
        source = str(path)
        lines = read_text(path).splitlines()
        dialect, score = detect_dialect(lines)
        if dialect is None or score == 0:
            raise PatternError(source, "no lines with two or more columns of numbers")
        if dialect[0] == "whitespace":
            dialect, thousands = _whitespace_commas(lines, dialect)
        else:
            thousands = []
        dialect_name, decimal, split = dialect
        notes = []
        data, header, (first_row_line, last_data) = self._fast_table(lines, dialect)
        if data is None:
            data, header, (first_row_line, last_data) = self._slow_table(lines, split, source, notes)
        cut = None if notes else _cut_line_after(lines, last_data)
        if cut is not None:
            number, text = cut
            notes.append(
                f"line {number} is cut ({text[:40]!r}): read the data up to line {last_data}, the file may be truncated"
            )
        columns = data.shape[1]
        names = self._column_names(header, split, columns)
        two_theta, intensity = data[:, 0], data[:, 1]
        metadata = {
            "columns": columns,
            "delimiter": "tab/space" if dialect_name == "whitespace" else dialect_name,
            "decimal": decimal,
            "data_lines": (first_row_line, last_data),
        }
        if thousands:
            metadata["thousands_separator_columns"] = [column + 1 for column in thousands]
        if header:
            metadata["header"] = header[:20]
        if names:
            metadata["column_names"] = names
            if _RADIANS.match(names[0]):
                two_theta = np.degrees(two_theta)
                metadata["converted_from_radians"] = True
            elif _NOT_TWO_THETA.match(names[0]):
                raise PatternError(
                    source, f"the first column is {names[0]!r}, not 2theta in degrees: convert it to 2theta first"
                )
        check_index_column(two_theta, source, columns)
        if not names:
            metadata["unlabelled_axis"] = True
            note = d_spacing_note(two_theta)
            if note:
                notes.append(note)
        esd = None
        if columns >= 3:
            third = data[:, 2]
            named_esd = bool(names) and len(names) >= 3 and _ESD_NAME.match(names[2])
            small = (third >= 0).all() and np.median(third) <= 0.5 * max(np.median(np.abs(intensity)), 1e-300)
            if named_esd or (small and not names):
                esd = third
                metadata["esd_column"] = 3
            else:
                metadata["ignored_columns"] = list(range(3, columns + 1))
        wavelength = wavelength_in_text("\n".join(header))
        metadata["wavelength_source"] = "unknown" if wavelength is None else "file"
        pattern = Pattern(two_theta, intensity, wavelength, source, metadata, esd)
        for note in notes:
            warn_pattern(pattern, note)
        return pattern

    @staticmethod
    def _data_bounds(lines, split):
        """Indices of the first and last lines that hold >= 2 numbers."""
        def is_data(line):
            stripped = line.strip()
            return bool(stripped) and not _is_comment(stripped) and _numbers(split, stripped) is not None

        first = next(index for index, line in enumerate(lines) if is_data(line))
        last = next(index for index in range(len(lines) - 1, -1, -1) if is_data(lines[index]))
        return first, last

    def _fast_table(self, lines, dialect):
        """numpy's C parser on the data region; (None, ...) when anything is irregular."""
        name, decimal, split = dialect
        first, last = self._data_bounds(lines, split)
        body = [line for line in lines[first : last + 1] if line.strip() and not _is_comment(line.strip())]
        header = [line.strip() for line in lines[:first] if line.strip()]
        if any("#" in line for line in body):
            return None, header, (first + 1, last + 1)
        if decimal in (",", "thousands"):
            body = [" ".join(split(line)) for line in body]
        delimiter = {"whitespace": None, "comma": ",", "semicolon": ";"}[name]
        if decimal in (",", "thousands") and name == "semicolon":
            delimiter = None  # rejoined with spaces above
        try:
            data = np.loadtxt(body, delimiter=delimiter, ndmin=2, comments=None, dtype=np.float64)
        except ValueError:
            return None, header, (first + 1, last + 1)
        if data.shape[1] < 2 or len(data) != len(body):
            return None, header, (first + 1, last + 1)
        return data, header, (first + 1, last + 1)

    @staticmethod
    def _slow_table(lines, split, source, notes):
        """Line by line, to name the first line that is not numbers."""
        rows, first_row_line, header, last_data, trailing = [], None, [], None, []
        last_lines = []
        for number, line in enumerate(lines, 1):
            stripped = line.strip()
            if not stripped:
                continue
            if _is_comment(stripped):
                if first_row_line is None:
                    header.append(stripped)
                continue
            values = _numbers(split, stripped)
            if values is None:
                if first_row_line is None:
                    header.append(stripped)
                else:
                    trailing.append((number, stripped))
                continue
            if trailing:  # words between data lines
                bad_number, bad_line = trailing[0]
                raise PatternError(source, f"line {bad_number} is not two columns of numbers: {bad_line[:60]!r}")
            if first_row_line is None:
                first_row_line = number
            rows.append(values)
            last_data = number
            last_lines = [last_lines[-1], number] if last_lines else [number]
        if len(rows) > 2 and len(rows[-1]) < len(rows[-2]) and min(len(row) for row in rows[:-1]) == len(rows[-2]):
            notes.append(
                f"line {last_data} has {len(rows[-1])} of the {len(rows[-2])} columns (cut?): "
                f"read the data up to line {last_lines[-2]}, the file may be truncated"
            )
            rows.pop()
            last_data = last_lines[-2]
        columns = min(len(row) for row in rows)
        data = np.array([row[:columns] for row in rows], dtype=np.float64)
        return data, header, (first_row_line, last_data)

    @staticmethod
    def _column_names(header, split, columns):
        """Column names from the last header line before the data, when it has enough words."""
        if not header:
            return None
        line = header[-1].lstrip("#!;%/ \t")
        for splitter in (split, lambda text: re.split(r"[\s,;]+", text.strip())):
            tokens = [token for token in splitter(line) if token]
            if len(tokens) == columns and all(re.search(r"[A-Za-z\u00c0-\u03ff]", token) for token in tokens[:2]):
                return tokens
        return None
