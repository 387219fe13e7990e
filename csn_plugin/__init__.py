"""csn: space groups from powder X-ray diffraction patterns with the Chemical Sight Net.

The heavy parts (torch, pymatgen, xrayutilities) are imported lazily, on first use of the
names below, so that ``import csn_plugin`` and ``csn --help`` stay instant.
"""

__version__ = "0.1.0"

_LAZY = {
    "Pattern": "csn_plugin.pattern",
    "SpaceGroupClassifier": "csn_plugin.inference.classifier",
    "ClassificationResult": "csn_plugin.inference.result",
    "simulate_peaks": "csn_plugin.synth.simulate",
    "space_group": "csn_plugin.symmetry",
    "symmetry_rules": "csn_plugin.symmetry",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'csn_plugin' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
