"""The networks and their weights.

- ``registry.py``: every architecture by name (``ARCHITECTURE_NAMES``, ``build_network``)
- ``csn.py``: the Chemical Sight Net; ``baselines.py``: the MLP and CNN baselines
- ``store.py``: weights I/O (safetensors + JSON sidecar), checksums, the bundled models
- ``chunks.py``: the network (or any batch function) called in chunks
"""
