"""Evaluation of a classifier: the sets and the metrics.

- ``sets.py``: rendered, measured (rruff-dev layout) and powder-CIF sets; ``evaluate_sets`` under
  every prior; the markdown table
- ``metrics.py``: top-k, macro-F1, crystal system, ECE, the class-balanced protocol
"""
