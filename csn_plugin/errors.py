"""Errors csn reports to people: one line that names the input and the problem."""


class CsnError(Exception):
    """Base class of csn's own errors; ``str(error)`` is a complete one-line message."""


class PatternError(CsnError, ValueError):
    """A pattern (file or arrays) that csn cannot use, and why.

    ``PatternError("scan.xy", "angles are not increasing")`` reads
    ``scan.xy: angles are not increasing``.
    """

    def __init__(self, source, problem):
        self.source = None if source is None else str(source)
        self.problem = str(problem)
        super().__init__(f"{self.source}: {self.problem}" if self.source else self.problem)


class PriorWarning(UserWarning):
    """The chosen prior is one the model's card marks as unreliable (see ``prior_warnings`` in the
    model's sidecar); the answer is given, with this warning."""
