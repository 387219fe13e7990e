"""pluggy hook specifications of the ``pxrd`` plugin protocol.

Project name and entry-point group: ``"pxrd"``. A host (diffraction software) builds a
``pluggy.PluginManager("pxrd")``, adds these specs, loads the ``pxrd`` entry points and calls the
hooks; a plugin (csn is one) implements them with ``@hookimpl``. See docs/host-developers.md.
"""

from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol, Sequence, runtime_checkable

import pluggy

PROJECT_NAME = "pxrd"
ENTRY_POINT_GROUP = "pxrd"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@dataclass(frozen=True)
class MenuItem:
    """An action a plugin offers a host: ``label`` for the menu, ``callback(data)`` runs it on the
    host's current data (a file path, a Pattern, arrays, a structure...), ``help`` is a tooltip."""

    label: str
    callback: Callable
    help: str = ""


# ------------------------------------------------------------------------------ the contract
# What ``register(name, ...)`` receives in the two register hooks. csn validates every classifier
# result and every reader's answer at its boundary (``csn_plugin.plugins``: CheckedFactory,
# CheckedClassifier, CheckedReader) and names a plugin that breaks this contract in one line;
# ``csn_plugin.testing`` checks a plugin against it before release.


@runtime_checkable
class SpaceGroupPredictionLike(Protocol):
    """One ranked space group."""

    space_group: int  # 1..230 (an int, not a bool or float)
    symbol: str  # Hermann-Mauguin symbol, non-empty
    probability: float  # finite, in [0, 1]; equals probabilities[space_group - 1]


@runtime_checkable
class ClassificationResultLike(Protocol):
    """The answer for one pattern (csn's is ``csn_plugin.inference.result.ClassificationResult``)."""

    source: Optional[str]  # the input's name
    predictions: Sequence[SpaceGroupPredictionLike]  # exactly top_k, most probable first, distinct groups
    probabilities: Any  # 230 finite floats >= 0 summing to 1 (index 0 = group 1)
    crystal_system: tuple  # (name, probability)
    bravais_lattice: tuple  # (name, probability)

    def to_dict(self) -> dict:
        """JSON-serialisable (no NaN): the record of ``csn classify --format json``."""


@runtime_checkable
class Classifier(Protocol):
    """What a classifier factory returns.

    ``predict``/``predict_many`` raise ``csn_plugin.errors.PatternError`` for a pattern they cannot
    use, ``TypeError`` for an object they do not understand and ``ValueError`` for top_k outside
    1..230; anything else they raise is reported as a bug of the plugin.
    """

    name: str  # non-empty

    def predict(self, obj: Any, top_k: int = 5, wavelength: Optional[float] = None) -> ClassificationResultLike:
        """Classify one pattern-like object (a path, a Pattern, (two_theta, intensity) arrays...)."""

    def predict_many(self, objs: Sequence[Any], top_k: int = 5, batch_size: int = 256,
                     wavelength: Optional[float] = None) -> list:
        """One result per input, in order, equal to ``predict`` one by one."""


@runtime_checkable
class ClassifierFactory(Protocol):
    """``register(name, factory)`` in ``pxrd_register_classifiers``: ``factory(**options)`` builds a
    ``Classifier``. Every factory accepts these keyword options (csn's CLI passes ``device`` and
    ``prior`` always and ``model`` when given) and may accept more of its own; ``network_only``
    and ``time_limit`` (csn's own: skip the crystallographic evidence, seconds of indexing search)
    are passed only when the user asks for them (``--network-only``, ``--time-limit``). Bad option values
    raise ``ValueError`` (missing weights: ``ValueError`` or ``OSError``); any other exception, or a
    returned object that is not a ``Classifier``, is reported as a broken plugin."""

    def __call__(self, *, model: Optional[str] = None, device: str = "auto", prior: Any = "icsd",
                 **options: Any) -> Classifier:
        """``model``: weights name or path (None: the plugin's default); ``device``: "auto", "cpu"
        or "cuda"; ``prior``: "icsd", "cod", "mp", "uniform" or 230 counts."""


@runtime_checkable
class PatternReader(Protocol):
    """``register(name, reader)`` in ``pxrd_register_readers``.

    ``read`` returns a ``csn_plugin.pattern.Pattern`` (never None) and raises
    ``csn_plugin.errors.PatternError`` for a file it cannot read. ``guess_can_open`` is cheap
    (extension, first bytes) and never raises. A claim on a file outside ``extensions`` yields to
    csn's built-in readers when one of them recognises the file.
    """

    name: str
    extensions: tuple  # lower case, with the dot: (".xrdml",)
    description: str

    def guess_can_open(self, path: Any) -> bool:
        """True when the file looks like this format."""

    def read(self, path: Any) -> Any:
        """The file's ``Pattern``."""


# ------------------------------------------------------------------------------ the hooks
@hookspec
def pxrd_register_classifiers(register):
    """Register classifiers: call ``register(name, factory)``; ``factory(**options)`` (a ``ClassifierFactory``: ``model``, ``device``, ``prior``) returns a ``Classifier`` with ``name``, ``predict(obj, top_k=5, wavelength=None)`` and ``predict_many(objs, ...)``."""


@hookspec
def pxrd_register_readers(register):
    """Register pattern file readers: call ``register(name, reader)``; a reader (a ``PatternReader``) has ``name``, ``extensions``, ``description``, ``guess_can_open(path)`` and ``read(path) -> Pattern``."""


@hookspec
def pxrd_menu_items(hook):
    """Return a list of ``MenuItem`` for the host's menu; ``hook`` is the host's ``pm.hook``, through which callbacks report results (``hook.pxrd_classification_done``)."""


@hookspec
def pxrd_classification_done(source, result):
    """Implemented by the host: receives each classification ``result`` (a ClassificationResult) of ``source`` (the input's name, or None)."""
