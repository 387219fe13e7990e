"""Errors csn reports to people: one line that names the input and the problem."""

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def display_name(source) -> str:
    """A file name as one printable line: bytes that are not UTF-8 (kept by Python as surrogate
    escapes) become ``\\xff``, newlines and other control characters ``\\n``-style escapes, and an
    empty name reads ``'' (empty file name)``."""
    text = str(source)
    if text == "":
        return "'' (empty file name)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")  # lone surrogates left over
    return _CONTROL.sub(lambda match: repr(match.group(0))[1:-1], text)


class CsnError(Exception):
    """Base class of csn's own errors; ``str(error)`` is a complete one-line message."""


class PatternError(CsnError, ValueError):
    """A pattern (file or arrays) that csn cannot use, and why.

    ``PatternError("scan.xy", "angles are not increasing")`` reads
    ``scan.xy: angles are not increasing``. ``source`` keeps the name as given; the message shows
    it through :func:`display_name` (one printable line, whatever the name holds).
    """

    def __init__(self, source, problem):
        self.source = None if source is None else str(source)
        self.problem = " ".join(str(problem).split())
        prefix = None if self.source is None else display_name(self.source)
        super().__init__(f"{prefix}: {self.problem}" if prefix else self.problem)


class PatternWarning(UserWarning):
    """The pattern was read, but something about it looks wrong (a cut last line, a first column
    that looks like d-spacings or Q); the text names the file. Also kept in
    ``pattern.metadata["warnings"]``."""


class PriorWarning(UserWarning):
    """The chosen prior is one the model's card marks as unreliable (see ``prior_warnings`` in the
    model's sidecar); the answer is given, with this warning."""
