"""Crystallographic evidence from a measured powder pattern, with numpy and scipy only.

- :mod:`.peaks`: background-aware peak search on the measured points, Ka1/Ka2 doublets, split
  pseudo-Voigt profile fits per peak cluster, positions and integrated intensities with
  uncertainties, a width model and the detection limit per angle (:func:`find_peaks` ->
  :class:`PeakSet`).
- :mod:`.cells`: unit-cell arithmetic: metric tensors, Niggli reduction, the highest-symmetry
  Bravais lattice of a metric (brute-force Le Page-style search over short lattice vectors),
  conventional cells, comparison of cells (equivalent, sub- or supercell).
- :mod:`.indexing`: powder indexing from the first 20-30 lines for the 14 Bravais lattices
  (exhaustive Q-space trials for the high-symmetry families, Ito-style zone search for the
  low ones), zero-shift refinement, de Wolff M20 and Smith-Snyder F_N (:func:`index_pattern`
  -> :class:`IndexingResult` of ranked :class:`CellCandidate`).
- :mod:`.extinction`: likelihood of the observed peaks under each absence class of
  :func:`csn_plugin.symmetry.absence_class` compatible with a cell, in the spirit of ExtSym
  (:func:`extinction_probabilities` -> :class:`ExtinctionResult`).

Nothing here imports torch; everything works on plain arrays.
"""

from .peaks import PeakSet, find_peaks
from .cells import Cell
from .indexing import CellCandidate, IndexingResult, index_pattern
from .extinction import ExtinctionResult, extinction_probabilities

__all__ = [
    "Cell", "CellCandidate", "ExtinctionResult", "IndexingResult", "PeakSet",
    "extinction_probabilities", "find_peaks", "index_pattern",
]
