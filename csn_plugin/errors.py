"""Every error and warning class of csn, in one place.

Errors are what csn reports to people: ``str(error)`` is one line that names the input and the
problem. Warnings say that an answer comes with a caveat, or that a plugin was skipped.
"""

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


class _SourceProblem(CsnError):
    """An error about one input: ``source`` (a file name or a description, or None) and ``problem``;
    ``str()`` reads "source: problem"."""

    def __init__(self, source, problem):
        self.source = None if source is None else str(source)
        self.problem = self._problem_text(problem)
        prefix = None if self.source is None else self._source_text(self.source)
        super().__init__(f"{prefix}: {self.problem}" if prefix else self.problem)

    @staticmethod
    def _problem_text(problem) -> str:
        return str(problem)

    @staticmethod
    def _source_text(source) -> str:
        return source


class PatternError(_SourceProblem, ValueError):
    """A pattern (file or arrays) that csn cannot use, and why.

    ``PatternError("scan.xy", "angles are not increasing")`` reads
    ``scan.xy: angles are not increasing``. ``source`` keeps the name as given; the message shows
    it through :func:`display_name` (one printable line, whatever the name holds).
    """

    @staticmethod
    def _problem_text(problem) -> str:
        return " ".join(str(problem).split())  # one line

    @staticmethod
    def _source_text(source) -> str:
        return display_name(source)


class PatternWarning(UserWarning):
    """The pattern was read, but something about it looks wrong (a cut last line, a first column
    that looks like d-spacings or Q); the text names the file. Also kept in
    ``pattern.metadata["warnings"]``."""


class StructureError(_SourceProblem, ValueError):
    """A structure (file or object) that cannot be simulated; ``str()`` is "source: problem"."""


class StructureSkipped(CsnError):
    """A structure that could not be made (dataset building); ``reason`` is a short key the
    builder counts."""

    def __init__(self, reason, detail=""):
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


class DatasetError(CsnError):
    """A dataset directory that cannot be built or read; ``str()`` is one line."""


class ReflectionLimitError(ValueError):
    """A cell too large to simulate within MAX_REFLECTIONS / MAX_BOX_POINTS; the text names the cell."""


class PriorWarning(UserWarning):
    """The chosen prior is one the model's card marks as unreliable (see ``prior_warnings`` in the
    model's sidecar); the answer is given, with this warning."""


class PluginWarning(UserWarning):
    """A plugin failed to load or raised inside a hook; it was skipped."""
