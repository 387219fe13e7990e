"""csn's built-in ``pxrd`` plugin: the CSN classifier, the bundled baselines of the comparison
(``baseline-mlp``, ``baseline-cnn``, ``baseline-nopoolcnn``), csn's file readers and one menu item.

Loaded through the ``pxrd`` entry point ``csn = "csn_plugin.hooks.builtin"`` by any host, and
registered directly by ``csn_plugin.plugins``. Heavy imports (torch, the model) happen only when a
classifier is built or the menu item runs.
"""

import functools
import threading

from .specs import MenuItem, hookimpl

MENU_LABEL = "Identify space group (CSN)"

_classifier_lock = threading.Lock()
_shared_classifier = None
_shared_options = {}


def csn_classifier(**options):
    """Factory of the ``"csn"`` classifier: ``SpaceGroupClassifier(**options)``."""
    from ..inference.classifier import SpaceGroupClassifier

    return SpaceGroupClassifier(**options)


def configure(**options):
    """Options of the classifier the menu item uses (``model``, ``device``, ``prior``: see
    ``SpaceGroupClassifier``); it is rebuilt on next use."""
    global _shared_classifier
    with _classifier_lock:
        _shared_options.clear()
        _shared_options.update(options)
        _shared_classifier = None


def shared_classifier():
    """One CSN classifier per process, built on first use with ``configure``'s options."""
    global _shared_classifier
    with _classifier_lock:
        if _shared_classifier is None:
            _shared_classifier = csn_classifier(**_shared_options)
        return _shared_classifier


def identify_space_group(data, hook=None, top_k=5):
    """Classify ``data`` (anything ``SpaceGroupClassifier.predict`` accepts), hand the result to the
    host's ``pxrd_classification_done`` through ``hook`` (csn's own when None) and return it."""
    from ..plugins import notify_classification_done

    result = shared_classifier().predict(data, top_k=top_k)
    notify_classification_done(result.source, result, hook=hook)
    return result


@hookimpl
def pxrd_register_classifiers(register):
    from ..nets.store import BUNDLED_BASELINES

    register("csn", csn_classifier)
    for name in BUNDLED_BASELINES:
        register(name, functools.partial(csn_classifier, model=name))  # bundled baseline weights


@hookimpl
def pxrd_register_readers(register):
    from ..readers import BUILTIN_READERS

    for reader in BUILTIN_READERS.values():
        register(reader.name, reader)


@hookimpl
def pxrd_menu_items(hook):
    return [
        MenuItem(
            label=MENU_LABEL,
            callback=functools.partial(identify_space_group, hook=hook),
            help="Rank the 230 space groups of the pattern with the Chemical Sight Net",
        )
    ]
