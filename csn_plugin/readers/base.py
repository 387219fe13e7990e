"""The Reader base class and small helpers shared by the readers: bounded reads (a size cap on
files and on zip members), text decoding (UTF-8, UTF-16 with or without BOM, Latin-1), and
linear-time parsing of numbers with esds and of header wavelengths."""

import os
import re
import stat
import zipfile
from pathlib import Path

import numpy as np

from ..errors import PatternError
from ..physics import resolve_wavelength

HEAD_BYTES = 4096
# The largest pattern file a reader accepts (a 100,000-point .xy is ~3 MB; an XRDML ~2 MB).
MAX_FILE_BYTES = 256 * 2**20
# The largest decompressed member of a zip container (.rasx, .brml) read.
MAX_MEMBER_BYTES = 64 * 2**20


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


def size_text(size) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.3g} {unit}"
        size /= 1024.0
    return f"{size} bytes"  # pragma: no cover


def check_file(path, limit=MAX_FILE_BYTES) -> int:
    """The size of a regular, readable file no larger than ``limit``; PatternError otherwise
    (missing, a directory, a pipe or terminal, empty, too large)."""
    source = str(path)
    if source == "":
        raise PatternError(source, "no file name given")
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise PatternError(source, "no such file") from None
    except OSError as error:
        raise PatternError(source, f"cannot read: {error.strerror or error}") from None
    if stat.S_ISDIR(info.st_mode):
        raise PatternError(source, "is a directory, not a pattern file")
    if not stat.S_ISREG(info.st_mode):
        kind = "a pipe" if stat.S_ISFIFO(info.st_mode) else "a device or socket"
        raise PatternError(source, f"is {kind}, not a regular file: save the data to a file and give its name")
    if info.st_size == 0:
        raise PatternError(source, "the file is empty")
    if limit is not None and info.st_size > limit:
        raise PatternError(
            source, f"the file is {size_text(info.st_size)}, larger than the {size_text(limit)} a pattern reader accepts"
        )
    return info.st_size


def read_head(path, size=HEAD_BYTES) -> bytes:
    """The first ``size`` bytes of a file (never more, whatever the file's size)."""
    with open(path, "rb") as handle:
        return handle.read(size)


def read_bytes(path, limit=MAX_FILE_BYTES) -> bytes:
    """A file's bytes, refused (PatternError) when it is not a regular file or exceeds ``limit``."""
    check_file(path, limit)
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:  # grew while reading
        raise PatternError(str(path), f"the file is larger than the {size_text(limit)} a pattern reader accepts")
    return data


def read_member(archive, name, source, limit=MAX_MEMBER_BYTES) -> bytes:
    """A zip member's bytes, refused before decompression when its declared size exceeds
    ``limit`` and while decompressing when it grows past it (a zip bomb that lies in its header)."""
    info = archive.getinfo(name)
    if info.file_size > limit:
        raise PatternError(
            source,
            f"archive member {name!r} unpacks to {size_text(info.file_size)}, more than the "
            f"{size_text(limit)} accepted (a zip bomb?)",
        )
    with archive.open(info) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise PatternError(
            source, f"archive member {name!r} unpacks to more than the {size_text(limit)} accepted (a zip bomb?)"
        )
    return data


def looks_binary(head: bytes) -> bool:
    """True for data that is not text: NUL bytes or many control characters (UTF-16 text is
    text: see :func:`utf16_encoding`)."""
    if not head:
        return False
    if utf16_encoding(head):
        return False
    if b"\x00" in head:
        return True
    control = sum(1 for byte in head if byte < 32 and byte not in (9, 10, 12, 13, 26))
    return control > 0.01 * len(head)


def utf16_encoding(head: bytes):
    """'utf-16' for data with a UTF-16 byte-order mark, 'utf-16-le'/'-be' for BOM-less UTF-16
    ASCII text (every other byte NUL), else None."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) and not head.startswith(b"\xff\xfe\x00\x00"):
        return "utf-16"
    sample = head[: len(head) - len(head) % 2]
    if len(sample) >= 8:
        even, odd = sample[0::2], sample[1::2]
        if odd.count(0) == len(odd) and even.count(0) == 0:
            return "utf-16-le"
        if even.count(0) == len(even) and odd.count(0) == 0:
            return "utf-16-be"
    return None


def open_zip(path, format_name) -> zipfile.ZipFile:
    """The zip archive of a zipped format (.brml, .rasx); not a zip: PatternError."""
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise PatternError(str(path), f"could not read as {format_name}: not a zip archive") from None


def number_table(rows, source, empty, narrow):
    """Rows of numbers -> an (N, width) array cut to the narrowest row; PatternError ``empty`` when
    there are no rows, ``narrow`` when a row has fewer than two numbers."""
    if not rows:
        raise PatternError(source, empty)
    width = min(len(row) for row in rows)
    if width < 2:
        raise PatternError(source, narrow)
    return np.array([row[:width] for row in rows])


def numbered_members(archive, pattern, source, missing):
    """Names in a zip ``archive`` that match ``pattern``, in the order of the numbers its groups
    capture (Data1/Profile2 before Data1/Profile10); none: PatternError ``missing``."""
    names = sorted(
        (name for name in archive.namelist() if pattern.match(name)),
        key=lambda name: tuple(int(part) for part in pattern.match(name).groups()),
    )
    if not names:
        raise PatternError(source, missing)
    return names


def sum_scans(curves, source, metadata, what="a map?"):
    """One (angles, intensities) from a file's scans: the scans summed when they share their
    angles (``metadata["summed_scans"]`` set), else PatternError (``what`` guesses what it is)."""
    angles, intensity = curves[0]
    if len(curves) > 1:
        if all(len(other[0]) == len(angles) and np.allclose(other[0], angles) for other in curves[1:]):
            intensity = np.sum([curve[1] for curve in curves], axis=0)
            metadata["summed_scans"] = len(curves)
        else:
            raise PatternError(source, f"{len(curves)} scans over different angles ({what}): not a single powder 2theta scan")
    return angles, intensity


def decode(data: bytes) -> str:
    """Text from bytes: UTF-16 (BOM or NUL-interleaved ASCII), UTF-8 (with or without BOM), else
    Latin-1 (never fails)."""
    encoding = utf16_encoding(data[:HEAD_BYTES])
    if encoding:
        return data.decode(encoding, errors="replace").lstrip("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_text(path, limit=MAX_FILE_BYTES) -> str:
    """A text file's contents (size-capped); binary files raise PatternError."""
    data = read_bytes(path, limit)
    if looks_binary(data[:HEAD_BYTES]):
        raise PatternError(str(path), "binary data, not a text file")
    return decode(data)


def head_text(path, size=HEAD_BYTES) -> str:
    """The decoded start of a file, for sniffing ('' for binary data); the last, maybe partial,
    line is dropped when the head is shorter than the file."""
    head = read_head(path, size)
    if not head or looks_binary(head):
        return ""
    text = decode(head)
    if len(head) == size and "\n" in text:
        text = text[: text.rindex("\n")]
    return text


# A number with an optional esd in brackets: 1234(5), 1.25(3), -1.2e-3(4), .5; one pass, no
# backtracking (each part is introduced by a different character).
_ESD = re.compile(r"([-+]?)([0-9]*)(?:\.([0-9]*))?(?:[eEdD]([-+]?[0-9]+))?(?:\(([0-9]+)\))?")
MAX_NUMBER_CHARS = 64  # no float needs more; longer "numbers" are refused before any parsing


def number_and_esd(text):
    """'1234(5)' -> (1234.0, 5.0); '1.25(3)' -> (1.25, 0.03); raises ValueError for non-numbers
    (callers map '?' and '.' to NaN)."""
    text = text.strip()
    if len(text) > MAX_NUMBER_CHARS:
        raise ValueError(f"not a number: {text[:20]!r}... ({len(text)} characters)")
    match = _ESD.fullmatch(text)
    if not match or not (match.group(2) or match.group(3)):
        raise ValueError(f"not a number: {text!r}")
    sign, whole, fraction, exponent, esd_digits = match.groups()
    mantissa = f"{sign}{whole or '0'}.{fraction or ''}"
    value = float(mantissa + (f"e{exponent}" if exponent else ""))
    if esd_digits is None:
        return value, float("nan")
    decimals = len(fraction or "")
    return value, int(esd_digits) * 10.0 ** ((int(exponent) if exponent else 0) - decimals)


_WAVELENGTH_KEY = re.compile(r"(?:wave\s*-?\s*length|lambda|\u03bb)", re.IGNORECASE)
# A standalone number (not the '1' of 'Ka1' or 'Lambda1'), then an optional unit.
_STANDALONE_NUMBER = re.compile(
    r"(?<![A-Za-z0-9_.])([0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?)(?![0-9.])"
    r"(?:\s*(nm|m|\u00e5|a|angstroms?)(?![A-Za-z]))?",
    re.IGNORECASE,
)
_LINE_NAME = re.compile(r"\b(cu|mo|co|fe|cr|ag)\s*-?\s*k\s*-?\s*(alpha|a|beta|b)\s*([12])?\b", re.IGNORECASE)


def _wavelength_of_line(line):
    """The wavelength stated on one header line after a wavelength keyword, or None."""
    key = _WAVELENGTH_KEY.search(line)
    if key is None:
        return None
    separator = re.compile(r"[=:]").search(line, key.end())
    start = separator.end() if separator else key.end()
    value_text = line[start:]
    for match in _STANDALONE_NUMBER.finditer(line, start):  # the look-behind sees the 'a' of 'Lambda1'
        value, unit = float(match.group(1)), (match.group(2) or "").lower()
        if unit == "nm":
            value *= 10.0
        elif unit == "m" or (not unit and 0 < value < 1e-6):
            value *= 1e10
        try:
            return resolve_wavelength(value)
        except ValueError:
            return None
    named = _LINE_NAME.search(value_text)
    if named:  # 'Wavelength: Cu Ka1'
        element, line_kind, number = named.groups()
        kind = "Kb1" if line_kind.lower().startswith("b") else "Ka" + (number or "")
        try:
            return resolve_wavelength(element.capitalize() + kind)
        except ValueError:
            return None
    return None


def wavelength_in_text(text):
    """A wavelength (angstrom) stated in header text ('Wavelength: 1.5406 A',
    '# Wavelength (Cu Ka1) = 1.5406 A', '# Lambda1 = 1.5406', pyFAI's 'Wavelength: 1.54e-10 m',
    'lambda = 0.1 nm'), or None when there is none or it is implausible. The number is the first
    standalone one after the line's '=' or ':' (after the keyword when there is neither), so the
    '1' of 'Ka1' or 'Lambda1' is never taken for it. Line by line: linear in the text's length."""
    for line in text.splitlines():
        wavelength = _wavelength_of_line(line)
        if wavelength is not None:
            return wavelength
    return None


def parse_xml(data: bytes, source, format_name):
    """An ElementTree root from XML bytes, through defusedxml (no entity expansion, no external
    entities, no DTD tricks); PatternError for broken or hostile XML. Without defusedxml installed,
    documents declaring entities are refused and the rest parsed by the standard library."""
    from xml.etree.ElementTree import ParseError

    try:
        from defusedxml import DefusedXmlException
        from defusedxml.ElementTree import fromstring
    except ImportError:  # pragma: no cover - defusedxml is a declared dependency
        from xml.etree.ElementTree import fromstring

        DefusedXmlException = ()
        if b"<!ENTITY" in data or b"<!entity" in data:
            raise PatternError(source, f"could not read as {format_name}: the XML declares entities (refused)") from None
    try:
        return fromstring(data)
    except ParseError as error:
        raise PatternError(source, f"could not read as {format_name}: broken XML ({error})") from None
    except DefusedXmlException as error:
        raise PatternError(
            source, f"could not read as {format_name}: the XML uses entities or a DTD ({type(error).__name__}), refused"
        ) from None
