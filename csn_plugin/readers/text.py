"""Column text files: .xy, .xye, .txt, .dat, .csv (2theta, intensity[, esd, ...])."""

import re
from collections import Counter

import numpy as np

from ..errors import PatternError
from .base import Reader, decode, looks_binary, read_head, read_text, wavelength_in_text

COMMENT_PREFIXES = ("#", "!", ";", "%", "//")
SAMPLE_LINES = 200


def _split_whitespace(line):
    return line.split()


def _split_comma(line):
    return [token for token in re.split(r"\s*,\s*", line.strip()) if token]


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
    for dialect in DIALECTS:
        rows = [_numbers(dialect[2], line) for line in candidates]
        counts = Counter(len(row) for row in rows if row is not None)
        score = counts.most_common(1)[0][1] if counts else 0
        if score > best_score:
            best, best_score = dialect, score
    return best, best_score


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
            head = read_head(path)
        except OSError:
            return False
        if not head or looks_binary(head):
            return False
        lines = decode(head).splitlines()[:-1] or decode(head).splitlines()
        _, score = detect_dialect(lines)
        return score >= 3

    def read(self, path):
        from ..pattern import Pattern

        source = str(path)
        lines = read_text(path).splitlines()
        dialect, score = detect_dialect(lines)
        if dialect is None or score == 0:
            raise PatternError(source, "no lines with two or more columns of numbers")
        dialect_name, decimal, split = dialect
        data, header, (first_row_line, last_data) = self._fast_table(lines, dialect)
        if data is None:
            data, header, (first_row_line, last_data) = self._slow_table(lines, split, source)
        columns = data.shape[1]
        names = self._column_names(header, split, columns)
        two_theta, intensity = data[:, 0], data[:, 1]
        metadata = {
            "columns": columns,
            "delimiter": "tab/space" if dialect_name == "whitespace" else dialect_name,
            "decimal": decimal,
            "data_lines": (first_row_line, last_data),
        }
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
        return Pattern(two_theta, intensity, wavelength, source, metadata, esd)

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
        if decimal == ",":
            body = [line.replace(",", ".") for line in body]
        delimiter = {"whitespace": None, "comma": ",", "semicolon": ";"}[name]
        try:
            data = np.loadtxt(body, delimiter=delimiter, ndmin=2, comments=None, dtype=np.float64)
        except ValueError:
            return None, header, (first + 1, last + 1)
        if data.shape[1] < 2 or len(data) != len(body):
            return None, header, (first + 1, last + 1)
        return data, header, (first + 1, last + 1)

    @staticmethod
    def _slow_table(lines, split, source):
        """Line by line, to name the first line that is not numbers."""
        rows, first_row_line, header, last_data, trailing = [], None, [], None, []
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
