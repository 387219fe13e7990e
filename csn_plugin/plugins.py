"""csn's plugin manager: loads ``pxrd`` entry points, collects classifiers, readers and menu items.

csn's own built-in plugin (``csn_plugin.hooks.builtin``) is registered first, as an ordinary
plugin; then every installed ``pxrd`` entry point. ``CSN_PLUGINS`` limits the external ones: a comma
list of entry-point or distribution names to load, ``""`` loads none, unset loads all.

A plugin never reaches the host: its import runs with ``sys.argv = [program]`` and its prints go
to stderr, as do those of its hooks and methods (``plugin_code``); a plugin that fails to import
or register, calls ``sys.exit()``, or raises inside a hook is skipped, reported once as a
``PluginWarning`` (one line naming it) and kept in ``get_plugin_errors()``.

Hooks are called one implementation at a time (``call_hook_safely``), so that one plugin's
failure cannot cost the others' answers. The order is pluggy's (``tryfirst``, then
last-registered-first, then ``trylast``), except that csn's built-in plugin registers its
classifiers and readers first so that no plugin can take over their names. Hook wrappers are not
run (they wrap pluggy's single call of all implementations, which this replaces); a plugin that
registers one is told so.

Classifiers and readers cross a checked boundary (``CheckedFactory``, ``CheckedClassifier``,
``CheckedReader``): the contract of ``csn_plugin.hooks.specs`` is validated on every answer and
a plugin that breaks it is named in one line (``PluginContractError``, or a ``PatternError`` for
readers), never ``nan%``, an empty ranking or a traceback.
"""

import contextlib
import math
import os
import sys
import threading
import warnings
from dataclasses import dataclass
from importlib import metadata

import pluggy

from . import __version__
from .errors import CsnError, PluginWarning
from .hooks import specs

BUILTIN_PLUGIN_NAME = "csn"
BUILTIN_MODULE = "csn_plugin.hooks.builtin"
ENV_VARIABLE = "CSN_PLUGINS"

_lock = threading.RLock()
_plugin_manager = None
_versions = {}  # plugin name -> distribution version
_errors = []


@dataclass(frozen=True)
class PluginError:
    """What went wrong: ``plugin`` name, ``stage`` ("load", "register" or a hook name), one-line ``message``."""

    plugin: str
    stage: str
    message: str

    def __str__(self):
        return f"plugin {self.plugin!r} failed in {self.stage}: {self.message}"


def _describe(error) -> str:
    """One line for an exception: ``Type: message``; ``sys.exit(...)`` says so."""
    if isinstance(error, SystemExit):
        return f"called sys.exit({error.code!r})"
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _report(plugin, stage, error):
    message = _describe(error) if isinstance(error, BaseException) else " ".join(str(error).split())
    entry = PluginError(str(plugin), stage, message.splitlines()[0] if message else "")
    with _lock:
        if entry in _errors:
            return
        _errors.append(entry)
    warnings.warn(str(entry), PluginWarning, stacklevel=3)


def get_plugin_errors() -> list:
    """Every failure reported so far (``PluginError``: plugin, stage, message), oldest first."""
    with _lock:
        return list(_errors)


def _wanted_names():
    """The set of external plugin names ``CSN_PLUGINS`` allows, or None for all."""
    value = os.environ.get(ENV_VARIABLE)
    if value is None:
        return None
    return {_normalise(name) for name in value.split(",") if name.strip()}


def _normalise(name):
    return (name or "").strip().lower().replace("_", "-")


class _Aborted(Exception):
    """Plugin code raised; it was reported already."""


@contextlib.contextmanager
def plugin_code(plugin, stage, neutral_argv=False, keep_stdout=False):
    """Run a plugin's code (its import, a hook, a reader or classifier method) so that it cannot
    reach the host: ``print`` goes to stderr (stdout stays the host's, e.g. ``--format json``),
    ``sys.argv`` is ``[program]`` while importing (a plugin that parses arguments at import sees
    none), and anything raised, ``SystemExit`` included (not ``KeyboardInterrupt``), is reported
    for ``plugin`` (one ``PluginWarning`` line) and becomes ``_Aborted``. ``keep_stdout`` for the
    hooks hosts implement (``HOST_HOOKS``): a host's output is its own.

    Only Python-level writes to ``sys.stdout`` are redirected (not ``os.write(1, ...)`` from C);
    the redirection is process-wide while the plugin code runs, as with ``contextlib.redirect_stdout``.
    """
    saved_argv = getattr(sys, "argv", None)  # absent in some embedded interpreters
    if neutral_argv:
        sys.argv = list((saved_argv or [])[:1]) or ["csn"]
    try:
        with contextlib.nullcontext() if keep_stdout else contextlib.redirect_stdout(sys.stderr):
            yield
    except (KeyboardInterrupt, _Aborted):
        raise
    except BaseException as error:  # noqa: BLE001 - SystemExit, GeneratorExit and the rest: the host goes on
        _report(plugin, stage, error)
        raise _Aborted() from None
    finally:
        if neutral_argv:
            sys.argv = saved_argv


def _load_entry_points(plugin_manager):
    wanted = _wanted_names()
    for entry_point in metadata.entry_points(group=specs.ENTRY_POINT_GROUP):
        if entry_point.value == BUILTIN_MODULE:
            continue  # csn itself: registered directly, always
        distribution = getattr(entry_point, "dist", None)
        dist_name = distribution.metadata["Name"] if distribution is not None else None
        if wanted is not None and not {_normalise(entry_point.name), _normalise(dist_name)} & wanted:
            continue
        if plugin_manager.has_plugin(entry_point.name):
            _report(entry_point.name, "load", "another plugin is already registered under this name")
            continue
        try:
            with plugin_code(entry_point.name, "load", neutral_argv=True):
                plugin = entry_point.load()
                plugin_manager.register(plugin, name=entry_point.name)
        except _Aborted:  # an external plugin must never take csn down
            continue
        if distribution is not None:
            _versions[entry_point.name] = distribution.version
        for caller in plugin_manager.get_hookcallers(plugin) or ():
            if not caller.has_spec():  # a typo such as "pxrd_menu_item": never called
                _report(entry_point.name, "register", f"implements {caller.name}, which is no pxrd hook")
            elif any(_is_wrapper(impl) for impl in caller.get_hookimpls() if impl.plugin is plugin):
                _report(entry_point.name, "register", f"its {caller.name} is a hook wrapper, which csn's isolated "
                        "hook calls do not run (see call_hook_safely); ignored")


def _build_plugin_manager():
    import importlib

    plugin_manager = pluggy.PluginManager(specs.PROJECT_NAME)
    plugin_manager.add_hookspecs(specs)
    plugin_manager.register(importlib.import_module(BUILTIN_MODULE), name=BUILTIN_PLUGIN_NAME)
    _versions[BUILTIN_PLUGIN_NAME] = __version__
    _load_entry_points(plugin_manager)
    return plugin_manager


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, built on first use."""
    global _plugin_manager
    with _lock:
        if _plugin_manager is None:
            _plugin_manager = _build_plugin_manager()
        return _plugin_manager


def reset_plugin_manager():
    """Forget the plugin manager and the reported errors (after changing ``CSN_PLUGINS``, or in tests)."""
    global _plugin_manager
    with _lock:
        _plugin_manager = None
        _versions.clear()
        _errors.clear()


def _is_wrapper(implementation):
    return bool(getattr(implementation, "hookwrapper", False) or getattr(implementation, "wrapper", False))


def call_order(hook_caller) -> list:
    """The implementations of one hook in pluggy's call order: ``tryfirst`` ones first, then the
    others last-registered-first, ``trylast`` ones last (pluggy keeps ``get_hookimpls()`` in the
    reverse of this order). Hook wrappers are left out: they wrap pluggy's single call of all
    implementations together, which isolated calls replace (``call_hook_safely``)."""
    return [implementation for implementation in reversed(hook_caller.get_hookimpls()) if not _is_wrapper(implementation)]


# Hooks that hosts implement: their output is the host's own, so stdout is left alone.
HOST_HOOKS = frozenset({"pxrd_classification_done"})


def _call_implementation(implementation, hook_name, kwargs):
    """(True, answer) from one implementation, or (False, None) when it raised (reported)."""
    name = implementation.plugin_name
    try:
        with plugin_code(name, hook_name, keep_stdout=hook_name in HOST_HOOKS):
            missing = [argument for argument in implementation.argnames if argument not in kwargs]
            if missing:
                raise TypeError(f"{hook_name} implementation asks for {', '.join(missing)}, which the hook does not pass")
            return True, implementation.function(**{argument: kwargs[argument] for argument in implementation.argnames})
    except _Aborted:
        return False, None


def call_hook_safely(hook_caller, **kwargs) -> list:
    """Call every implementation of one hook on its own, in pluggy's order (``call_order``).

    Returns ``[(plugin_name, return_value), ...]`` for the implementations that succeeded and did
    not return None (pluggy also drops None answers); one that raises (``SystemExit`` included)
    is reported (``get_plugin_errors``) and left out, and what it prints goes to stderr (except
    in the hooks hosts implement, ``HOST_HOOKS``).
    ``hook_caller`` is e.g. ``pm.hook.pxrd_menu_items`` of any PluginManager, csn's or a host's.
    Unlike ``pm.hook.NAME(...)``, hook wrappers are not run (see ``call_order``).
    """
    answers = []
    for implementation in call_order(hook_caller):
        ok, answer = _call_implementation(implementation, hook_caller.name, kwargs)
        if ok and answer is not None:
            answers.append((implementation.plugin_name, answer))
    return answers


def _collect(hook_caller, what, check):
    """Run a ``register(name, thing)`` hook plugin by plugin: a plugin's registrations count only
    if its hook returned without error and ``check(owner, name, thing)`` accepts them (it returns
    the thing to keep, or raises ``_Aborted`` after reporting). csn's built-in plugin comes first,
    the others follow in pluggy's call order; a name already taken (csn's always are) is reported
    and skipped."""
    collected = {}
    implementations = sorted(call_order(hook_caller), key=lambda impl: impl.plugin_name != BUILTIN_PLUGIN_NAME)
    for implementation in implementations:
        owner = implementation.plugin_name
        mine = {}

        def register(name, thing, _mine=mine):
            _mine[str(name)] = thing

        ok, _ = _call_implementation(implementation, hook_caller.name, {"register": register})
        if not ok:
            continue
        for name, thing in mine.items():
            if name in collected:
                _report(owner, hook_caller.name, f"{what} {name!r} is already registered; skipped")
                continue
            try:
                collected[name] = check(owner, name, thing)
            except _Aborted:
                continue
    return collected


# ------------------------------------------------------------------------------ the contract
class PluginContractError(CsnError, RuntimeError):
    """A plugin's classifier or reader broke the ``pxrd`` contract (``csn_plugin.hooks.specs``):
    its factory failed or returned no classifier, a result is malformed (NaN or negative
    probabilities, not 230 of them, a short or unsorted ranking, not JSON...), a method raised
    something outside the contract. One line naming the plugin: ``plugin 'p': classifier 'c' ...``."""

    def __init__(self, plugin, what, problem):
        self.plugin, self.what, self.problem = str(plugin), str(what), " ".join(str(problem).split())
        super().__init__(f"plugin {self.plugin!r}: {self.what} {self.problem}")


# What a classifier's predict/predict_many may raise by contract (PatternError for unusable
# patterns, TypeError for unknown objects, ValueError for a bad top_k); anything else is a bug.
CONTRACT_ERRORS = (CsnError, ValueError, TypeError, OSError, UnicodeError, MemoryError)
SUM_TOLERANCE = 1e-3


def _pair(value, what):
    if not (isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], str)):
        raise ValueError(f"{what} must be a (name, probability) pair, not {value!r:.60}")
    probability = _probability(value[1], f"{what} probability")
    return value[0], probability


def _probability(value, what):
    import numbers

    import numpy as np

    if type(value) is not float and (isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer))):
        raise ValueError(f"{what} is {type(value).__name__}, not a number")
    value = float(value)
    if not (np.isfinite(value) and -1e-6 <= value <= 1 + 1e-6):
        raise ValueError(f"{what} is {value!r}, not a probability in [0, 1]")
    return value


def _finite_table(table):
    """True for a dict of str names to finite numbers (fast: NaN and infinities survive a sum)."""
    import numpy as np

    if not isinstance(table, dict) or set(map(type, table)) - {str}:
        return False
    if not all(kind is float or kind is int or issubclass(kind, np.floating) for kind in set(map(type, table.values()))):
        return False
    return math.isfinite(sum(table.values()))


def validate_result(result, top_k=None):
    """Check one classification result against the contract (``specs.ClassificationResultLike``);
    raises ValueError naming the first problem. ``top_k``: the number of predictions asked for."""
    import json
    import numbers

    import numpy as np

    missing = [a for a in ("source", "predictions", "probabilities", "crystal_system", "bravais_lattice", "to_dict")
               if not hasattr(result, a)]
    if missing:
        raise ValueError(f"returned {type(result).__name__}, which lacks {', '.join(missing)}")
    try:
        probabilities = np.asarray(result.probabilities, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"probabilities are {type(result.probabilities).__name__}, not 230 numbers") from None
    if probabilities.shape != (230,):
        raise ValueError(f"probabilities have shape {probabilities.shape}, not (230,)")
    bad = ~np.isfinite(probabilities)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} of the 230 probabilities are NaN or infinite")
    if probabilities.min() < -1e-6:
        raise ValueError(f"probabilities include negative values ({probabilities.min():.3g})")
    total = float(probabilities.sum())
    if abs(total - 1) > SUM_TOLERANCE:
        raise ValueError(f"probabilities sum to {total:.6g}, not 1")
    predictions = result.predictions
    if not isinstance(predictions, (list, tuple)):
        raise ValueError(f"predictions are {type(predictions).__name__}, not a list")
    if top_k is not None and len(predictions) != int(top_k):
        raise ValueError(f"gave {len(predictions)} predictions for top_k={int(top_k)}")
    if not predictions:
        raise ValueError("gave an empty ranking")
    previous, seen = np.inf, set()
    for rank, prediction in enumerate(predictions, 1):
        group = getattr(prediction, "space_group", None)
        if type(group) is not int and (isinstance(group, bool) or not isinstance(group, (numbers.Integral, np.integer))):
            raise ValueError(f"prediction {rank} has space_group {group!r:.40}, not an int in 1..230")
        if not 1 <= int(group) <= 230:
            raise ValueError(f"prediction {rank} has space_group {group!r:.40}, not an int in 1..230")
        symbol = getattr(prediction, "symbol", None)
        if not isinstance(symbol, str) or not symbol:
            raise ValueError(f"prediction {rank} has symbol {symbol!r:.40}, not a non-empty str")
        probability = _probability(getattr(prediction, "probability", None), f"prediction {rank} probability")
        if int(group) in seen:
            raise ValueError(f"space group {int(group)} is ranked twice")
        if probability > previous + 1e-9:
            raise ValueError(f"predictions are not sorted (rank {rank} has {probability:.4g} > {previous:.4g})")
        if abs(probability - probabilities[int(group) - 1]) > 1e-4:
            raise ValueError(f"prediction {rank} ({probability:.4g}) disagrees with probabilities[{int(group) - 1}]")
        seen.add(int(group))
        previous = probability
    _pair(result.crystal_system, "crystal_system")
    _pair(result.bravais_lattice, "bravais_lattice")
    from .inference.result import ClassificationResult

    if type(result) is ClassificationResult:  # csn's own class: its to_dict is JSON when its fields are
        for field in ("crystal_systems", "bravais_lattices", "rules"):
            if not _finite_table(getattr(result, field)):
                raise ValueError(f"{field} must map names to finite numbers")
        return result
    record = result.to_dict()
    if not isinstance(record, dict):
        raise ValueError(f"to_dict() returned {type(record).__name__}, not a dict")
    try:
        json.dumps(record, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"to_dict() is not JSON: {_describe(error)}") from None
    return result


class CheckedClassifier:
    """A registered classifier behind csn's boundary: its ``predict``/``predict_many`` answers are
    validated (``validate_result``); a malformed answer, or an exception outside
    ``CONTRACT_ERRORS``, becomes a one-line ``PluginContractError`` naming the plugin. What it
    prints goes to stderr. Other attributes are the classifier's own (``.classifier`` is it)."""

    def __init__(self, classifier, registered_name, plugin):
        self.classifier, self.registered_name, self.plugin = classifier, registered_name, plugin
        self._what = f"classifier {registered_name!r}"

    @property
    def name(self):
        return self.classifier.name

    def __getattr__(self, attribute):
        if attribute == "classifier":  # not set yet (copy, pickle)
            raise AttributeError(attribute)
        return getattr(self.classifier, attribute)

    def __repr__(self):
        return f"<checked {self.classifier!r} of plugin {self.plugin!r}>"

    def _call(self, method, *args, **kwargs):
        try:
            with contextlib.redirect_stdout(sys.stderr):
                return getattr(self.classifier, method)(*args, **kwargs)
        except (KeyboardInterrupt, *CONTRACT_ERRORS):
            raise
        except BaseException as error:  # noqa: BLE001 - a plugin's bug becomes one line naming it
            raise PluginContractError(self.plugin, self._what, f"raised {_describe(error)} in {method}") from None

    def _checked(self, result, top_k):
        try:
            return validate_result(result, top_k)
        except ValueError as error:
            raise PluginContractError(self.plugin, self._what, f"broke the classifier contract: {error}") from None

    def predict(self, obj, top_k=5, wavelength=None):
        return self._checked(self._call("predict", obj, top_k=top_k, wavelength=wavelength), top_k)

    def predict_many(self, objs, top_k=5, batch_size=256, wavelength=None):
        objs = list(objs)
        results = self._call("predict_many", objs, top_k=top_k, batch_size=batch_size, wavelength=wavelength)
        if not isinstance(results, (list, tuple)):
            raise PluginContractError(self.plugin, self._what, f"broke the classifier contract: predict_many returned "
                                      f"{type(results).__name__}, not a list")
        if len(results) != len(objs):
            raise PluginContractError(self.plugin, self._what, f"broke the classifier contract: predict_many returned "
                                      f"{len(results)} results for {len(objs)} inputs")
        return [self._checked(result, top_k) for result in results]


class CheckedFactory:
    """A registered classifier factory behind csn's boundary: ``factory(**options)`` (the keyword
    options of ``specs.ClassifierFactory``) returns a ``CheckedClassifier``. ``ValueError``,
    ``OSError``, ``ImportError`` and csn's own errors (missing weights, a bad option value) pass
    through; anything else the factory raises (``TypeError`` for an option it does not take...)
    or an object without ``name``/``predict``/``predict_many`` is a ``PluginContractError``."""

    def __init__(self, factory, registered_name, plugin):
        self.factory, self.registered_name, self.plugin = factory, registered_name, plugin
        self._what = f"classifier {registered_name!r}"

    def __repr__(self):
        return f"<checked factory {self.factory!r} of plugin {self.plugin!r}>"

    def __call__(self, **options):
        try:
            with contextlib.redirect_stdout(sys.stderr):
                classifier = self.factory(**options)
        except (KeyboardInterrupt, CsnError, ValueError, OSError, ImportError):
            raise
        except BaseException as error:  # noqa: BLE001
            shown = ", ".join(f"{key}={value!r}" for key, value in options.items())
            raise PluginContractError(self.plugin, self._what, f"could not be built with ({shown}): {_describe(error)}") from None
        if isinstance(classifier, CheckedClassifier):
            return classifier
        problems = [m for m in ("predict", "predict_many") if not callable(getattr(classifier, m, None))]
        name = getattr(classifier, "name", None)
        if not isinstance(name, str) or not name:
            problems.append("name (a non-empty str)")
        if problems:
            raise PluginContractError(self.plugin, self._what, f"broke the classifier contract: its factory returned "
                                      f"{type(classifier).__name__}, which lacks {', '.join(problems)}")
        return CheckedClassifier(classifier, self.registered_name, self.plugin)


def _builtin_recognises(path) -> bool:
    """True when one of csn's built-in readers claims ``path`` or it is text with number columns."""
    from .readers import BUILTIN_READERS

    for reader in BUILTIN_READERS.values():
        try:
            if reader.guess_can_open(path):
                return True
        except Exception:  # noqa: BLE001 - a guess, never fatal
            continue
    try:
        return bool(BUILTIN_READERS["text"].sniff(path))
    except Exception:  # noqa: BLE001
        return False


class CheckedReader:
    """A plugin's pattern reader behind csn's boundary.

    ``read`` must return a ``csn_plugin.pattern.Pattern``: None or anything else is a one-line
    ``PatternError`` naming the file, the reader and its plugin, as is anything it raises outside
    ``Exception`` (``SystemExit``). ``guess_can_open`` never raises, and a plugin's claim on a file
    whose extension is not among its declared ``extensions`` is blind: it yields to any other
    registered reader that declares that extension, and to csn's built-in readers when one of
    them recognises the file (its extension or first bytes, or number columns). A blind
    ``return True`` cannot take over ``.xy``, ``.xrdml`` or another plugin's files."""

    def __init__(self, reader, registered_name, plugin):
        self.reader, self.registered_name, self.plugin = reader, registered_name, plugin
        self.claimed_by_others = frozenset()  # extensions other registered readers declare (get_readers)

    name = property(lambda self: self.registered_name)
    extensions = property(lambda self: tuple(self.reader.extensions))
    description = property(lambda self: str(getattr(self.reader, "description", "")))

    def __getattr__(self, attribute):
        if attribute == "reader":
            raise AttributeError(attribute)
        return getattr(self.reader, attribute)

    def __repr__(self):
        return f"<checked reader {self.registered_name!r} of plugin {self.plugin!r}>"

    def guess_can_open(self, path) -> bool:
        try:
            with contextlib.redirect_stdout(sys.stderr):
                claimed = bool(self.reader.guess_can_open(path))
        except Exception:  # noqa: BLE001 - a faulty guess is a "no"
            return False
        except BaseException as error:  # noqa: BLE001 - SystemExit in a guess
            if isinstance(error, KeyboardInterrupt):
                raise
            _report(self.plugin, "guess_can_open", error)
            return False
        if not claimed:
            return False
        from pathlib import Path

        suffix = Path(str(path)).suffix.lower()
        if suffix in {str(e).lower() for e in self.extensions}:
            return True
        return suffix not in self.claimed_by_others and not _builtin_recognises(path)

    def read(self, path):
        from .errors import PatternError
        from .pattern import Pattern

        what = f"reader {self.registered_name!r} of plugin {self.plugin!r}"
        try:
            with contextlib.redirect_stdout(sys.stderr):
                pattern = self.reader.read(path)
        except Exception:
            raise
        except BaseException as error:  # noqa: BLE001
            if isinstance(error, KeyboardInterrupt):
                raise
            raise PatternError(str(path), f"{what} {_describe(error)}") from None
        if not isinstance(pattern, Pattern):
            raise PatternError(str(path), f"{what} returned {type(pattern).__name__}, not a Pattern")
        return pattern


def _check_classifier_factory(owner, name, factory):
    if not callable(factory):
        _report(owner, "pxrd_register_classifiers", f"classifier {name!r} is {type(factory).__name__}, not a factory; skipped")
        raise _Aborted()
    return CheckedFactory(factory, name, owner)


def _check_reader(owner, name, reader):
    if owner == BUILTIN_PLUGIN_NAME:
        return reader  # csn's own readers, as they are
    problems = [m for m in ("guess_can_open", "read") if not callable(getattr(reader, m, None))]
    extensions = getattr(reader, "extensions", None)
    if not isinstance(extensions, (tuple, list)) or not all(isinstance(e, str) for e in extensions):
        problems.append("extensions (a tuple of str)")
    if problems:
        _report(owner, "pxrd_register_readers", f"reader {name!r} lacks {', '.join(problems)}; skipped")
        raise _Aborted()
    return CheckedReader(reader, name, owner)


def get_classifiers() -> dict:
    """``{name: factory}`` of every registered classifier; ``factory(**options)`` builds one.

    Each factory is a ``CheckedFactory`` and what it builds a ``CheckedClassifier``: every result
    is validated at this boundary and a plugin that breaks the contract is named in a one-line
    ``PluginContractError`` (``.factory`` is the plugin's own factory)."""
    return _collect(get_plugin_manager().hook.pxrd_register_classifiers, "classifier", _check_classifier_factory)


def get_readers() -> dict:
    """``{name: reader}`` of every registered pattern reader, csn's built-in ones first (as they are);
    a plugin's reader is a ``CheckedReader`` (``.reader`` is the plugin's own)."""
    readers = _collect(get_plugin_manager().hook.pxrd_register_readers, "reader", _check_reader)
    for reader in readers.values():
        if isinstance(reader, CheckedReader):
            reader.claimed_by_others = frozenset(
                str(extension).lower() for other in readers.values() if other is not reader
                for extension in getattr(other, "extensions", ())
            )
    return readers


def available_readers() -> dict:
    """name -> reader: every registered reader, or the built-in ones when none is registered."""
    from .readers import BUILTIN_READERS

    readers = get_readers()
    return dict(readers) if readers else dict(BUILTIN_READERS)


def read_pattern(path, wavelength=None, format=None):
    """``readers.read_pattern`` with every registered reader (plugins' too): what
    ``Pattern.from_file`` and file paths given to ``to_pattern`` use."""
    from .readers import read_pattern as read_with

    return read_with(path, wavelength=wavelength, format=format, readers=available_readers())


def get_menu_items(hook=None) -> list:
    """All plugins' ``MenuItem``s; their callbacks report to ``hook`` (default: csn's own ``pm.hook``)."""
    plugin_manager = get_plugin_manager()
    hook = plugin_manager.hook if hook is None else hook
    items = []
    for name, answer in call_hook_safely(plugin_manager.hook.pxrd_menu_items, hook=hook):
        if not isinstance(answer, (list, tuple)):
            _report(name, "pxrd_menu_items", f"returned {type(answer).__name__}, not a list of MenuItem")
            continue
        for item in answer:
            if all(hasattr(item, attribute) for attribute in ("label", "callback")):
                items.append(item)
            else:
                _report(name, "pxrd_menu_items", f"not a menu item: {item!r}")
    return items


def notify_classification_done(source, result, hook=None) -> None:
    """Hand ``result`` to every ``pxrd_classification_done`` implementation of ``hook`` (default:
    csn's plugin manager); an implementation that raises is reported and the others still run."""
    hook = get_plugin_manager().hook if hook is None else hook
    call_hook_safely(hook.pxrd_classification_done, source=source, result=result)


def list_plugins() -> list:
    """``[{"name", "hooks", "version"}, ...]`` for every registered plugin, csn's first."""
    plugin_manager = get_plugin_manager()
    plugins = []
    for name, plugin in plugin_manager.list_name_plugin():
        if plugin is None:  # blocked
            continue
        hooks = sorted(caller.name for caller in plugin_manager.get_hookcallers(plugin) or ())
        plugins.append({"name": name, "hooks": hooks, "version": _versions.get(name)})
    return plugins
