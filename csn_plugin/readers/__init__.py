"""Pattern file readers, one module per format family, and :func:`read_pattern`.

A reader (like an xarray backend) is an object with ``name``, ``extensions`` (lower case, with the
dot), ``description``, ``guess_can_open(path) -> bool`` (cheap: extension and/or first bytes) and
``read(path) -> Pattern``. ``read`` returns the wavelength recorded in the file
(``metadata["wavelength_source"] == "file"``) or, when the file records none, a pattern marked
``"unknown"``; :func:`read_pattern` then fills in the user's wavelength or the default.

:func:`read_pattern` uses the readers it is given (default: the built-in ones); it never asks the
plugin manager. Plugins add readers through the ``pxrd_register_readers`` hook, and
``csn_plugin.plugins.read_pattern`` (what ``Pattern.from_file`` calls) passes every registered one.
"""

from pathlib import Path

from ..errors import CsnError, PatternError
from ..physics import WAVELENGTH_TOLERANCE, check_recorded_wavelength, resolve_wavelength_for
from .base import MAX_FILE_BYTES, MAX_MEMBER_BYTES, Reader, check_file, looks_binary, read_head
from .bruker import BrmlReader, BrukerRawReader
from .chi import ChiReader
from .gsas import GsasReader
from .pdcif import PowderCifReader
from .rigaku import RasReader, RasxReader
from .text import TextReader
from .xrdml import XrdmlReader

__all__ = ["Reader", "BUILTIN_READERS", "read_pattern", "WAVELENGTH_TOLERANCE", "MAX_FILE_BYTES", "MAX_MEMBER_BYTES"]

# name -> reader; the order is the order in which readers are asked.
BUILTIN_READERS = {
    reader.name: reader
    for reader in (
        XrdmlReader(),
        RasxReader(),
        RasReader(),
        BrmlReader(),
        BrukerRawReader(),
        PowderCifReader(),
        GsasReader(),
        ChiReader(),
        TextReader(),
    )
}

def read_pattern(path, wavelength=None, format=None, readers=None):
    """Read a pattern file into a :class:`~csn_plugin.pattern.Pattern`.

    ``wavelength`` (angstrom or a name) is used when the file records none; when the file records
    one that differs by more than ``WAVELENGTH_TOLERANCE`` (0.5 %) a PatternError names both. ``format`` picks a reader by
    name (e.g. ``"xrdml"``); otherwise readers whose ``guess_can_open`` accepts the file are tried
    in turn, and any readable text file with number columns falls back to the text reader.
    ``readers``: name -> reader, in the order they are asked (default: ``BUILTIN_READERS``).
    Every failure is a one-line PatternError naming the file.
    """
    source = str(path)
    path = Path(path)
    readers = dict(BUILTIN_READERS if readers is None else readers)
    if wavelength is not None:
        wavelength = resolve_wavelength_for(source, wavelength)
    check_file(source)  # regular file, not empty, within MAX_FILE_BYTES: before any reader opens it
    if format is not None:
        reader = readers.get(format) or readers.get(str(format).lower())
        if reader is None:
            raise PatternError(source, f"unknown format {format!r}; known: {', '.join(sorted(readers))}")
        candidates = [reader]
    else:
        candidates = [reader for reader in readers.values() if _guess(reader, path)]
        if not candidates:
            text_reader = readers.get("text") or BUILTIN_READERS["text"]
            if text_reader.sniff(path):
                candidates = [text_reader]
            else:
                try:
                    head = read_head(path)
                except OSError as error:
                    raise PatternError(source, f"cannot read: {error.strerror or error}") from None
                if looks_binary(head):
                    problem = "binary file in no known format (known: " + ", ".join(sorted(readers)) + ")"
                else:
                    problem = "no reader recognises this file (no columns of numbers found)"
                raise PatternError(source, problem)

    errors = []
    for reader in candidates:
        try:
            pattern = _read(reader, path, source)
        except PatternError as error:
            errors.append(error)
            continue
        try:
            pattern = _settle_wavelength(pattern, wavelength, source, reader.name)
        except PatternError as error:
            if pattern.metadata.get("unlabelled_axis") and float(pattern.two_theta[-1]) <= Q_LIKE_MAX:
                raise PatternError(
                    source, f"{error.problem} (or is the first column Q in 1/A or d in A? convert it to 2theta)"
                ) from None
            raise
        _check_q_like(pattern)
        return pattern
    raise errors[0]


# An unlabelled first column that ends below this many degrees at a lab wavelength (>= 1 A) is
# more likely Q (1/A, 0.5-8 for a Cu scan) than a 2theta scan.
Q_LIKE_MAX = 12.0


def _check_q_like(pattern):
    """Warn (PatternWarning) when an unlabelled first column looks like Q rather than 2theta."""
    from .text import warn_pattern

    if not pattern.metadata.get("unlabelled_axis") or pattern.wavelength < 1.0:
        return
    low, high = float(pattern.two_theta[0]), float(pattern.two_theta[-1])
    if high <= Q_LIKE_MAX and not pattern.metadata.get("reversed"):
        warn_pattern(
            pattern,
            f"the first column runs {low:g}-{high:g}: at {pattern.wavelength:g} A that is a 2theta scan ending at "
            f"{high:g} deg, more likely Q (1/A); if so, convert it to 2theta (or give the wavelength)",
        )


def _guess(reader, path):
    try:
        return bool(reader.guess_can_open(path))
    except Exception:  # a plugin's faulty guess must not stop the others
        return False


def _read(reader, path, source):
    """reader.read(path), with any parser failure turned into a one-line PatternError."""
    try:
        pattern = reader.read(path)
    except PatternError as error:
        if error.source is None or error.source != source:
            raise PatternError(source, error.problem) from None
        raise
    except CsnError as error:
        raise PatternError(source, str(error)) from None
    except MemoryError:
        raise PatternError(source, f"could not read as {reader.name}: out of memory") from None
    except RecursionError:
        raise PatternError(source, f"could not read as {reader.name}: nested too deeply") from None
    except Exception as error:  # parsers raise anything on malformed files
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise PatternError(source, f"could not read as {reader.name}: {reason}") from None
    pattern.source = source
    pattern.metadata.setdefault("format", reader.name)
    return pattern


def _settle_wavelength(pattern, wavelength, source, format_name):
    recorded = pattern.metadata.get("wavelength_source") == "file"
    if recorded:
        check_recorded_wavelength(pattern.wavelength, wavelength, source)
        return pattern
    if wavelength is not None:
        return pattern.with_wavelength(wavelength, "user")
    return pattern.with_wavelength(None, "default")
