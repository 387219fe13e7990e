"""The crystallographer's evidence for one pattern, in one call: peak search on the measured
points, indexing, and extinction analysis of the best cell (:func:`analyse` -> :class:`Evidence`).

Everything here is physics on plain arrays; a failure at any stage is an outcome (``note`` says
which stage stopped and why), never an exception, so that a classification can always fall back
to the network alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class Evidence:
    """What peak search, indexing and extinction analysis found.

    ``peaks`` (:class:`~.peaks.PeakSet` or None), ``indexing`` (:class:`~.indexing.IndexingResult`
    or None), ``cell`` (the best :class:`~.indexing.CellCandidate` or None), ``extinction``
    (:class:`~.extinction.ExtinctionResult` for that cell, or None); ``note``: one line saying
    how far the analysis got; ``elapsed``: seconds.
    """

    peaks: object = None
    indexing: object = None
    cell: object = None
    extinction: object = None
    alternatives: tuple = ()
    note: str = ""
    elapsed: float = 0.0
    timings: dict = field(default_factory=dict)

    @property
    def indexed(self) -> bool:
        return self.cell is not None

    def cells(self) -> list:
        """[(cell, extinction)] of the best cell and its alternatives, best first ([] if not indexed)."""
        if self.cell is None or self.extinction is None:
            return []
        return [(self.cell, self.extinction)] + list(self.alternatives)

    def supporting(self, crystal_system):
        """The evidence with the best cell of ``crystal_system``'s family (and its extinction
        analysis) in front: the cell a fused answer of that system rests on. Itself when the best
        cell is of that family or no alternative is."""
        family = "hexagonal" if crystal_system == "trigonal" else crystal_system
        pairs = self.cells()
        if not pairs or pairs[0][0].crystal_system == family:
            return self
        for i, (cell, extinction) in enumerate(pairs[1:], 1):
            if cell.crystal_system == family:
                rest = tuple(pairs[:i] + pairs[i + 1:])
                note = f"{self.note}; the answer rests on the alternative {cell.lattice} cell (M20 {cell.M20:.1f})"
                return replace(self, cell=cell, extinction=extinction, alternatives=rest, note=note)
        return self


ALTERNATIVES = 2  # alternative cells of other crystal families, at most
SCORE_WINDOW = 25.0  # ... whose ranking merit (a log-likelihood, indexing.py) is within this of the best
MAX_POINTS = 30_000  # scans with more points are block-averaged first (peak search cost ~ points)


def _bounded(two_theta, intensity):
    """At most MAX_POINTS points: consecutive points averaged in blocks (a 2-million-point scan
    would otherwise cost minutes; 30,000 points over 85 deg is still a 0.003-deg step)."""
    n = len(two_theta)
    if n <= MAX_POINTS:
        return two_theta, intensity
    block = -(-n // MAX_POINTS)
    m = n // block * block
    return two_theta[:m].reshape(-1, block).mean(axis=1), intensity[:m].reshape(-1, block).mean(axis=1)


def alternative_cells(indexing, *, count=ALTERNATIVES, window=SCORE_WINDOW, min_m20=6.0) -> list:
    """The best-ranked candidate of each crystal family other than the best cell's, in rank
    order, at most ``count``, each with an M20 of at least ``min_m20`` and a ranking merit within
    ``window`` of the best one's: the indexing's near-ties across crystal systems (an oP cell
    against the mP cell that also explains an impurity line), which the network's crystal-system
    belief can settle."""
    if indexing is None or indexing.best is None:
        return []
    best = indexing.best
    seen, out = {best.crystal_system}, []
    for cand in indexing.candidates[1:]:
        if len(out) >= count:
            break
        if cand.crystal_system in seen or cand.M20 < min_m20 or cand.score < best.score - window:
            continue
        seen.add(cand.crystal_system)
        out.append(cand)
    return out


def analyse_alternatives(peaks, indexing, *, prior="icsd", window=SCORE_WINDOW) -> tuple:
    """((cell, extinction), ...) of the alternative cells within ``window`` (0: none); an
    alternative whose extinction analysis fails is left out."""
    from .extinction import extinction_probabilities

    pairs = []
    for other in (alternative_cells(indexing, window=window) if window > 0 else []):
        try:
            pairs.append((other, extinction_probabilities(peaks, other, prior=prior)))
        except (ValueError, FloatingPointError, np.linalg.LinAlgError):
            continue
    return tuple(pairs)


def analyse(two_theta, intensity, wavelength, *, prior="icsd", time_limit=30.0, lattice_hint=None,
            window=SCORE_WINDOW) -> Evidence:
    """Peak search, indexing (a fixed work budget, ``time_limit`` seconds as a safety net; families
    in ``lattice_hint`` order first)
    and extinction analysis of the best cell under the space-group ``prior`` (which also gives
    the indexing's crystal-family Occam term), and of the
    alternative cells within ``window`` of its ranking merit (0: none; the classifier passes the
    window where the fusion's cell weight stays above 1 %)."""
    from .extinction import extinction_probabilities
    from .indexing import index_pattern
    from .peaks import find_peaks

    start = time.perf_counter()
    timings = {}

    def done(note, **parts):
        return Evidence(note=note, elapsed=time.perf_counter() - start, timings=timings, **parts)

    two_theta, intensity = _bounded(np.asarray(two_theta, float), np.asarray(intensity, float))
    try:
        peaks = find_peaks(two_theta, intensity, wavelength)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as error:
        return done(f"no peak search: {error}")
    timings["peaks"] = time.perf_counter() - start
    try:
        indexing = index_pattern(peaks, time_limit=time_limit, lattice_hint=lattice_hint, family_prior=prior)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as error:
        return done(f"not indexed: {error}", peaks=peaks)
    timings["indexing"] = time.perf_counter() - start - timings["peaks"]
    cut = f" (search cut short by the {time_limit:g} s safety limit)" if indexing.timed_out else ""
    cell = indexing.best
    if cell is None:
        return done(f"not indexed: {indexing.reason or 'no cell reached the acceptance merit'}{cut}", peaks=peaks,
                    indexing=indexing)
    try:
        extinction = extinction_probabilities(peaks, cell, prior=prior)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as error:
        return done(f"indexed {cell.lattice} (M20 {cell.M20:.1f}); no extinction analysis: {error}", peaks=peaks, indexing=indexing, cell=cell)
    alternatives = analyse_alternatives(peaks, indexing, prior=prior, window=window)
    timings["extinction"] = time.perf_counter() - start - timings["peaks"] - timings["indexing"]
    return done(f"indexed {cell.lattice} (M20 {cell.M20:.1f}, {cell.peaks_indexed}/{cell.peaks_used} lines){cut}",
                peaks=peaks, indexing=indexing, cell=cell, extinction=extinction, alternatives=alternatives)
