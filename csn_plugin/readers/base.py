"""The Reader base class and small helpers shared by the readers."""

import re
from pathlib import Path

from ..errors import PatternError
from ..wavelengths import resolve_wavelength

HEAD_BYTES = 4096


class Reader:
    """Base class (and protocol) of pattern readers; subclasses set the three attributes and ``read``."""

    name = ""
    extensions: tuple = ()
    description = ""

    def guess_can_open(self, path) -> bool:
        """True when the file looks like this format (default: by extension)."""
        return Path(path).suffix.lower() in self.extensions

    def read(self, path):
        """Return a :class:`~csn_plugin.pattern.Pattern` (raise PatternError on bad input)."""
        raise NotImplementedError

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r} {' '.join(self.extensions)}>"


def read_head(path, size=HEAD_BYTES) -> bytes:
    """The first ``size`` bytes of a file."""
    with open(path, "rb") as handle:
        return handle.read(size)


def looks_binary(head: bytes) -> bool:
    """True for data that is not text: NUL bytes or many control characters."""
    if not head:
        return False
    if b"\x00" in head:
        return True
    control = sum(1 for byte in head if byte < 32 and byte not in (9, 10, 12, 13, 26))
    return control > 0.01 * len(head)


def decode(data: bytes) -> str:
    """Text from bytes: UTF-8 (with or without BOM), else Latin-1 (never fails)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_text(path) -> str:
    """A text file's contents; binary files raise PatternError."""
    data = Path(path).read_bytes()
    if looks_binary(data[:HEAD_BYTES]):
        raise PatternError(str(path), "binary data, not a text file")
    return decode(data)


_ESD = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eEdD][-+]?\d+)?)(?:\((\d+)\))?$")


def number_and_esd(text):
    """'1234(5)' -> (1234.0, 5.0); '1.25(3)' -> (1.25, 0.03); '?' or '.' -> (nan, nan)."""
    match = _ESD.match(text.strip())
    if not match:
        raise ValueError(f"not a number: {text!r}")
    value_text, esd_digits = match.groups()
    value = float(value_text.replace("d", "e").replace("D", "e"))
    if esd_digits is None:
        return value, float("nan")
    mantissa = re.split(r"[eEdD]", value_text)[0]
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    exponent = int(re.split(r"[eEdD]", value_text)[1]) if re.search(r"[eEdD]", value_text) else 0
    return value, int(esd_digits) * 10.0 ** (exponent - decimals)


_WAVELENGTH_IN_TEXT = re.compile(
    r"(?:wave\s*-?\s*length|lambda|\u03bb)[^0-9\n]{0,20}?"
    r"(\d*\.?\d+(?:[eE][-+]?\d+)?)\s*(nm|m\b|\u00e5|a\b|angstroms?)?",
    re.IGNORECASE,
)


def wavelength_in_text(text):
    """A wavelength (angstrom) stated in header text ('Wavelength: 1.5406 A', pyFAI's
    'Wavelength: 1.54e-10 m'), or None when there is none or it is implausible."""
    for match in _WAVELENGTH_IN_TEXT.finditer(text):
        value, unit = float(match.group(1)), (match.group(2) or "").lower()
        if unit == "nm":
            value *= 10.0
        elif unit == "m" or (not unit and value < 1e-6):
            value *= 1e10
        try:
            return resolve_wavelength(value)
        except ValueError:
            continue
    return None
