"""The crystallographer's evidence for one pattern, in one call: peak search on the measured
points, indexing, and extinction analysis of the best cell (:func:`analyse` -> :class:`Evidence`).

Everything here is physics on plain arrays; a failure at any stage is an outcome (``note`` says
which stage stopped and why), never an exception, so that a classification can always fall back
to the network alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

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
    note: str = ""
    elapsed: float = 0.0
    timings: dict = field(default_factory=dict)

    @property
    def indexed(self) -> bool:
        return self.cell is not None


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


def analyse(two_theta, intensity, wavelength, *, prior="icsd", time_limit=30.0, lattice_hint=None) -> Evidence:
    """Peak search, indexing (a fixed work budget, ``time_limit`` seconds as a safety net; families
    in ``lattice_hint`` order first)
    and extinction analysis of the best cell under the space-group ``prior``."""
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
        indexing = index_pattern(peaks, time_limit=time_limit, lattice_hint=lattice_hint)
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
    timings["extinction"] = time.perf_counter() - start - timings["peaks"] - timings["indexing"]
    return done(f"indexed {cell.lattice} (M20 {cell.M20:.1f}, {cell.peaks_indexed}/{cell.peaks_used} lines){cut}",
                peaks=peaks, indexing=indexing, cell=cell, extinction=extinction)
