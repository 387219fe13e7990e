"""Powder indexing: unit cells from the first 20-30 peak positions.

The method, per lattice family (crystal system metric), works in Q = 1/d^2, where every
reflection's Q is linear in the family's quadratic-form parameters p:

    cubic         Q = A (h^2+k^2+l^2)
    tetragonal    Q = A (h^2+k^2) + C l^2
    hexagonal     Q = A (h^2+hk+k^2) + C l^2          (rhombohedral lattices in hexagonal axes)
    orthorhombic  Q = A h^2 + B k^2 + C l^2
    monoclinic    Q = A h^2 + B k^2 + C l^2 + D hl     (unique axis b)
    triclinic     Q = A h^2 + B k^2 + C l^2 + D hk + E hl + F kl

1. *Trials* (exhaustive in the spirit of Werner's TREOR and of Q-space searches): for
   cubic to orthorhombic, every choice of n = 1, 2, 3 lines among the first few observed ones
   and of n low-index reflections for them gives p by solving an n x n linear system; all
   choices at once, in numpy. Monoclinic trials add 4-line solves over the first six lines with
   indices up to 1 (and 200, 020, 002) to an Ito-style zone search (:mod:`.zones`:
   two-dimensional zones found from pairs of lines and the lines that fit
   Q(h,k) = h^2 Qa + k^2 Qb + hk R, completed into cells); triclinic trials come from the zone search alone. Tetragonal, hexagonal and
   orthorhombic trials also complete a zone of the first lines with the missing parameter
   solved from each line the zone does not explain (:func:`.zones.completion_trials`: a short
   axis whose lines start late, which no subset of the first lines can fix). The number of trials is capped
   by a fixed work budget, MAX_TRIALS (the earliest lines' subsets are kept), not by the clock.
2. *Quick score*, vectorised over the trials: the nearest calculated Q to each of the first
   lines (sorted rows and one ``searchsorted``), a de Wolff-like merit with the lattice
   centring that suits the trial best.
3. *Refinement* of the best trials: hkl assignment, weighted linear least squares for p and the
   zero shift, repeated with the new assignment; centring chosen by M20; then the Bravais
   lattice of the highest symmetry the metric allows (:func:`.cells.lattice_symmetry`), kept
   when it indexes the lines as well (so a cF lattice is not reported as tI).
4. *Figures of merit*: de Wolff M20 (Q20 / (2 eps N20), N20 the calculated lines from the
   scan's start to Q20) and Smith-Snyder F_N; candidates are ranked by M20 with a penalty per
   unindexed line among the first 20 (a few impurity or missed lines are tolerated).

:func:`index_pattern` returns an :class:`IndexingResult` whose ``indexed`` is False when no
cell reaches the acceptance figure of merit (or when the safety time limit ran out before one did).
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from dataclasses import dataclass, field, replace

import numpy as np

from ..physics import two_theta_to_q
from .cells import (FAMILY_OF_BRAVAIS, SYSTEM_RANK, Cell, allowed_by_centring, compare_lattices,
                    lattice_symmetry, niggli_reduce)
from .peaks import PeakSet
from .zones import row_searchsorted

FAMILIES = ("cubic", "tetragonal", "hexagonal", "orthorhombic", "monoclinic", "triclinic")
CENTRINGS_OF = {"cubic": ("P", "I", "F"), "tetragonal": ("P", "I"), "hexagonal": ("P", "R"),
                "orthorhombic": ("P", "C", "A", "B", "I", "F"), "monoclinic": ("P", "C", "A", "I"),
                "triclinic": ("P",)}
# index limits (all, l) of the reflections the quick score and the polish compare lines with
_SCORE_BOX = {"cubic": (11, 11), "tetragonal": (7, 12), "hexagonal": (7, 12), "orthorhombic": (7, 7),
              "monoclinic": (4, 4), "triclinic": (3, 3)}
MAX_TRIALS = 150_000  # per family and zero-shift start: the deterministic work budget (natural counts: <= 70,000)
# the outer volume shell, max_volume to max_volume times this, searched when the inner one gives
# no cell of the family: large cubic cells (Fd-3m a = 16-22 A, V 4,400-10,400 A^3 in the val
# split) cost little with one parameter
VOLUME_FACTOR = {"cubic": 8.0}
# the metric-symmetry step of a fit that cannot stop the search waits until the end and is
# skipped more than this below the best score (an upgrade gains ~log M, 3-5, per parameter it
# saves: a triclinic fit that is metrically cubic could gain more, and is left as found)
UPGRADE_MARGIN = 20.0
# triclinic trials refined, as a multiple of top_trials: their quick score on the first 14 lines
# ranks many wrong cells of six free parameters near the right one
TRICLINIC_TRIALS_FACTOR = 2
# ... and the triclinic trials polished after the first quick score (1,500 for the other
# families): the same 12 of 30 val-split triclinic cells found with 300 as with 1,500
TRICLINIC_POLISHED = 300
N_PARAMS = {"cubic": 1, "tetragonal": 2, "hexagonal": 2, "orthorhombic": 3, "monoclinic": 4, "triclinic": 6}
# the Occam term of the ranking merit: strength x ln P(crystal family) under the domain prior
# (ICSD: triclinic 4.5 %, the other families 16-21 %): six free parameters index the stray lines
# of a measured pattern that four cannot, and the merit alone counts them for it. Chosen by
# benchmarks/fit_occam.py on val-split renders (session 13: crystal family right 75.9 -> 76.4 %
# over the default and a heavy stray-line render, flat from 0.75 to 1.0, falling beyond 1.25)
FAMILY_PRIOR_STRENGTH = 0.75
SYMMETRY_BONUS = 0.3  # the ranking's merit per step of symmetry rank (cells.SYSTEM_RANK), a tie-breaker
_DEG = math.pi / 180


# ------------------------------------------------------------------------------ result types


@dataclass(frozen=True)
class CellCandidate:
    """One indexing solution.

    ``lattice``: Bravais lattice ("tI"); ``crystal_system``: its family name ("hexagonal" for
    hP and hR); a, b, c (angstrom), alpha, beta, gamma (deg) of the conventional cell (R
    lattices in hexagonal axes, monoclinic with unique axis b), ``volume`` (angstrom^3);
    ``M20`` (de Wolff), ``F_N`` (Smith-Snyder, with ``F_N_detail`` = (N, mean |d2theta|,
    N possible)); ``peaks_indexed`` of ``peaks_used`` (the first lines considered);
    ``zero_shift`` (deg, to subtract from measured angles); ``hkl``: (peaks_used, 3) int indices
    of each used line (zeros where unindexed), ``indexed``: bool per used line,
    ``line_two_theta``: the used lines' measured positions, ``delta_two_theta``: observed minus
    calculated (after the zero correction); ``reduced``: the Niggli-reduced primitive cell;
    ``score``: the ranking merit (``evidence``, the lines' log-likelihood merit, plus the crystal
    family's Occam term); ``found_as``: the family whose search produced it.
    """

    lattice: str
    crystal_system: str
    a: float
    b: float
    c: float
    alpha: float
    beta: float
    gamma: float
    volume: float
    M20: float
    F_N: float
    F_N_detail: tuple
    peaks_indexed: int
    peaks_used: int
    zero_shift: float
    hkl: np.ndarray
    indexed: np.ndarray
    line_two_theta: np.ndarray
    delta_two_theta: np.ndarray
    reduced: Cell
    score: float
    centring: str = "P"
    found_as: str = ""
    evidence: float = float("nan")

    @property
    def cell(self) -> Cell:
        return Cell(self.a, self.b, self.c, self.alpha, self.beta, self.gamma)

    def to_dict(self) -> dict:
        """The JSON form the classifier reports ("cell")."""
        return {
            "a": round(self.a, 5), "b": round(self.b, 5), "c": round(self.c, 5),
            "alpha": round(self.alpha, 3), "beta": round(self.beta, 3), "gamma": round(self.gamma, 3),
            "volume": round(self.volume, 3), "lattice": self.lattice,
            "figure_of_merit": {"M20": round(self.M20, 2), "F_N": round(self.F_N, 2)},
            "peaks_indexed": int(self.peaks_indexed), "peaks_used": int(self.peaks_used),
            "zero_shift": round(self.zero_shift, 4),
        }


@dataclass(frozen=True)
class IndexingResult:
    """Ranked cell candidates (best first). ``indexed`` is False when no candidate reaches
    the acceptance merit (``reason`` says why); ``best`` is then None. ``elapsed`` seconds,
    ``timed_out`` when the time limit stopped the search; ``searched``: the families tried."""

    candidates: list
    indexed: bool
    reason: str
    elapsed: float
    timed_out: bool
    searched: tuple
    lines_two_theta: np.ndarray = field(default_factory=lambda: np.zeros(0))
    wavelength: float = 1.5406

    @property
    def best(self):
        return self.candidates[0] if self.indexed and self.candidates else None

    def __len__(self):
        return len(self.candidates)


# --------------------------------------------------------------------------------- families


def _forms(family, hkl):
    """Quadratic-form vectors (..., p) of reflections hkl (..., 3)."""
    h, k, l = (hkl[..., i].astype(float) for i in range(3))
    if family == "cubic":
        return (h * h + k * k + l * l)[..., None]
    if family == "tetragonal":
        return np.stack([h * h + k * k, l * l], -1)
    if family == "hexagonal":
        return np.stack([h * h + h * k + k * k, l * l], -1)
    if family == "orthorhombic":
        return np.stack([h * h, k * k, l * l], -1)
    if family == "monoclinic":
        return np.stack([h * h, k * k, l * l, h * l], -1)
    return np.stack([h * h, k * k, l * l, h * k, h * l, k * l], -1)


def params_to_rmetric(family, p):
    """Reciprocal metric G* (3x3) from the family's parameters."""
    p = np.asarray(p, dtype=float)
    if family == "cubic":
        return np.diag([p[0]] * 3)
    if family == "tetragonal":
        return np.diag([p[0], p[0], p[1]])
    if family == "hexagonal":
        a = p[0]
        return np.array([[a, a / 2, 0], [a / 2, a, 0], [0, 0, p[1]]])
    if family == "orthorhombic":
        return np.diag(p[:3])
    if family == "monoclinic":
        return np.array([[p[0], 0, p[3] / 2], [0, p[1], 0], [p[3] / 2, 0, p[2]]])
    return np.array([[p[0], p[3] / 2, p[4] / 2], [p[3] / 2, p[1], p[5] / 2], [p[4] / 2, p[5] / 2, p[2]]])


def cell_to_params(family, cell: Cell):
    g = cell.reciprocal_metric
    if family == "cubic":
        return np.array([np.trace(g) / 3])
    if family == "tetragonal":
        return np.array([(g[0, 0] + g[1, 1]) / 2, g[2, 2]])
    if family == "hexagonal":
        return np.array([(g[0, 0] + g[1, 1]) / 2, g[2, 2]])
    if family == "orthorhombic":
        return np.array([g[0, 0], g[1, 1], g[2, 2]])
    if family == "monoclinic":
        return np.array([g[0, 0], g[1, 1], g[2, 2], 2 * g[0, 2]])
    return np.array([g[0, 0], g[1, 1], g[2, 2], 2 * g[0, 1], 2 * g[0, 2], 2 * g[1, 2]])


def _valid_params(family, p):
    """Bool per parameter row (T, n): a positive-definite reciprocal metric."""
    if family in ("cubic", "tetragonal", "hexagonal", "orthorhombic"):
        return (p > 0).all(axis=1)
    if family == "monoclinic":
        return (p[:, 0] > 0) & (p[:, 1] > 0) & (p[:, 2] > 0) & (p[:, 3] ** 2 < 4 * p[:, 0] * p[:, 2] * 0.999)
    g = np.stack([np.stack([p[:, 0], p[:, 3] / 2, p[:, 4] / 2], -1), np.stack([p[:, 3] / 2, p[:, 1], p[:, 5] / 2], -1),
                  np.stack([p[:, 4] / 2, p[:, 5] / 2, p[:, 2]], -1)], 1)
    minors = (p[:, 0] > 0) & (p[:, 0] * p[:, 1] - p[:, 3] ** 2 / 4 > 0) & (np.linalg.det(g) > 0)
    return minors


def _volume_of(family, p):
    """Cell volumes (T,) of parameter rows."""
    if family == "cubic":
        return p[:, 0] ** -1.5
    if family == "tetragonal":
        return 1 / (p[:, 0] * np.sqrt(p[:, 1]))
    if family == "hexagonal":
        return 1 / (np.sqrt(p[:, 0] ** 2 * 3 / 4) * np.sqrt(p[:, 1]))
    if family == "orthorhombic":
        return 1 / np.sqrt(p[:, 0] * p[:, 1] * p[:, 2])
    if family == "monoclinic":
        return 1 / np.sqrt(np.clip(p[:, 1] * (p[:, 0] * p[:, 2] - p[:, 3] ** 2 / 4), 1e-30, None))
    det = (p[:, 0] * (p[:, 1] * p[:, 2] - p[:, 5] ** 2 / 4) - p[:, 3] / 2 * (p[:, 3] / 2 * p[:, 2] - p[:, 5] * p[:, 4] / 4)
           + p[:, 4] / 2 * (p[:, 3] * p[:, 5] / 4 - p[:, 1] * p[:, 4] / 2))
    return 1 / np.sqrt(np.clip(det, 1e-30, None))


@functools.lru_cache(maxsize=None)
def _index_box(family, limit, l_limit=None):
    """(hkl, forms, allowed per centring) of the reflections with indices up to ``limit`` (l up
    to ``l_limit``), one per distinct quadratic form (allowed where any reflection of that form
    is allowed)."""
    r = range(-limit, limit + 1)
    l_limit = limit if l_limit is None else l_limit
    if family in ("cubic", "orthorhombic"):
        hkl = np.array(list(itertools.product(range(limit + 1), repeat=3)))
    elif family == "tetragonal":
        hkl = np.array([(h, k, l) for h in range(limit + 1) for k in range(limit + 1) for l in range(l_limit + 1)])
    elif family == "hexagonal":
        hkl = np.array([(h, k, l) for h in r for k in r for l in range(0, l_limit + 1)])
    elif family == "monoclinic":
        hkl = np.array([(h, k, l) for h in r for k in range(0, limit + 1) for l in range(0, limit + 1)])
    else:
        hkl = np.array([(h, k, l) for h in r for k in r for l in range(0, limit + 1)])
    hkl = hkl[(hkl != 0).any(axis=1)]
    forms = _forms(family, hkl)
    keys, first, inverse = np.unique(forms, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    allowed = {}
    for centring in CENTRINGS_OF[family]:
        flag = allowed_by_centring(hkl, centring)
        allowed[centring] = np.bincount(inverse, weights=flag, minlength=len(keys)) > 0
    return hkl[first], keys, allowed


_LAST_REFLECTIONS = {}  # the last few lists: each centring of one cell is evaluated on the same one


def _reflections_for(family, p, q_max):
    """(hkl, forms, allowed) of every distinct form with Q <= q_max for these parameters."""
    key = (family, np.asarray(p, dtype=float).tobytes(), float(q_max))
    if key not in _LAST_REFLECTIONS:
        if len(_LAST_REFLECTIONS) >= 4:
            _LAST_REFLECTIONS.pop(next(iter(_LAST_REFLECTIONS)))
        _LAST_REFLECTIONS[key] = _reflections_uncached(family, p, q_max)
    return _LAST_REFLECTIONS[key]


def _reflections_uncached(family, p, q_max):
    g = params_to_rmetric(family, p)
    cell = Cell.from_reciprocal_metric(g)
    lim = int(math.ceil(math.sqrt(q_max) * max(cell.a, cell.b, cell.c))) + 1
    lim = min(max(lim, 2), 30)
    hkl, forms, allowed = _index_box(family, lim)
    q = forms @ np.asarray(p, dtype=float)
    keep = q <= q_max * 1.0001
    return hkl[keep], forms[keep], {c: a[keep] for c, a in allowed.items()}


# ------------------------------------------------------------------------------------- lines


@dataclass
class _Lines:
    two_theta: np.ndarray  # measured (deg)
    sigma: np.ndarray  # deg
    wavelength: float
    start: float  # scan start (deg)
    tol: np.ndarray  # acceptance (deg) per line

    def q(self, zero=0.0):
        return two_theta_to_q(self.two_theta - zero, self.wavelength)

    def dq(self, zero=0.0):
        """dQ/d(2theta) per degree."""
        t = np.radians(self.two_theta - zero)
        return (2 / self.wavelength**2) * np.sin(t) * _DEG

    @property
    def q_start(self):
        return (2 * math.sin(math.radians(self.start) / 2) / self.wavelength) ** 2


def _prepare_lines(peaks, wavelength, n_lines, tolerance, min_significance, min_relative=0.5, satellites=0.1):
    """The first ``n_lines`` lines: significant, at least ``min_relative`` % of the strongest,
    and not a satellite (below ``satellites`` x a line within 1.5 FWHM: profile shoulders)."""
    if isinstance(peaks, PeakSet):
        keep = peaks.significance >= min_significance
        if len(peaks):
            rel = peaks.relative_intensity
            keep &= rel >= min_relative
            if satellites:
                t, w = peaks.two_theta, peaks.fwhm
                close = np.abs(t[:, None] - t[None, :]) < 1.5 * np.maximum(w[:, None], w[None, :])
                keep &= ~(close & (rel[:, None] < satellites * rel[None, :])).any(axis=1)
        tt, sg = peaks.two_theta[keep], peaks.two_theta_sigma[keep]
        start = peaks.two_theta_range[0]
        wavelength = peaks.wavelength if wavelength is None else wavelength
    else:
        tt = np.asarray(peaks, dtype=float)
        sg = np.full(len(tt), 0.005)
        start = max(float(tt.min()) - 1.0, 1.0) if len(tt) else 5.0
    order = np.argsort(tt)
    tt, sg = tt[order][:n_lines], sg[order][:n_lines]
    sg = np.where(np.isfinite(sg), sg, 0.02)
    tol = np.sqrt((3 * sg) ** 2 + tolerance**2)
    return _Lines(tt, sg, float(wavelength), float(start), tol)


def estimate_zero_shift(two_theta, max_shift=0.15):
    """A zero shift (deg) from pairs of lines in the ratio of first and second order
    (d and d/2), or 0.0 when fewer than two pairs agree."""
    t = np.radians(np.sort(np.asarray(two_theta, dtype=float)))
    if len(t) < 3:
        return 0.0
    ti, tj = np.meshgrid(t, t, indexing="ij")
    f = np.sin(tj / 2) - 2 * np.sin(ti / 2)
    fp = -0.5 * np.cos(tj / 2) + np.cos(ti / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.degrees(-f / fp)
    upper = np.triu(np.ones_like(z, dtype=bool), 1)
    z = z[upper & np.isfinite(z) & (np.abs(z) < max_shift)]
    if len(z) < 2:
        return 0.0
    z = np.sort(z)
    # densest cluster of width 0.01 deg
    counts = np.searchsorted(z, z + 0.01, side="right") - np.arange(len(z))
    best = int(np.argmax(counts))
    if counts[best] < 2:
        return 0.0
    return float(np.median(z[best:best + counts[best]]))


# ------------------------------------------------------------------------------------ trials


@functools.lru_cache(maxsize=None)
def _trial_basis(family, limit):
    """Distinct low-index form vectors used to solve for trial parameters (monoclinic: the
    indices up to 1 and the second orders 200, 020, 002 that C-centred cells need)."""
    _, forms, _ = _index_box(family, limit)
    if family == "monoclinic" and limit == 1:
        extra = _forms(family, np.array([(2, 0, 0), (0, 2, 0), (0, 0, 2)]))
        forms = np.concatenate([forms, extra])
    return forms


@functools.lru_cache(maxsize=None)
def _basis_tuples(family, n, limit):
    """(inverse matrices (K, n, n), basis form tuples (K, n, n)) of the nonsingular ordered
    n-tuples of distinct basis forms, one per permutation class of the axes where the family
    allows (orthorhombic: axis permutations give the same cells)."""
    basis = _trial_basis(family, limit)
    idx = np.array(list(itertools.permutations(range(len(basis)), n)))
    mats = basis[idx]  # (K, n, n): row i = form of the reflection assigned to line i
    det = np.linalg.det(mats)
    keep = np.abs(det) > 1e-9
    mats = mats[keep]
    zeros = (mats == 0).any(axis=2) if family != "cubic" else np.ones(mats.shape[:2], dtype=bool)
    if family in ("tetragonal", "hexagonal"):
        mats = mats[zeros.any(axis=1)]  # at least one (hk0) or (00l) line
    elif family == "orthorhombic":
        mats = mats[zeros.sum(axis=1) >= 2]  # at least two zone lines
    elif family == "monoclinic":
        mats = mats[(mats[:, :, 3] != 0).any(axis=1)]  # the hl term must be determined
    if family == "orthorhombic":
        # column permutations of a tuple give the same cell with permuted axes: keep one
        m = mats.astype(np.int64)
        codes = []
        for perm in itertools.permutations(range(3)):
            flat = m[:, :, list(perm)].reshape(len(m), -1)
            codes.append(flat @ (10 ** np.arange(flat.shape[1], dtype=np.int64)[::-1]))
        key = np.min(np.stack(codes, 1), axis=1)
        _, first = np.unique(key, return_index=True)
        mats = mats[np.sort(first)]
    inv = np.linalg.inv(mats)
    return inv, mats


def _trials_linear(family, lines, zero, n_first, limit):
    """Trial parameters from every n-subset of the first lines and every n-tuple of basis
    reflections (n = number of parameters)."""
    n = N_PARAMS[family]
    q = lines.q(zero)
    first = min(n_first, len(q))
    if first < n:
        return np.zeros((0, n))
    inv, _ = _basis_tuples(family, n, limit)
    subsets = np.array(list(itertools.combinations(range(first), n)))
    qs = q[subsets]  # (S, n)
    params = np.einsum("kij,sj->ski", inv, qs).reshape(-1, n)
    return params


# ------------------------------------------------------------------------------ quick score


def _quick_score(family, params, lines, zero, n_check, max_unindexed, v_range, penalty, keep_top=1500):
    """Two passes: the primitive lattice only for every trial, then, for the ``keep_top`` trials
    that index most lines, one least-squares polish and every centring of the family."""
    if family in ("tetragonal", "hexagonal", "orthorhombic", "monoclinic"):
        ok, scores, counts, cen = _fast_pass(family, params, lines, zero, n_check, max_unindexed, v_range, penalty)
    else:
        ok, scores, counts, cen = _quick_score_pass(family, params, lines, zero, n_check, max_unindexed, v_range,
                                                    penalty, ("P",))
    kept = params[ok]
    sel = np.lexsort((-scores, -counts))[:keep_top]
    sub = _polish(family, kept[sel], lines, zero, n_check)
    ok2, s2, c2, ce2 = _quick_score_pass(family, sub, lines, zero, n_check, max_unindexed, v_range, penalty,
                                         CENTRINGS_OF[family])
    return sub[ok2], s2, c2, ce2


def _polish(family, params, lines, zero, n_check, chunk=256, loose=4.0):
    """One weighted least-squares step for each trial (all at once): each of the first lines
    is assigned its nearest calculated reflection when within ``loose`` tolerances, and the
    parameters are re-solved from them. A trial solved from a low-angle line carries that line's
    error (a zero shift of 0.04 deg is 0.7 % of Q at 12 deg), enough to miss every high-angle line
    in the strict score; the polished trial does not."""
    if not len(params):
        return params
    q = lines.q(zero)[:n_check]
    tolq = (lines.tol * lines.dq(zero))[:n_check] * 1.5
    lim, l_lim = _SCORE_BOX[family]
    _, forms, _ = _index_box(family, lim, l_lim)
    n = params.shape[1]
    out = params.copy()
    w = 1.0 / tolq
    for s0 in range(0, len(params), chunk):
        p = params[s0:s0 + chunk]
        qc = p @ forms.T  # (T, H)
        near = np.argmin(np.abs(qc[:, :, None] - q[None, None, :]), axis=1)  # (T, N) nearest form per line
        f = forms[near]  # (T, N, n)
        resid = np.abs(np.take_along_axis(qc, near, axis=1) - q[None, :])
        use = (resid < loose * tolq[None, :]).astype(float) * w[None, :]  # weights, 0 = not used
        enough = (use > 0).sum(axis=1) >= n + 2
        fw = f * use[:, :, None]
        normal = np.einsum("tni,tnj->tij", fw, f * w[None, :, None])
        rhs = np.einsum("tni,n->ti", fw, q * w)
        with np.errstate(all="ignore"):
            sol = np.einsum("tij,tj->ti", np.linalg.pinv(normal, hermitian=True), rhs)  # singular: a free parameter
        good = enough & np.isfinite(sol).all(axis=1) & _valid_params(family, np.where(np.isfinite(sol), sol, 1.0))
        out[s0:s0 + chunk] = np.where(good[:, None], sol, p)
    return out


@functools.lru_cache(maxsize=None)
def _planar_values(family, limit=12):
    """Sorted distinct values of h^2+k^2 (tetragonal) or h^2+hk+k^2 (hexagonal), 0 included."""
    r = range(-limit, limit + 1)
    if family == "tetragonal":
        values = {h * h + k * k for h in r for k in r}
    else:
        values = {h * h + h * k + k * k for h in r for k in r}
    return np.array(sorted(v for v in values if v <= limit * limit), dtype=float)


def _fast_pass(family, params, lines, zero, n_check, max_unindexed, v_range, penalty, l_max=None):
    """Screen with the first 5 lines (low indices), then 8, then the full merit of the
    survivors. Two of the first five and of the first eight may be impurity lines; for the
    monoclinic cells (4 parameters explain most sets of five lines by chance) one of five."""
    if n_check > 9 and len(params) > 2000:
        screen_l = 6 if family in ("tetragonal", "hexagonal") else 4
        ok0, _, n_hit0, _ = _fast_pass1(family, params, lines, zero, 5, max_unindexed, v_range, penalty, screen_l)
        idx0 = np.flatnonzero(ok0)
        first = np.zeros_like(ok0)
        first[idx0[n_hit0 >= (4 if N_PARAMS[family] >= 4 else 3)]] = True
        # the monoclinic screen keeps low indices on 8 lines too (the costly family; an
        # orthorhombic long axis needs its high k on the first lines)
        ok, merit, n_hit, cen = _fast_pass1(family, params[first], lines, zero, 8, max_unindexed, (0, np.inf),
                                            penalty, screen_l if family == "monoclinic" else l_max)
        idx = np.flatnonzero(first)[ok]
        survive = n_hit >= 6
        ok2 = np.zeros_like(ok0)
        ok2[idx[survive]] = True
        _, merit2, n_hit2, cen2 = _fast_pass1(family, params[ok2], lines, zero, n_check, max_unindexed, (0, np.inf),
                                              penalty, l_max)
        return ok2, merit2, n_hit2, cen2
    return _fast_pass1(family, params, lines, zero, n_check, max_unindexed, v_range, penalty, l_max)


def _fast_pass1(family, params, lines, zero, n_check, max_unindexed, v_range, penalty, l_max=None):
    """Primitive-lattice merit of many trials without building their reflection lists:
    tetragonal/hexagonal: for each line and l, the nearest representable h^2+k^2 (h^2+hk+k^2);
    orthorhombic: for each line and (k, l), the nearest h."""
    ok = _valid_params(family, params)
    vol = _volume_of(family, np.where(ok[:, None], params, 1.0))
    ok &= (vol >= v_range[0]) & (vol <= v_range[1])
    p = params[ok]
    if not len(p):
        return ok, np.zeros(0), np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    q = lines.q(zero)[:n_check]
    tolq = (lines.tol * lines.dq(zero))[:n_check] * 1.5
    q_n = float(q[-1])
    q_reach = float(np.max(q + tolq))  # a calculated line above this indexes no observed one
    eps_floor = 0.1 * float(np.median(tolq))
    dist = np.full((len(p), len(q)), np.inf)
    if l_max is None:
        l_max = 12 if family in ("tetragonal", "hexagonal") else 7
    if family in ("tetragonal", "hexagonal"):
        values = _planar_values(family)
        a, c = p[:, 0:1], p[:, 1:2]
        n_calc = np.zeros(len(p))
        for l in range(l_max + 1):
            target = (q[None, :] - c * l * l) / a  # (T, N) wanted planar value
            i = np.searchsorted(values, target).clip(1, len(values) - 1)
            for j in (i - 1, i):
                v = values[j]
                bad = (v == 0) & (l == 0)
                d = np.where(bad, np.inf, np.abs(a * v + c * l * l - q[None, :]))
                dist = np.minimum(dist, d)
            cnt = np.searchsorted(values, (q_n - c[:, 0] * l * l) / a[:, 0], side="right")
            cnt = np.where(q_n - c[:, 0] * l * l >= 0, cnt - (1 if l == 0 else 0), 0)
            n_calc += cnt
    elif family == "monoclinic":
        a, b, c, dd = (p[:, i] for i in range(4))
        c_low = c - dd * dd / (4 * a)  # the lowest Q of an (h, k, l) row over real h is B k^2 + c_low l^2
        n_calc = np.zeros(len(p))
        kl_max = min(l_max, 6)
        for k in range(0, kl_max + 1):
            for l in range(0, kl_max + 1):
                rows = _reaching(b * k * k + c_low * l * l, q_reach)
                if rows is None:
                    continue  # no trial has a line of this row below the last observed one
                ar, br, cr, dr = a[rows, None], b[rows, None], c[rows, None], dd[rows, None]
                # A h^2 + D l h + (B k^2 + C l^2 - q) = 0: the nearest integer roots
                rest = br * k * k + cr * l * l - q[None, :]
                sq = np.sqrt(np.clip((dr * l) ** 2 - 4 * ar * rest, 0, None))
                local = dist[rows]
                for sign in (-1.0, 1.0):
                    if l == 0 and sign < 0:
                        continue  # h and -h coincide in the h k 0 row
                    root = (-dr * l + sign * sq) / (2 * ar)
                    for hh in (np.floor(root), np.ceil(root)):
                        d_ = np.abs(hh * (ar * hh + dr * l) + rest)
                        if k == 0 and l == 0:
                            d_ = np.where(hh == 0, np.inf, d_)
                        np.minimum(local, d_, out=local)
                dist[rows] = local
                # calculated lines up to q_n for this (k, l): integers between the roots
                ar, br, cr, dr = ar[:, 0], br[:, 0], cr[:, 0], dr[:, 0]
                disc_n = (dr * l) ** 2 - 4 * ar * (br * k * k + cr * l * l - q_n)
                sq_n = np.sqrt(np.clip(disc_n, 0, None))
                hi_r = (-dr * l + sq_n) / (2 * ar)
                if l == 0:
                    cnt = np.floor(hi_r) + 1  # h >= 0 only
                else:
                    cnt = np.floor(hi_r) - np.ceil((-dr * l - sq_n) / (2 * ar)) + 1
                cnt = np.where(disc_n >= 0, np.maximum(cnt, 0), 0)
                if k == 0 and l == 0:
                    cnt = np.maximum(cnt - 1, 0)
                n_calc[rows] += cnt
    else:
        a, b, c = p[:, 0], p[:, 1], p[:, 2]
        n_calc = np.zeros(len(p))
        k_max = int(min(l_max, 10))
        for k in range(k_max + 1):
            for l in range(k_max + 1):
                rows = _reaching(b * k * k + c * l * l, q_reach)
                if rows is None:
                    continue
                ar, br, cr = a[rows, None], b[rows, None], c[rows, None]
                rest = q[None, :] - br * k * k - cr * l * l  # (the original order of operations: equal ties)
                h = np.sqrt(np.clip(rest / ar, 0, None))
                local = dist[rows]
                for hh in (np.floor(h), np.ceil(h)):
                    d = np.abs(ar * hh * hh - rest)
                    if k == 0 and l == 0:
                        d = np.where(hh == 0, np.inf, d)
                    np.minimum(local, d, out=local)
                dist[rows] = local
                top = q_n - br[:, 0] * k * k - cr[:, 0] * l * l
                cnt = np.where(top >= 0, np.floor(np.sqrt(np.clip(top / ar[:, 0], 0, None))) + 1, 0)
                if k == 0 and l == 0:
                    cnt = np.maximum(cnt - 1, 0)
                n_calc[rows] += cnt
    hit = dist < tolq[None, :]
    n_hit = hit.sum(axis=1)
    eps = np.maximum(np.where(hit, dist, 0).sum(axis=1) / np.maximum(n_hit, 1), eps_floor)
    m = q_n / (2 * eps * np.maximum(n_calc, 1))
    merit = _evidence(m, n_hit, len(q), N_PARAMS[family], penalty)
    merit = np.where(len(q) - n_hit <= max_unindexed + 1, merit, -np.inf)
    return ok, merit, n_hit, np.zeros(len(p), dtype=int)


def _reaching(lowest, q_reach):
    """The trials whose reflection row starts at or below ``q_reach`` (its lowest Q ``lowest``, (T,)):
    a slice of all of them when most do, an index array when few do, None when none does."""
    near = lowest <= q_reach
    count = int(near.sum())
    if count == 0:
        return None
    return slice(None) if count > 0.8 * len(near) else np.flatnonzero(near)


def _quick_score_pass(family, params, lines, zero, n_check, max_unindexed, v_range, penalty, centrings):
    """Vectorised merit of trial parameter rows: (valid mask, score, n_indexed, centring index).

    Per trial, the calculated Q of the low-index box are sorted once; each observed line's
    neighbours in that order are checked (allowed by the centring, within tolerance), and the
    merit is the evidence score of :func:`_evidence` with a de Wolff-like M over n_check lines."""
    ok = _valid_params(family, params)
    vol = _volume_of(family, np.where(ok[:, None], params, 1.0))
    ok &= (vol >= v_range[0]) & (vol <= v_range[1])
    params = params[ok]
    if not len(params):
        return ok, np.zeros(0), np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    q = lines.q(zero)[:n_check]
    tolq = (lines.tol * lines.dq(zero))[:n_check] * 1.5
    q_n = q[-1]
    n_par = N_PARAMS[family]
    lim, l_lim = _SCORE_BOX[family]
    _, forms, allowed = _index_box(family, lim, l_lim)
    allowed_m = np.stack([allowed[c] for c in centrings])  # (C, H)
    scores = np.zeros(len(params))
    counts = np.zeros(len(params), dtype=int)
    best_c = np.zeros(len(params), dtype=int)
    chunk = max(1, 1_000_000 // max(len(forms), 1))
    q_start = lines.q_start
    eps_floor = 0.1 * float(np.median(tolq))
    h = len(forms)
    for s0 in range(0, len(params), chunk):
        p = params[s0:s0 + chunk]
        t_rows = len(p)
        qc = p @ forms.T  # (T, H)
        order = np.argsort(qc, axis=1)
        qs = np.take_along_axis(qc, order, axis=1)
        pos = row_searchsorted(qs, q)
        in_range = (qs >= q_start) & (qs <= q_n + tolq[-1])
        best = np.full(t_rows, -np.inf)
        for ci in range(len(centrings)):
            al = allowed_m[ci][order]  # (T, H) allowed in sorted order
            dist = np.full((t_rows, len(q)), np.inf)
            for k in (-3, -2, -1, 0, 1, 2):
                idx = np.clip(pos + k, 0, h - 1)
                cand_q = np.take_along_axis(qs, idx, axis=1)
                cand_ok = np.take_along_axis(al, idx, axis=1)
                d = np.where(cand_ok, np.abs(cand_q - q[None, :]), np.inf)
                dist = np.minimum(dist, d)
            hit = dist < tolq[None, :]
            n_hit = hit.sum(axis=1)
            eps = np.where(hit, dist, 0).sum(axis=1) / np.maximum(n_hit, 1)
            eps = np.maximum(eps, eps_floor)
            n_calc = (in_range & al).sum(axis=1)
            m = q_n / (2 * eps * np.maximum(n_calc, 1))
            merit = _evidence(m, n_hit, len(q), n_par, penalty)
            merit = np.where(len(q) - n_hit <= max_unindexed, merit, -np.inf)
            better = merit > best
            best = np.where(better, merit, best)
            best_c[s0:s0 + chunk] = np.where(better, CENTRINGS_OF[family].index(centrings[ci]), best_c[s0:s0 + chunk])
            counts[s0:s0 + chunk] = np.where(better, n_hit, counts[s0:s0 + chunk])
        scores[s0:s0 + chunk] = best
    return ok, scores, counts, best_c


def _evidence(m, n_indexed, n_lines, n_params, penalty):
    """Ranking merit: each indexed line beyond the ones the parameters were solved from is a
    coincidence of chance ~1/M, so log M per such line; an unindexed line costs as much plus
    log(penalty): a cell with a high M that leaves lines unexplained (a subcell missing the weak
    superstructure lines, or a wrong cell missing the last lines) loses to one of a lower M that
    explains them."""
    log_m = np.log(np.maximum(m, 1.0))
    free = np.maximum(np.asarray(n_indexed) - n_params, 0)
    return free * log_m + (np.asarray(n_lines) - np.asarray(n_indexed)) * (math.log(penalty) - log_m)


# -------------------------------------------------------------------------------- refinement


@dataclass
class _Fit:
    family: str
    centring: str
    params: np.ndarray
    zero: float
    hkl: np.ndarray
    indexed: np.ndarray
    delta: np.ndarray  # deg, observed - calculated
    m20: float
    f_n: float
    f_detail: tuple
    n_indexed: int
    score: float


def _assign(family, params, centring, lines, zero, q_max):
    hkl, forms, allowed = _reflections_for(family, params, q_max)
    sel = allowed[centring]
    hkl, forms = hkl[sel], forms[sel]
    if not len(forms):
        return None
    qc = forms @ params
    order = np.argsort(qc)
    qc, hkl, forms = qc[order], hkl[order], forms[order]
    q = lines.q(zero)
    pos = np.searchsorted(qc, q).clip(1, len(qc) - 1) if len(qc) > 1 else np.zeros(len(q), dtype=int)
    if len(qc) > 1:
        left = pos - 1
        pick = np.where(np.abs(q - qc[left]) <= np.abs(q - qc[pos]), left, pos)
    else:
        pick = pos
    return qc, hkl, forms, pick


def _assigned(family, params, centring, lines, zero):
    """The reflection list of a cell up to just beyond the last line, and each line's nearest."""
    return _assign(family, params, centring, lines, zero, float(lines.q(zero).max()) * 1.05 + 1e-6)


def _evaluate(family, params, centring, lines, zero, penalty, n_m20=20, got=None):
    """Figures of merit of a cell for the lines: a _Fit (without refinement). ``got``: the
    cell's :func:`_assigned` when already computed."""
    q_all = lines.q(zero)
    got = _assigned(family, params, centring, lines, zero) if got is None else got
    if got is None:
        return None
    qc, hkl, forms, pick = got
    dq = lines.dq(zero)
    delta = (q_all - qc[pick]) / dq  # deg
    indexed = np.abs(delta) <= lines.tol
    n20 = min(n_m20, len(q_all))
    q20 = q_all[n20 - 1]
    ind20 = indexed[:n20]
    if ind20.sum() == 0:
        return None
    eps = float(np.mean(np.abs(q_all[:n20] - qc[pick[:n20]])[ind20]))
    eps = max(eps, 0.1 * float(np.median(lines.tol[:n20] * dq[:n20])))
    distinct = np.unique(np.round(qc[(qc >= lines.q_start * 0.999) & (qc <= q20)] / (q20 * 2e-6)))
    n_calc = max(len(distinct), 1)
    m20 = q20 / (2 * eps * n_calc)
    n_all = len(q_all)
    q_n = q_all[-1]
    distinct_n = np.unique(np.round(qc[(qc >= lines.q_start * 0.999) & (qc <= q_n)] / (q_n * 2e-6)))
    mean_dt = float(np.mean(np.abs(delta[indexed]))) if indexed.any() else np.inf
    mean_dt = max(mean_dt, 1e-4)
    f_n = n_all / (mean_dt * max(len(distinct_n), 1))
    # every used line counts (not the first 20 only): a cell that leaves later lines unexplained
    # is not as good as one with the same M20 that explains them
    score = float(_evidence(m20, int(indexed.sum()), n_all, N_PARAMS[family], penalty))
    out_hkl = np.where(indexed[:, None], hkl[pick], 0)
    return _Fit(family, centring, np.asarray(params, float), float(zero), out_hkl, indexed, delta, float(m20),
                float(f_n), (n_all, mean_dt, len(distinct_n)), int(indexed.sum()), float(score))


def _refine(family, params, centring, lines, zero, penalty, refine_zero=True, max_zero=0.2, iterations=4):
    """Assign, least-squares refine parameters (and zero shift), repeat; returns the best _Fit."""
    params = np.asarray(params, dtype=float)
    got = _assigned(family, params, centring, lines, zero)
    best = _evaluate(family, params, centring, lines, zero, penalty, got=got)
    if best is None:
        return None
    n = len(params)
    for _ in range(iterations):
        q_all = lines.q(zero)
        qc, hkl, forms, pick = got  # the assignment of the current parameters
        dq = lines.dq(zero)
        delta = (q_all - qc[pick]) / dq
        use = np.abs(delta) <= np.maximum(lines.tol, 2 * np.median(lines.tol))
        if use.sum() < n + 1:
            break
        f = forms[pick[use]]
        w = 1 / (lines.tol[use] * dq[use])
        fit_zero = refine_zero and use.sum() >= n + 3
        # q_obs(2theta - z) ~ q_obs(2theta - z0) - (z - z0) dq  =>  f.p + (z - z0) dq = q_obs(z0)
        a = np.column_stack([f, dq[use]]) if fit_zero else f
        sol, *_ = np.linalg.lstsq(a * w[:, None], q_all[use] * w, rcond=None)
        new_params = sol[:n]
        new_zero = zero + (sol[n] if fit_zero else 0.0)
        if abs(new_zero) > max_zero:
            sol, *_ = np.linalg.lstsq(f * w[:, None], q_all[use] * w, rcond=None)
            new_params, new_zero = sol[:n], zero
        if not _valid_params(family, new_params[None, :])[0]:
            break
        new_got = _assigned(family, new_params, centring, lines, new_zero)
        fit = _evaluate(family, new_params, centring, lines, new_zero, penalty, got=new_got)
        if fit is None:
            break
        params, zero, got = new_params, new_zero, new_got
        if fit.score > best.score - 1e-9 or fit.n_indexed > best.n_indexed:
            improved = fit.score > best.score + 1e-6
            best = fit
            if not improved:
                break
        else:
            break
    return best


def _best_centring(family, params, lines, zero, penalty):
    """Refine with the primitive lattice, choose the centring by M20 among those that index as
    many lines, refine again with it."""
    fit = _refine(family, params, "P", lines, zero, penalty)
    if fit is None:
        return None
    best = fit
    for cen in CENTRINGS_OF[family][1:]:
        other = _evaluate(family, fit.params, cen, lines, fit.zero, penalty)
        if other is not None and other.n_indexed >= best.n_indexed and other.m20 > best.m20:
            best = other
    if best.centring != "P":
        refined = _refine(family, best.params, best.centring, lines, best.zero, penalty)
        if refined is not None and refined.score >= best.score:
            best = refined
    return best


def _bravais_of(family, centring):
    table = {"cubic": "c", "tetragonal": "t", "hexagonal": "h", "orthorhombic": "o", "monoclinic": "m", "triclinic": "a"}
    letter = "S" if family in ("orthorhombic", "monoclinic") and centring in "ABC" else centring
    if family == "monoclinic" and centring == "I":
        letter = "S"
    return table[family] + letter


_CENTRING_PARITY = {"C": (1, 1, 0), "A": (0, 1, 1), "I": (1, 1, 1)}  # h, k, l coefficients of "... even"
_CENTRING_OF_PARITY = {v: k for k, v in _CENTRING_PARITY.items()}


def _monoclinic_setting(params, centring):
    """(params, centring) of the same monoclinic lattice with its a*c* plane Gauss-reduced and
    beta >= 90 deg (D >= 0), the centring letter carried along: the search may end in any basis
    of that plane (a beta of 15 deg is a valid cell and no crystallographer's), and the
    extinction analysis' cell choices (P 1 21/c 1, P 1 21/n 1, ...) are those of a reduced cell.
    Rows of ``m`` are the new a*, c* in the old ones: h = m11 h' + m21 l', l = m12 h' + m22 l'."""
    a, c, d = float(params[0]), float(params[2]), float(params[3])
    m = np.eye(2, dtype=np.int64)
    for _ in range(50):
        if c < a:  # swap the axes
            a, c, m = c, a, m[::-1].copy()
        n = int(round(d / (2 * a)))
        if n == 0:
            break
        # c*' = c* - n a*: C' = C - n D + n^2 A, D' = D - 2 n A
        c, d = c - n * d + n * n * a, d - 2 * n * a
        m[1] = m[1] - n * m[0]
    if d < 0:  # h -> -h: beta obtuse
        d, m = -d, np.array([-m[0], m[1]])
    if centring != "P":
        ph, pk, pl = _CENTRING_PARITY[centring]
        new = ((ph * m[0, 0] + pl * m[0, 1]) % 2, pk, (ph * m[1, 0] + pl * m[1, 1]) % 2)
        centring = _CENTRING_OF_PARITY[new]
    return np.array([a, float(params[1]), c, d]), centring


def _standard_setting(fit: _Fit, lines, reduced: Cell):
    """The fit written in the cell a crystallographer reports: monoclinic with its a*c* plane
    reduced (:func:`_monoclinic_setting`), triclinic as ``reduced``, the lattice's Niggli cell (the
    search ends in any basis of the lattice: angles of 84, 108 and 118 deg were reported); the same
    lattice, so the same lines and figures of merit, and the ranking merit kept."""
    if fit.family == "monoclinic":
        params, centring = _monoclinic_setting(fit.params, fit.centring)
    elif fit.family == "triclinic" and fit.centring == "P":
        params, centring = cell_to_params("triclinic", reduced), "P"
    else:
        return fit
    if centring == fit.centring and np.allclose(params, fit.params, rtol=1e-12, atol=0):
        return fit
    other = _evaluate(fit.family, params, centring, lines, fit.zero, 1.0)
    if other is None or other.n_indexed != fit.n_indexed:  # (the same lattice gives the same lines)
        return fit
    return replace(other, score=fit.score)


def _to_candidate(fit: _Fit, lines, found_as):
    # the Niggli cell is the lattice's, whatever basis the fit is written in: reduced once
    cell = Cell.from_reciprocal_metric(params_to_rmetric(fit.family, fit.params))
    reduced, _ = niggli_reduce(cell.primitive(fit.centring))
    fit = _standard_setting(fit, lines, reduced)
    cell = Cell.from_reciprocal_metric(params_to_rmetric(fit.family, fit.params))
    return CellCandidate(
        lattice=_bravais_of(fit.family, fit.centring), crystal_system=fit.family, a=cell.a, b=cell.b, c=cell.c,
        alpha=cell.alpha, beta=cell.beta, gamma=cell.gamma, volume=cell.volume, M20=fit.m20, F_N=fit.f_n,
        F_N_detail=fit.f_detail, peaks_indexed=fit.n_indexed, peaks_used=len(lines.two_theta), zero_shift=fit.zero,
        hkl=fit.hkl, indexed=fit.indexed, line_two_theta=lines.two_theta.copy(), delta_two_theta=fit.delta,
        reduced=reduced, score=fit.score, centring=fit.centring, found_as=found_as, evidence=fit.score)


@functools.lru_cache(maxsize=1)
def _family_index():
    from ..symmetry import space_group

    names = [space_group(n).crystal_system for n in range(1, 231)]
    return np.array([FAMILIES.index("hexagonal" if s == "trigonal" else s) for s in names])


def family_log_prior(prior="icsd") -> dict:
    """ln P(crystal family) under a space-group prior (a name, "icsd", "cod", "mp", "uniform",
    or counts: :func:`csn_plugin.priors.prior_probabilities`): its groups' probabilities summed by
    family (trigonal with hexagonal)."""
    from ..priors import prior_probabilities

    share = np.bincount(_family_index(), weights=prior_probabilities(prior), minlength=len(FAMILIES))
    return {family: math.log(max(float(v) / float(share.sum()), 1e-6)) for family, v in zip(FAMILIES, share)}


def _with_family_prior(candidates, family_prior, strength):
    """Each candidate scored as its lines' merit plus the Occam term ``strength * ln P(family)``
    (the merit alone when ``family_prior`` is None or ``strength`` 0)."""
    if family_prior is None or strength == 0:
        return [c if c.score == c.evidence else replace(c, score=c.evidence) for c in candidates]
    log_p = family_log_prior(family_prior)
    return [replace(c, score=c.evidence + strength * log_p[c.crystal_system]) for c in candidates]


def _symmetry_upgrade(fit: _Fit, lines, penalty, length_tol=0.01, angle_tol=1.0):
    """The highest-symmetry Bravais lattice the fitted metric allows, refined; the original fit
    when none indexes the lines as well."""
    cell = Cell.from_reciprocal_metric(params_to_rmetric(fit.family, fit.params))
    try:
        matches = lattice_symmetry(cell, fit.centring, length_tol, angle_tol)
    except Exception:
        return fit
    for match in matches:
        family = FAMILY_OF_BRAVAIS[match.bravais]
        if SYSTEM_RANK[family] < SYSTEM_RANK[fit.family]:
            break
        if match.bravais == _bravais_of(fit.family, fit.centring):
            return fit
        centring = match.centring
        params = cell_to_params(family, match.cell)
        new = _refine(family, params, centring, lines, fit.zero, penalty)
        if new is None:
            continue
        if (new.n_indexed >= fit.n_indexed and new.m20 >= 0.9 * fit.m20
                and new.f_detail[1] <= 1.5 * fit.f_detail[1] + 0.003):
            return new
    return fit


# -------------------------------------------------------------------------------------- main


def _family_fits(family, lines, zeros, v_range, max_unindexed, penalty, top_trials, t0, time_limit):
    """Trials of one family in one volume range, their quick scores, and the refined fits of the
    best (distinct cells, at most ``max_unindexed`` lines left): (fits, timed out)."""
    from . import zones

    n = len(lines.two_theta)
    polish = {}
    if family == "triclinic":
        top_trials = int(top_trials * TRICLINIC_TRIALS_FACTOR)
        polish = {"keep_top": TRICLINIC_POLISHED}
        # one start only, the estimated zero shift where there is one (the refinement refines it):
        # the same 12 of 30 val-split triclinic cells as both starts, at 15 % less time
        zeros = zeros[-1:]
    found = []
    for zi, zero in enumerate(zeros):
        if zi > 0 and found and max(row[0] for row in found) > 12 * math.log(20.0):
            continue
        if family == "monoclinic":
            # every 4-subset of the first 6 lines (of 5: 2 fewer of 30 val-split cells found,
            # the hl term often resting on none of the first five lines)
            trials = np.concatenate([zones.trials(family, lines, zero, deadline=t0 + time_limit),
                                     _trials_linear(family, lines, zero, 6, 1)])
        elif family == "triclinic":
            trials = zones.trials(family, lines, zero, deadline=t0 + time_limit)
        else:
            n_first, limit = {"cubic": (4, 8), "tetragonal": (6, 3), "hexagonal": (6, 3),
                              "orthorhombic": (6, 2)}[family]
            trials = _trials_linear(family, lines, zero, n_first, limit)
            if family != "cubic":  # a zone of the first lines completed by all lines: first
                trials = np.concatenate([zones.completion_trials(family, lines, zero), trials])
            if family in ("tetragonal", "hexagonal"):  # a long c axis: rows of high l, last
                trials = np.concatenate([trials, zones.row_trials(family, lines, zero)])
        if not len(trials):
            continue
        # a fixed work budget, not the clock, bounds the search (the same answer on a busy
        # machine): trials come ordered by their first lines, so the cap keeps the subsets
        # of the earliest lines
        trials = _dedupe(trials)[:MAX_TRIALS]
        n_check = min(n, 14 if family in ("monoclinic", "triclinic") else 16)
        good, scores, counts, cen = _quick_score(family, trials, lines, zero, n_check,
                                                 max(max_unindexed, 1), v_range, penalty, **polish)
        # the best distinct cells: one cell comes in many bases (the zone pairs of a triclinic
        # lattice), with the same score and volume, and copies would fill the refinement's slots
        volumes = _volume_of(family, good)
        seen = set()
        for i in np.argsort(-scores):
            if len(seen) >= top_trials or scores[i] <= 0:
                break
            key = (round(float(scores[i]), 6), round(float(volumes[i]), 1))
            if key in seen:
                continue
            seen.add(key)
            found.append((scores[i], good[i], zero))
    found.sort(key=lambda row: -row[0])
    refined_keys, fits = set(), []
    for _, params, zero in found[:top_trials]:
        if time.perf_counter() - t0 > time_limit:
            return fits, True
        fit = _best_centring(family, params, lines, zero, penalty)
        if fit is None or n - fit.n_indexed > max_unindexed:
            continue
        key = (fit.centring, tuple(np.round(np.sort(fit.params) / max(fit.params.max(), 1e-12), 3)))
        if key in refined_keys:
            continue
        refined_keys.add(key)
        fits.append(fit)
        if family == "triclinic":
            fits += _primitive_subcells(fit, lines, penalty)
    return fits, False


# the seven reciprocal sublattices of index 2 (a parity condition on hkl) and a basis of each,
# as rows in the indices of the cell that the condition holds in
_HALVINGS = (
    (lambda h: h[:, 0] % 2 == 0, ((2, 0, 0), (0, 1, 0), (0, 0, 1))),
    (lambda h: h[:, 1] % 2 == 0, ((1, 0, 0), (0, 2, 0), (0, 0, 1))),
    (lambda h: h[:, 2] % 2 == 0, ((1, 0, 0), (0, 1, 0), (0, 0, 2))),
    (lambda h: (h[:, 0] + h[:, 1]) % 2 == 0, ((1, 1, 0), (1, -1, 0), (0, 0, 1))),
    (lambda h: (h[:, 0] + h[:, 2]) % 2 == 0, ((1, 0, 1), (1, 0, -1), (0, 1, 0))),
    (lambda h: (h[:, 1] + h[:, 2]) % 2 == 0, ((0, 1, 1), (0, 1, -1), (1, 0, 0))),
    (lambda h: (h[:, 0] + h[:, 1] + h[:, 2]) % 2 == 0, ((1, 1, 0), (0, 1, 1), (1, 0, 1))),
)


def _primitive_subcells(fit: _Fit, lines, penalty):
    """Triclinic fits whose indexed reflections obey a parity condition (all but two at most)
    describe a cell of half the volume in a centred setting (the triclinic search has no
    centrings): that cell refined, and its own half cells in turn; the ranking chooses."""
    out = []
    while fit is not None and len(out) < 3:
        hkl = fit.hkl[fit.indexed]
        if len(hkl) < N_PARAMS["triclinic"] + 2:
            break
        obeyed = [int(condition(hkl).sum()) for condition, _ in _HALVINGS]
        best = int(np.argmax(obeyed))
        if obeyed[best] < len(hkl) - 2:  # (one or two lines may be indexed by chance)
            break
        t = np.array(_HALVINGS[best][1], dtype=float)
        sub = Cell.from_reciprocal_metric(t @ params_to_rmetric("triclinic", fit.params) @ t.T)
        fit = _refine("triclinic", cell_to_params("triclinic", niggli_reduce(sub)[0]), "P", lines, fit.zero, penalty)
        if fit is not None:
            out.append(fit)
    return out


# supercells per family, as factors on the reciprocal parameters (an axis doubled quarters its
# term; the monoclinic hl term follows h and l): cubic a doubled (index 8); c doubled, a x sqrt(2)
# (tetragonal) or x sqrt(3) (hexagonal), a doubled (index 2-4); each axis doubled (orthorhombic,
# monoclinic)
_SUPERCELL_FACTORS = {
    "cubic": ((0.25,),),
    "tetragonal": ((1.0, 0.25), (0.5, 1.0), (0.25, 1.0)),
    "hexagonal": ((1.0, 0.25), (1 / 3, 1.0), (0.25, 1.0)),
    "orthorhombic": ((0.25, 1.0, 1.0), (1.0, 0.25, 1.0), (1.0, 1.0, 0.25)),
    "monoclinic": ((0.25, 1.0, 1.0, 0.5), (1.0, 0.25, 1.0, 1.0), (1.0, 1.0, 0.25, 0.5)),
}
SUPERCELL_FITS = 4  # the best fits (leaving lines unindexed) whose supercells are tried
# ... and the score a supercell must gain (a prior against larger cells: measured lines of an
# impurity fit a doubled cell by chance; with 0, 13 of 89 rruff-dev cells became doubled ones,
# mostly of already long axes, for +1 to +3)
SUPERCELL_MARGIN = 5.0


def _supercell_fits(fits, lines, penalty):
    """Supercells of the best fits that leave lines unindexed, where one explains more of the lines
    with a better score: a subcell fits the strong lines of a superstructure with a high M20 and
    leaves its weak lines over, which no trial of the first lines may reach."""
    n = len(lines.two_theta)
    out = []
    for fit, family in sorted(fits, key=lambda row: -row[0].score)[:SUPERCELL_FITS]:
        if fit.n_indexed >= n or fit.family not in _SUPERCELL_FACTORS:
            continue
        for factor in _SUPERCELL_FACTORS[fit.family]:
            params = fit.params * np.asarray(factor)
            first = _evaluate(fit.family, params, "P", lines, fit.zero, penalty)  # P: the most lines
            if first is None or first.n_indexed <= fit.n_indexed:
                continue
            new = _best_centring(fit.family, params, lines, fit.zero, penalty)
            # (asking two more lines instead: val split 117 vs 118 of 210, so one it is)
            if new is not None and new.n_indexed > fit.n_indexed and new.score > fit.score + SUPERCELL_MARGIN:
                out.append((new, family))
    return out


def _search(lines, families, max_unindexed, zero_shift, max_volume, penalty, top_trials, t0, time_limit,
            good_m20=30.0):
    """Trials, quick scores and refinement for every family on one set of lines."""
    n = len(lines.two_theta)
    if max_unindexed is None:
        max_unindexed = max(2, int(round(0.2 * n)))
    fits, searched, timed_out = [], [], False
    upgraded = set()
    if n < 4:
        return fits, searched, timed_out
    zeros = [0.0 if zero_shift is None else float(zero_shift)]
    z_est = estimate_zero_shift(lines.two_theta)
    if zero_shift is None and abs(z_est) > 0.01:
        zeros.append(z_est)
    max_params = 6
    for family in families:
        if time.perf_counter() - t0 > time_limit:
            timed_out = True
            break
        if n < N_PARAMS[family] + 3 or N_PARAMS[family] > max_params:
            continue
        searched.append(family)
        # volume shells (DICVOL's order): the larger cells only when the smaller give none
        shells = [(8.0, max_volume)]
        if VOLUME_FACTOR.get(family, 1.0) > 1.0 and n >= 6:  # (a large cell fits 4-5 lines by chance)
            shells.append((max_volume, max_volume * VOLUME_FACTOR[family]))
        for k, v_range in enumerate(shells):
            # a large cell fits stray lines by chance: in the outer shell it must index all but one
            new, t_out = _family_fits(family, lines, zeros, v_range, max_unindexed if k == 0 else 1, penalty,
                                      top_trials, t0, time_limit)
            timed_out |= t_out
            if new or t_out:
                break
        for fit in new:
            if fit.n_indexed >= n - 1:  # may stop the search: its final lattice now
                fit = _symmetry_upgrade(fit, lines, penalty)
                upgraded.add(id(fit))
            fits.append((fit, family))
            if fit.n_indexed == n and fit.m20 >= good_m20:
                # a cell that indexes every line well: only families with at most one more
                # parameter can still beat it (one more, not none: a pseudo-cubic cell can index
                # every line of a tetragonal pattern with M20 > 60, the true tI cell better)
                max_params = min(max_params, N_PARAMS[fit.family] + 1)
            if (n - fit.n_indexed <= 1 and fit.m20 >= good_m20) or (n - fit.n_indexed <= 2 and fit.m20 >= 2 * good_m20):
                # a cell of higher symmetry that explains nearly every line well: no triclinic
                # search (six free parameters fit the last line or two of such a pattern with
                # a supercell, or leave them over with a half cell of a higher M20)
                max_params = min(max_params, N_PARAMS["monoclinic"])
    fits += _supercell_fits(fits, lines, penalty)
    # the metric-symmetry step for the fits that can still rank near the top (UPGRADE_MARGIN)
    if fits:
        best = max(f.score for f, _ in fits)
        fits = [(f if id(f) in upgraded or f.score < best - UPGRADE_MARGIN else _symmetry_upgrade(f, lines, penalty), fam)
                for f, fam in fits]
    return fits, searched, timed_out


def index_pattern(peaks, wavelength=None, *, time_limit=30.0, lattice_hint=None, n_lines=25, tolerance=0.03,
                  min_significance=3.0, max_volume=4000.0, min_m20=6.0, max_unindexed=None, penalty=0.75,
                  top_trials=12, systems=None, zero_shift=None, family_prior="icsd",
                  prior_strength=None) -> IndexingResult:
    """Index a powder pattern.

    peaks: a :class:`PeakSet` (its ``significance`` selects lines) or an array of 2theta
    (deg); wavelength: angstrom (default: the PeakSet's). The search is bounded by a fixed amount of
    work (the trials of each family, at most ``MAX_TRIALS``), so one input gives one answer on
    an idle or a busy machine; time_limit (seconds, checked between stages) is only a safety net
    for pathological inputs, and a search it cuts short says so (``timed_out``). lattice_hint:
    a crystal system, a Bravais lattice ("tI") or a list of them: those families are searched
    first (``systems`` restricts the search). n_lines: the first lines used (20-30).
    tolerance: deg 2theta allowed beyond 3 sigma of each line. min_significance: the least
    integrated intensity over its uncertainty of a line used (3: every line the peak search
    reports; 4 lost sparse patterns' weak lines: 12 of 630 val-split renders right first). min_m20: acceptance.
    max_unindexed: lines among the used ones allowed to stay unindexed (default 20 %, at
    least 2). penalty: ranking factor per unindexed line among the first
    20. zero_shift: a known zero shift (deg) to start from (refined anyway). family_prior: the
    space-group prior whose crystal-family shares give the ranking's Occam term
    (``prior_strength`` x ln P(family), default ``FAMILY_PRIOR_STRENGTH``; None: no term).
    """
    t0 = time.perf_counter()
    if wavelength is None and not isinstance(peaks, PeakSet):
        raise ValueError("wavelength is needed with a plain list of positions")
    families = list(FAMILIES if systems is None else [s if s in FAMILIES else FAMILY_OF_BRAVAIS.get(s, s) for s in systems])
    families = [("hexagonal" if f == "trigonal" else f) for f in families]
    if lattice_hint is not None:
        hints = [lattice_hint] if isinstance(lattice_hint, str) else list(lattice_hint)
        hinted = [("hexagonal" if h == "trigonal" else FAMILY_OF_BRAVAIS.get(h, h)) for h in hints]
        families = [f for f in hinted if f in families] + [f for f in families if f not in hinted]
    line_sets = [_prepare_lines(peaks, wavelength, n_lines, tolerance, min_significance)]
    if isinstance(peaks, PeakSet):
        strong = _prepare_lines(peaks, wavelength, n_lines, tolerance, min_significance, min_relative=2.0)
        if len(strong.two_theta) >= 6 and len(strong.two_theta) < len(line_sets[0].two_theta):
            line_sets.insert(0, strong)
    all_fits, searched, timed_out = [], [], False
    for k, lines in enumerate(line_sets):
        share = time_limit * (k + 1) / len(line_sets)  # each line set gets its share of the time
        fits, s_fams, t_out = _search(lines, families, max_unindexed, zero_shift, max_volume, penalty, top_trials,
                                      t0, share)
        all_fits += [(f, fam, lines) for f, fam in fits]
        searched += [f for f in s_fams if f not in searched]
        timed_out |= t_out
        if any(f.n_indexed == len(lines.two_theta) and f.m20 >= 30 for f, _ in fits) and k + 1 < len(line_sets):
            # an excellent solution on the strong lines: check it on all lines, and skip their
            # search when it stays excellent there (all lines but one indexed; the weak lines
            # may be those of a short axis that the strong ones cannot fix)
            full = line_sets[-1]
            again = [(_refine(f.family, f.params, f.centring, full, f.zero, penalty), fam) for f, fam in fits]
            again = [(f, fam) for f, fam in again if f is not None]
            all_fits += [(f, fam, full) for f, fam in again]
            if any(f.n_indexed >= len(full.two_theta) - 1 and f.m20 >= 30 for f, _ in again):
                break
    lines = line_sets[-1]
    n = len(lines.two_theta)
    if n < 4:
        return IndexingResult([], False, f"only {n} usable lines (need >= 4)", time.perf_counter() - t0, False,
                              tuple(), lines.two_theta, lines.wavelength)
    candidates = _rank(_with_family_prior([_to_candidate(f, ls, fam) for f, fam, ls in all_fits], family_prior,
                                          FAMILY_PRIOR_STRENGTH if prior_strength is None else prior_strength))
    indexed, reason = _accepted(candidates, min_m20)
    return IndexingResult(candidates, indexed, reason, time.perf_counter() - t0, timed_out, tuple(searched),
                          lines.two_theta, lines.wavelength)


def _accepted(candidates, min_m20):
    """(indexed, reason) of ranked candidates: the best must reach the acceptance M20."""
    if not candidates:
        return False, "no cell indexes the lines"
    if candidates[0].M20 < min_m20:
        return False, f"best M20 {candidates[0].M20:.1f} below {min_m20:g}"
    return True, ""


def rerank(result: IndexingResult, family_prior="icsd", prior_strength=None, min_m20=6.0) -> IndexingResult:
    """The same search's candidates ranked with another Occam term (each keeps its lines'
    merit, ``evidence``), accepted as :func:`index_pattern` does: a strength varied after one
    search (``benchmarks/fit_fusion.py``). Candidates the first ranking merged into an
    equivalent lattice of another family are not restored."""
    strength = FAMILY_PRIOR_STRENGTH if prior_strength is None else prior_strength
    candidates = _rank(_with_family_prior(result.candidates, family_prior, strength))
    indexed, reason = _accepted(candidates, min_m20)
    return replace(result, candidates=candidates, indexed=indexed, reason=reason)


def _dedupe(trials, digits=3):
    """One trial per cell (parameters equal to ``digits`` significant digits)."""
    if not len(trials):
        return trials
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.where(trials != 0, np.floor(np.log10(np.abs(trials))), 0)
        mant = np.round(trials / 10**mag * 10**digits)
    code = np.zeros(len(trials), dtype=np.int64)
    for j in range(trials.shape[1]):
        code = code * 1000003 + (mant[:, j].astype(np.int64) * 64 + mag[:, j].astype(np.int64))
    _, first = np.unique(code, return_index=True)
    return trials[np.sort(first)]


def _rank(candidates):
    """Best first by score plus SYMMETRY_BONUS per symmetry rank; equivalent lattices merged
    (the higher-scoring one kept)."""
    def merit(c):
        return c.score + SYMMETRY_BONUS * SYSTEM_RANK[c.crystal_system]

    candidates = sorted(candidates, key=merit, reverse=True)
    kept = []
    for cand in candidates:
        dup = False
        for other in kept:
            if abs(cand.volume - other.volume) > 0.01 * other.volume:
                continue
            if compare_lattices(cand.cell, cand.centring, other.cell, other.centring, 0.005, 0.5)[0] == "equivalent":
                dup = True
                break
        if not dup:
            kept.append(cand)
    return kept
