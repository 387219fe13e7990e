"""pluggy hook specifications of the ``pxrd`` plugin protocol.

Project name and entry-point group: ``"pxrd"``. A host (diffraction software) builds a
``pluggy.PluginManager("pxrd")``, adds these specs, loads the ``pxrd`` entry points and calls the
hooks; a plugin (csn is one) implements them with ``@hookimpl``. See docs/host-developers.md.
"""

from dataclasses import dataclass
from typing import Callable

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


@hookspec
def pxrd_register_classifiers(register):
    """Register classifiers: call ``register(name, factory)``; ``factory(**options)`` returns an object with ``name``, ``predict(obj, top_k=5, wavelength=None)`` and ``predict_many(objs, ...)``."""


@hookspec
def pxrd_register_readers(register):
    """Register pattern file readers: call ``register(name, reader)``; a reader has ``name``, ``extensions``, ``description``, ``guess_can_open(path)`` and ``read(path) -> Pattern``."""


@hookspec
def pxrd_menu_items(hook):
    """Return a list of ``MenuItem`` for the host's menu; ``hook`` is the host's ``pm.hook``, through which callbacks report results (``hook.pxrd_classification_done``)."""


@hookspec
def pxrd_classification_done(source, result):
    """Implemented by the host: receives each classification ``result`` (a ClassificationResult) of ``source`` (the input's name, or None)."""
