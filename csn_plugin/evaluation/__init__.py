"""Evaluation sets (rendered, measured, powder CIF) and metrics."""
