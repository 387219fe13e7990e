"""csn's plugin manager: loads ``pxrd`` entry points, collects classifiers, readers and menu items.

csn's own built-in plugin (``csn_plugin.hooks.builtin``) is registered first, as an ordinary
plugin; then every installed ``pxrd`` entry point. ``CSN_PLUGINS`` limits the external ones: a comma
list of entry-point or distribution names to load, ``""`` loads none, unset loads all.

A plugin that fails to import or register, or raises inside a hook, is skipped: the failure is
reported once as a ``PluginWarning`` and kept in ``get_plugin_errors()``; it never takes the host down.
"""

import os
import threading
import warnings
from dataclasses import dataclass
from importlib import metadata

import pluggy

from . import __version__
from .hooks import specs

BUILTIN_PLUGIN_NAME = "csn"
BUILTIN_MODULE = "csn_plugin.hooks.builtin"
ENV_VARIABLE = "CSN_PLUGINS"

_lock = threading.RLock()
_plugin_manager = None
_versions = {}  # plugin name -> distribution version
_errors = []


class PluginWarning(UserWarning):
    """A plugin failed to load or raised inside a hook; it was skipped."""


@dataclass(frozen=True)
class PluginError:
    """What went wrong: ``plugin`` name, ``stage`` ("load", "register" or a hook name), one-line ``message``."""

    plugin: str
    stage: str
    message: str

    def __str__(self):
        return f"plugin {self.plugin!r} failed in {self.stage}: {self.message}"


def _report(plugin, stage, error):
    message = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
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
            plugin = entry_point.load()
            plugin_manager.register(plugin, name=entry_point.name)
        except Exception as error:  # an external plugin must never take csn down
            _report(entry_point.name, "load", error)
            continue
        if distribution is not None:
            _versions[entry_point.name] = distribution.version
        for caller in plugin_manager.get_hookcallers(plugin) or ():
            if not caller.has_spec():  # a typo such as "pxrd_menu_item": never called
                _report(entry_point.name, "register", f"implements {caller.name}, which is no pxrd hook")


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


def call_hook_safely(hook_caller, **kwargs) -> list:
    """Call every implementation of one hook on its own, in registration order.

    Returns ``[(plugin_name, return_value), ...]`` for the implementations that succeeded; one that
    raises is reported (``get_plugin_errors``) and left out. ``hook_caller`` is e.g.
    ``pm.hook.pxrd_register_readers`` of any PluginManager, csn's or a host's.
    """
    answers = []
    for implementation in hook_caller.get_hookimpls():
        if getattr(implementation, "hookwrapper", False) or getattr(implementation, "wrapper", False):
            continue  # wrappers only make sense inside pluggy's own call loop
        name = implementation.plugin_name
        try:
            arguments = {argument: kwargs[argument] for argument in implementation.argnames}
            answers.append((name, implementation.function(**arguments)))
        except Exception as error:
            _report(name, hook_caller.name, error)
    return answers


def _collect(hook_caller, what):
    """Run a ``register(name, thing)`` hook plugin by plugin: a plugin's registrations count only if
    its hook returned without error; a name already taken is reported and skipped."""
    collected = {}
    for implementation in hook_caller.get_hookimpls():
        owner = implementation.plugin_name
        mine = {}

        def register(name, thing, _mine=mine):
            _mine[str(name)] = thing

        if not call_hook_safely(_single(hook_caller, implementation), register=register):
            continue
        for name, thing in mine.items():
            if name in collected:
                _report(owner, hook_caller.name, f"{what} {name!r} is already registered; skipped")
            else:
                collected[name] = thing
    return collected


class _single:
    """A hook caller view holding one implementation (for ``call_hook_safely``)."""

    def __init__(self, hook_caller, implementation):
        self.name = hook_caller.name
        self._implementation = implementation

    def get_hookimpls(self):
        return [self._implementation]


def get_classifiers() -> dict:
    """``{name: factory}`` of every registered classifier; ``factory(**options)`` builds one."""
    return _collect(get_plugin_manager().hook.pxrd_register_classifiers, "classifier")


def get_readers() -> dict:
    """``{name: reader}`` of every registered pattern reader, csn's built-in ones first."""
    return _collect(get_plugin_manager().hook.pxrd_register_readers, "reader")


def get_menu_items(hook=None) -> list:
    """All plugins' ``MenuItem``s; their callbacks report to ``hook`` (default: csn's own ``pm.hook``)."""
    plugin_manager = get_plugin_manager()
    hook = plugin_manager.hook if hook is None else hook
    items = []
    for name, answer in call_hook_safely(plugin_manager.hook.pxrd_menu_items, hook=hook):
        for item in answer or ():
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
