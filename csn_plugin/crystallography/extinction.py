"""Extinction analysis: P(absence class | peaks, cell), in the spirit of ExtSym (Markvardsen,
David, Johnson & Shankland, Acta Cryst. A57 (2001) 47; J. Appl. Cryst. 2008).

For an indexed cell (conventional axes, zero shift known), every reflection position in the
measured range is computed and positions closer than a fraction of the peak width are grouped
(they cannot be told apart). The observed integrated intensity of a group is the sum of the
peaks matched to it (unmatched peaks, e.g. impurities, are left out); a group with no peak has
observed intensity 0 with the noise of the detection limit there.

Each absence class of :func:`csn_plugin.symmetry.absence_class` compatible with the lattice
(same crystal family; the cell's centring, or primitive) says which positions are allowed, in
every setting of its groups that keeps the cell's conventional axes (orthorhombic axis
permutations, monoclinic cell choices, obverse/reverse R). Under a class, a group with no
allowed position is noise around zero (the detection limit's), with a small outlier probability
so that one stray peak cannot veto a class. A group with allowed positions is unseen with a
probability that falls with its expected weight (allowed multiplicity x Lorentz-polarisation x
an overall fall-off fitted to the observed peaks): a logistic curve in the log weight, fitted on
this pattern's groups that every class allows (so it learns how many allowed lines this
structure leaves weak), with priors on its two coefficients; seen, its intensity has a
heavy-tailed (Lomax) density. The log likelihood of a class is the sum over groups averaged
over its settings (each setting equally likely a priori), divided by a temperature (the groups
are not independent) and the posterior uses a prior over classes (uniform by default, or summed
from space-group counts such as the ICSD's).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..physics import q_to_two_theta, two_theta_to_q
from ..symmetry import absence_class_members, absence_classes, crystal_family
from .cells import FAMILY_OF_BRAVAIS, Cell, allowed_by_centring
from .peaks import PeakSet

_FAMILY_OF_SYSTEM = {"trigonal": "hexagonal"}

# Fitted on val-split structures (never the dev set or measured data) by the mean log probability
# of the true class, with the true cell:
#   python benchmarks/bench_indexing.py --synth DATA --split val --per-system 30 --extinction-only
# (180 structures: -2.58 at 1, -1.51 at 3, -1.47 at 4, -1.48 at 6; docs/benchmarks.md).
LIKELIHOOD_TEMPERATURE = 4.0


# ----------------------------------------------------------------------------------- settings


def _spglib(name, *args):
    import spglib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(spglib, name)(*args)


@functools.lru_cache(maxsize=None)
def _hall_numbers_by_group():
    out = {}
    for hall in range(1, 531):
        record = _spglib("get_spacegroup_type", hall)
        number = record.number if hasattr(record, "number") else record["number"]
        choice = record.choice if hasattr(record, "choice") else record["choice"]
        symbol = record.international_full if hasattr(record, "international_full") else record["international_full"]
        out.setdefault(int(number), []).append((hall, str(choice), str(symbol)))
    return out


def _setting_ok(family, choice):
    if family == "monoclinic":
        return choice.lstrip("-").startswith("b")
    if family == "hexagonal":
        return choice != "R"
    return True


@functools.lru_cache(maxsize=None)
def _operations(hall):
    """(rotations (k,3,3), translations (k,3)) of a Hall setting with a non-lattice translation
    part kept (identity with translation = centring included)."""
    data = _spglib("get_symmetry_from_database", hall)
    rot = np.asarray(data["rotations"], dtype=np.int64)
    tr = np.mod(np.asarray(data["translations"], dtype=float), 1.0)
    tr = np.where(tr > 1 - 1e-8, 0.0, tr)
    keep = (np.abs(tr) > 1e-8).any(axis=1)
    rot, tr = rot[keep], tr[keep]
    if len(rot):
        key = np.concatenate([rot.reshape(len(rot), -1), np.round(tr * 24)], axis=1)
        _, first = np.unique(key, axis=0, return_index=True)
        rot, tr = rot[first], tr[first]
    return rot, tr


def _setting_centring(symbol):
    return symbol.strip()[0]


@functools.lru_cache(maxsize=None)
def class_settings(k, family):
    """Hall numbers (distinct operation sets) of the groups of absence class k in settings
    that keep the family's conventional axes."""
    halls = []
    for number in absence_class_members(k):
        for hall, choice, symbol in _hall_numbers_by_group()[number]:
            if _setting_ok(family, choice):
                halls.append((hall, _setting_centring(symbol)))
    return tuple(halls)


def _absent(hkl, hall, fixed=None):
    """Bool per hkl (N, 3): systematically absent in this setting. ``fixed``: a dict kept across
    calls on the same ``hkl`` (one extinction analysis scores ~100 settings): the indices of the
    hkl each rotation leaves unchanged, which are the only ones its translation can extinguish."""
    rot, tr = _operations(hall)
    absent = np.zeros(len(hkl), dtype=bool)
    fixed = {} if fixed is None else fixed
    for w, t in zip(rot, tr):
        key = w.tobytes()
        where = fixed.get(key)
        if where is None:
            where = fixed[key] = np.flatnonzero((hkl @ w == hkl).all(axis=1))
        phase = hkl[where] @ t
        absent[where[np.abs(phase - np.round(phase)) > 1e-6]] = True
    return absent


@functools.lru_cache(maxsize=None)
def compatible_classes(family, centring=None):
    """Absence classes of the family whose groups have this centring or are primitive (every
    class of the family when ``centring`` is None)."""
    table = absence_classes()
    out = []
    for k in range(int(table.max()) + 1):
        members = absence_class_members(k)
        if crystal_family(members[0]) != family:
            continue
        if centring is None:
            out.append(k)
            continue
        letters = {s[1] for s in class_settings(k, family)}
        if family in ("orthorhombic", "monoclinic") and centring in "ABCI" and centring != "P":
            wanted = {"A", "B", "C"} if centring in "ABC" else {"I"}
            if family == "monoclinic":
                wanted = {"A", "B", "C", "I"}
            if letters & (wanted | {"P"}):
                out.append(k)
        elif letters & {centring, "P"}:
            out.append(k)
    return tuple(out)


# -------------------------------------------------------------------------------- conditions


_ZONES = {
    "triclinic": [],
    "monoclinic": [("h0l", lambda h: h[:, 1] == 0), ("0k0", lambda h: (h[:, 0] == 0) & (h[:, 2] == 0))],
    "orthorhombic": [("0kl", lambda h: h[:, 0] == 0), ("h0l", lambda h: h[:, 1] == 0), ("hk0", lambda h: h[:, 2] == 0),
                     ("h00", lambda h: (h[:, 1] == 0) & (h[:, 2] == 0)), ("0k0", lambda h: (h[:, 0] == 0) & (h[:, 2] == 0)),
                     ("00l", lambda h: (h[:, 0] == 0) & (h[:, 1] == 0))],
    "tetragonal": [("hk0", lambda h: h[:, 2] == 0), ("0kl", lambda h: h[:, 0] == 0), ("(h0l)", lambda h: h[:, 1] == 0),
                   ("hhl", lambda h: h[:, 0] == h[:, 1]),
                   ("00l", lambda h: (h[:, 0] == 0) & (h[:, 1] == 0)), ("h00", lambda h: (h[:, 1] == 0) & (h[:, 2] == 0))],
    "hexagonal": [("h-h0l", lambda h: h[:, 0] == -h[:, 1]), ("hh-2hl", lambda h: h[:, 0] == h[:, 1]),
                  ("00l", lambda h: (h[:, 0] == 0) & (h[:, 1] == 0))],
    "cubic": [("0kl", lambda h: h[:, 0] == 0), ("(h0l)", lambda h: h[:, 1] == 0), ("(hk0)", lambda h: h[:, 2] == 0),
              ("hhl", lambda h: h[:, 0] == h[:, 1]), ("(hlh)", lambda h: h[:, 0] == h[:, 2]),
              ("(lhh)", lambda h: h[:, 1] == h[:, 2]), ("h00", lambda h: (h[:, 1] == 0) & (h[:, 2] == 0))],
}
_CONDITIONS = [
    ("h=2n", lambda h: h[:, 0] % 2 == 0), ("k=2n", lambda h: h[:, 1] % 2 == 0), ("l=2n", lambda h: h[:, 2] % 2 == 0),
    ("h+k=2n", lambda h: (h[:, 0] + h[:, 1]) % 2 == 0), ("h+l=2n", lambda h: (h[:, 0] + h[:, 2]) % 2 == 0),
    ("k+l=2n", lambda h: (h[:, 1] + h[:, 2]) % 2 == 0), ("h=4n", lambda h: h[:, 0] % 4 == 0),
    ("k=4n", lambda h: h[:, 1] % 4 == 0), ("l=4n", lambda h: h[:, 2] % 4 == 0), ("l=3n", lambda h: h[:, 2] % 3 == 0),
    ("l=6n", lambda h: h[:, 2] % 6 == 0), ("h+k=4n", lambda h: (h[:, 0] + h[:, 1]) % 4 == 0),
    ("h+l=4n", lambda h: (h[:, 0] + h[:, 2]) % 4 == 0), ("k+l=4n", lambda h: (h[:, 1] + h[:, 2]) % 4 == 0),
    ("2h+l=4n", lambda h: (2 * h[:, 0] + h[:, 2]) % 4 == 0),
]
_CENTRING_TEST = [("F", "F"), ("I", "I"), ("C", "C"), ("A", "A"), ("B", "B"), ("R", "R")]


@functools.lru_cache(maxsize=None)
def _test_hkl():
    r = range(-8, 9)
    hkl = np.array([(h, k, l) for h in r for k in r for l in r if (h, k, l) != (0, 0, 0)], dtype=np.int64)
    return hkl


@functools.lru_cache(maxsize=None)
def reflection_conditions(hall, family):
    """(centring letter, [(zone, condition)]) read off the absences of a setting: for each
    zone or row of the family, the most restrictive listed condition that the present
    reflections obey and that explains every absent one beyond the centring."""
    hkl = _test_hkl()
    absent = _absent(hkl, hall)
    present = ~absent
    centring = "P"
    for letter, cen in _CENTRING_TEST:
        if family != "hexagonal" and letter == "R":
            continue
        allowed = allowed_by_centring(hkl, cen)
        if (absent | allowed).all() and not allowed.all():
            centring = letter
            break
    base_allowed = allowed_by_centring(hkl, centring)
    is_row = (hkl == 0).sum(axis=1) >= 2
    if family == "hexagonal":
        is_row |= (hkl[:, 0] == 0) & (hkl[:, 1] == 0)
    out = []
    explained = ~base_allowed  # absences accounted for so far
    for zone, select in _ZONES[family]:
        row_zone = zone in ("h00", "0k0", "00l")
        in_zone = select(hkl) & (is_row if row_zone else ~is_row)
        sel = in_zone & base_allowed
        if not sel.any():
            continue
        extra_absent = absent & sel & ~explained
        if not extra_absent.any():
            continue
        best = None
        for name, cond in _CONDITIONS:
            c = cond(hkl)
            if (c[sel & present]).all() and (~c[extra_absent]).all():
                best = name
                explained = explained | (select(hkl) & ~c)
                break
        if best is None:
            explained = explained | extra_absent
        if not zone.startswith("("):
            out.append((zone, best or "special"))
    return centring, out


_PLANE_LETTER = {
    "0kl": {"k=2n": "b", "l=2n": "c", "k+l=2n": "n", "k+l=4n": "d"},
    "h0l": {"h=2n": "a", "l=2n": "c", "h+l=2n": "n", "h+l=4n": "d"},
    "hk0": {"h=2n": "a", "k=2n": "b", "h+k=2n": "n", "h+k=4n": "d"},
}
_AXIS_OF_ROW = {"h00": 0, "0k0": 1, "00l": 2}
_ZONE_OF_AXIS = {0: "0kl", 1: "h0l", 2: "hk0"}


def extinction_symbol(hall, family):
    """An extinction symbol: ITA-style for monoclinic and orthorhombic ("P 1 21/c 1",
    "P n - a", "P 21 21 21"), else the centring and the reflection conditions
    ("I hhl:2h+l=4n 00l:l=4n")."""
    centring, conditions = reflection_conditions(hall, family)
    cond = dict(conditions)
    if family == "orthorhombic":
        parts = []
        for axis in range(3):
            zone = _ZONE_OF_AXIS[axis]
            letter = _PLANE_LETTER[zone].get(cond.get(zone, ""), "-" if zone not in cond else "?")
            row = ("h00", "0k0", "00l")[axis]
            if letter == "-" and row in cond:
                letter = "21"
            parts.append(letter)
        return f"{centring} " + " ".join(parts)
    if family == "monoclinic":
        plane = _PLANE_LETTER["h0l"].get(cond.get("h0l", ""), "-" if "h0l" not in cond else "?")
        screw = "0k0" in cond
        middle = ("21" if screw else "") + ("/" if screw and plane != "-" else "") + (plane if plane != "-" else "")
        return f"{centring} 1 {middle or '-'} 1"
    if family == "triclinic":
        return "P -"
    text = " ".join(f"{zone}:{c}" for zone, c in conditions)
    return f"{centring} {text}".strip() if text else f"{centring} -"


# ------------------------------------------------------------------------------------ result


@dataclass(frozen=True)
class ExtinctionResult(Mapping):
    """P(absence class | peaks, cell), a mapping {class: probability} sorted best first.

    ``classes``, ``probabilities``, ``log_likelihoods`` (natural log, up to a common
    constant), ``symbols`` (extinction symbols), ``members`` (space-group numbers per class),
    ``family``, ``lattice``; ``groups``: how many position groups were scored,
    ``informative``: how many of them some compatible classes disagree on."""

    classes: tuple
    probabilities: np.ndarray
    log_likelihoods: np.ndarray
    symbols: tuple
    members: tuple
    family: str
    lattice: str
    groups: int = 0
    informative: int = 0
    info: dict = field(default_factory=dict)

    def __getitem__(self, k):
        try:
            return float(self.probabilities[self.classes.index(k)])
        except ValueError:
            raise KeyError(k) from None

    def __iter__(self):
        return iter(self.classes)

    def __len__(self):
        return len(self.classes)

    @property
    def top_class(self):
        return self.classes[0] if self.classes else None

    @property
    def top_symbol(self):
        return self.symbols[0] if self.symbols else None

    def as_dict(self) -> dict:
        return {int(k): float(p) for k, p in zip(self.classes, self.probabilities)}

    def space_group_probabilities(self, prior="icsd") -> np.ndarray:
        """(230,) P(group) = P(class) x prior(group | class); zero outside the classes."""
        from ..priors import prior_probabilities

        weights = prior_probabilities(prior)
        out = np.zeros(230)
        for k, p, members in zip(self.classes, self.probabilities, self.members):
            idx = np.array(members) - 1
            w = weights[idx]
            out[idx] += p * w / w.sum()
        return out


# ---------------------------------------------------------------------------------- analysis


def _all_hkl(rmetric, q_min, q_max):
    cell = Cell.from_reciprocal_metric(rmetric)
    lim = [int(math.ceil(math.sqrt(q_max) * x)) + 1 for x in (cell.a, cell.b, cell.c)]
    lim = [min(v, 40) for v in lim]
    h = np.arange(-lim[0], lim[0] + 1)
    k = np.arange(-lim[1], lim[1] + 1)
    l = np.arange(-lim[2], lim[2] + 1)
    hkl = np.stack(np.meshgrid(h, k, l, indexing="ij"), -1).reshape(-1, 3)
    q = np.einsum("ni,ij,nj->n", hkl, rmetric, hkl)
    keep = (q >= q_min) & (q <= q_max) & (hkl != 0).any(axis=1)
    return hkl[keep], q[keep]


def _position_keys(family, hkl):
    h, k, l = hkl[:, 0], hkl[:, 1], hkl[:, 2]
    if family == "cubic":
        return (h * h + k * k + l * l)[:, None]
    if family == "tetragonal":
        return np.stack([h * h + k * k, l * l], 1)
    if family == "hexagonal":
        return np.stack([h * h + h * k + k * k, l * l], 1)
    if family == "orthorhombic":
        return np.stack([h * h, k * k, l * l], 1)
    if family == "monoclinic":
        return np.stack([h * h, k * k, l * l, h * l], 1)
    first = np.where(h != 0, h, np.where(k != 0, k, l))
    return hkl * np.sign(first)[:, None]


def extinction_probabilities(peaks: PeakSet, cell, wavelength=None, *, lattice=None, zero_shift=None,
                             prior="uniform", outlier=0.03, resolution=0.8, match_width=0.5,
                             max_two_theta=None, any_centring=True,
                             temperature=LIKELIHOOD_TEMPERATURE) -> ExtinctionResult:
    """P(absence class | peaks, cell) for the absence classes compatible with the cell.

    peaks: the :class:`PeakSet` of the pattern (positions, intensities, detection limit).
    cell: a :class:`~.indexing.CellCandidate` (its lattice and zero shift are used) or a
    :class:`~.cells.Cell` in conventional axes with ``lattice`` ("oP", "mS", ...).
    prior: "uniform" over the compatible classes, or a space-group prior name/counts
    (``csn_plugin.priors.prior_probabilities``) summed over each class's groups.
    resolution: positions closer than this fraction of the FWHM are one group; match_width:
    a peak belongs to the nearest group within this fraction of the FWHM (or 3 sigma).
    any_centring: score every class of the crystal family in the conventional cell (the data
    then also decide the centring); False keeps the cell's centring and the primitive ones.
    temperature: the class log-likelihoods are divided by it before the prior is added (the
    groups are not independent: a pseudo-symmetric structure makes a whole set of them weak at
    once); see :data:`LIKELIHOOD_TEMPERATURE`.
    """
    from .indexing import CellCandidate

    if isinstance(cell, CellCandidate):
        lattice = cell.lattice if lattice is None else lattice
        zero = cell.zero_shift if zero_shift is None else zero_shift
        centring = cell.centring
        cell = cell.cell
    else:
        if lattice is None:
            raise ValueError("a plain Cell needs lattice= (e.g. 'tI')")
        zero = 0.0 if zero_shift is None else zero_shift
        centring = lattice[1] if lattice[1] != "S" else "C"
    family = FAMILY_OF_BRAVAIS[lattice]
    wl = peaks.wavelength if wavelength is None else float(wavelength)
    lo, hi = peaks.two_theta_range
    if max_two_theta is not None:
        hi = min(hi, max_two_theta)

    def q_of(tt):
        return two_theta_to_q(np.asarray(tt) - zero, wl)

    rmetric = cell.reciprocal_metric
    hkl, q = _all_hkl(rmetric, float(q_of(lo + 0.2)), float(q_of(hi - 0.2)))
    classes = compatible_classes(family, None if any_centring else centring)
    if not len(hkl) or not classes:
        return ExtinctionResult(tuple(classes), np.full(len(classes), 1 / max(len(classes), 1)),
                                np.zeros(len(classes)), tuple(), tuple(), family, lattice)
    # positions (same Q under every metric of the family) and their multiplicities
    keys = _position_keys(family, hkl)
    _, pos_index, pos_inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    pos_inverse = pos_inverse.reshape(-1)
    n_pos = len(pos_index)
    pos_q = q[pos_index]
    pos_mult = np.bincount(pos_inverse, minlength=n_pos).astype(float)
    pos_tt = q_to_two_theta(pos_q, wl) + zero
    order = np.argsort(pos_tt)
    # groups of positions closer than the resolution
    fwhm = peaks.fwhm_at(pos_tt[order])
    new = np.concatenate([[True], np.diff(pos_tt[order]) > resolution * fwhm[1:]])
    group_sorted = np.cumsum(new) - 1
    pos_group = np.empty(n_pos, dtype=int)
    pos_group[order] = group_sorted
    n_groups = int(group_sorted[-1]) + 1
    group_tt = np.bincount(pos_group, weights=pos_tt * pos_mult, minlength=n_groups) / np.bincount(
        pos_group, weights=pos_mult, minlength=n_groups)
    g_lo = np.full(n_groups, np.inf)
    g_hi = np.full(n_groups, -np.inf)
    np.minimum.at(g_lo, pos_group, pos_tt)
    np.maximum.at(g_hi, pos_group, pos_tt)
    # observed intensities per group: peaks matched to the nearest group edge within tolerance
    obs = np.zeros(n_groups)
    var = np.zeros(n_groups)
    matched = np.zeros(n_groups, dtype=bool)
    if len(peaks):
        pt = peaks.two_theta
        dist = np.maximum(np.maximum(g_lo[None, :] - pt[:, None], pt[:, None] - g_hi[None, :]), 0)
        nearest = dist.argmin(axis=1)
        d = dist[np.arange(len(pt)), nearest]
        ok = d <= np.maximum(match_width * peaks.fwhm_at(pt), 3 * np.where(np.isfinite(peaks.two_theta_sigma), peaks.two_theta_sigma, 0.01))
        np.add.at(obs, nearest[ok], peaks.intensity[ok])
        np.add.at(var, nearest[ok], np.where(np.isfinite(peaks.intensity_sigma[ok]), peaks.intensity_sigma[ok], 0) ** 2)
        matched[nearest[ok]] = True
    limit_sd = peaks.detection_limit(group_tt) / 3.0
    sd = np.sqrt(np.maximum(var, 0) + limit_sd**2)
    inside = np.isfinite(sd)
    # expected intensity weights: multiplicity x LP x fall-off fitted to the matched peaks
    theta = np.radians(pos_tt - zero) / 2
    lp = (1 + np.cos(2 * theta) ** 2) / (np.sin(theta) ** 2 * np.cos(theta))
    base_w = pos_mult * lp
    gw = np.bincount(pos_group, weights=base_w, minlength=n_groups)
    gq = np.bincount(pos_group, weights=pos_q * base_w, minlength=n_groups) / np.maximum(gw, 1e-30)
    fit = matched & (obs > 0) & inside
    b_eff = 2.0
    if fit.sum() >= 4:
        coef = np.polyfit(gq[fit], np.log(obs[fit] / gw[fit]), 1)
        b_eff = float(np.clip(-coef[0], 0.0, 20.0))
    weight = base_w * np.exp(-b_eff * pos_q)
    total_obs = float(obs[inside].sum())
    obs_mean = total_obs / max(int((matched & inside).sum()), 1)
    sd_in, obs_in = sd[inside], obs[inside]
    # allowed positions per class setting
    symbols, members, class_patterns = [], [], []
    fixed, fixed_reverse = {}, {}  # rotation -> hkl it leaves unchanged, shared by every setting
    for ci, k in enumerate(classes):
        settings = list(class_settings(k, family))
        patterns = {}
        for hall, letter in settings:
            absent = _absent(hkl, hall, fixed)
            allowed_pos = np.bincount(pos_inverse, weights=~absent, minlength=n_pos) > 0
            patterns.setdefault(allowed_pos.tobytes(), allowed_pos)
            if family == "hexagonal" and letter == "R":  # reverse setting: 2-fold about c
                absent2 = _absent(hkl * np.array([-1, -1, 1]), hall, fixed_reverse)
                allowed2 = np.bincount(pos_inverse, weights=~absent2, minlength=n_pos) > 0
                patterns.setdefault(allowed2.tobytes(), allowed2)
        class_patterns.append(list(patterns.values()))
        symbols.append(extinction_symbol(settings[0][0], family))
        members.append(tuple(absence_class_members(k)))
    # group allowed counts per pattern; groups every pattern allows calibrate P(weak | angle)
    counts = [[np.bincount(pos_group, weights=a.astype(float), minlength=n_groups)[inside] for a in pats]
              for pats in class_patterns]
    flat = np.array([c for cs in counts for c in cs])
    always = (flat > 0).all(axis=0)
    informative = int(((flat > 0).any(axis=0) & ~(flat > 0).all(axis=0)).sum())
    broad = _broad(obs_in, obs_mean)
    noise = np.exp(-0.5 * (obs_in / sd_in) ** 2) / (sd_in * math.sqrt(2 * math.pi))
    # P(allowed group unseen | its expected weight under the class), calibrated on this pattern
    wsums = [[np.bincount(pos_group, weights=a * weight, minlength=n_groups)[inside] for a in pats]
             for pats in class_patterns]
    wflat = np.array([w for ws in wsums for w in ws])
    unseen_of = _unseen_model(wflat.min(axis=0)[always], ~(obs_in > 0)[always])
    loglik = np.zeros(len(classes))
    for ci, (cs, ws) in enumerate(zip(counts, wsums)):
        lls = np.array([_class_loglik(c, noise, broad, unseen_of(w), outlier) for c, w in zip(cs, ws)])
        loglik[ci] = float(np.max(lls) + np.log(np.mean(np.exp(lls - np.max(lls)))))
    log_prior = np.zeros(len(classes))
    if prior != "uniform" and prior is not None:
        from ..priors import prior_probabilities

        weights = prior_probabilities(prior)
        log_prior = np.array([math.log(weights[np.array(m) - 1].sum()) for m in members])
    post = loglik / temperature + log_prior
    post = np.exp(post - post.max())
    post /= post.sum()
    order = np.argsort(-post, kind="stable")
    return ExtinctionResult(
        classes=tuple(int(classes[i]) for i in order), probabilities=post[order], log_likelihoods=loglik[order],
        symbols=tuple(symbols[i] for i in order), members=tuple(members[i] for i in order), family=family,
        lattice=lattice, groups=int(inside.sum()), informative=informative,
        info={"b_eff": b_eff, "zero_shift": zero})


def _unseen_model(w_always, unseen, prior_slope=-1.0, prior_sd=1.0):
    """P(an allowed group is not seen | its expected weight w) = sigmoid(a + b log(w / w_med)),
    fitted on the groups every class allows (a few Newton steps, Gaussian priors on a and b:
    a at the observed unseen fraction, b at ``prior_slope``); returns a function of w."""
    w_always = np.maximum(np.asarray(w_always, float), 1e-30)
    y = np.asarray(unseen, float)
    center = float(np.median(np.log(w_always))) if len(w_always) else 0.0
    frac = (1 + y.sum()) / (2 + len(y))
    a0, b0 = math.log(frac / (1 - frac)), prior_slope
    theta = np.array([a0, b0])
    x = np.log(w_always) - center
    design = np.stack([np.ones_like(x), x], 1)
    precision = np.diag([1 / prior_sd**2, 1 / prior_sd**2])
    mean0 = np.array([a0, b0])
    for _ in range(8):
        p = 1 / (1 + np.exp(-np.clip(design @ theta, -50, 50)))
        grad = design.T @ (p - y) + precision @ (theta - mean0)
        hess = design.T @ (design * (p * (1 - p))[:, None]) + precision
        theta = theta - np.linalg.solve(hess, grad)
    a, b = float(theta[0]), float(theta[1])

    def unseen_of(w):
        z = a + b * (np.log(np.maximum(w, 1e-30)) - center)
        return np.clip(1 / (1 + np.exp(-np.clip(z, -50, 50))), 0.03, 0.95)

    return unseen_of


def _broad(obs, scale):
    """A heavy-tailed density of the observed intensity of an allowed group (Lomax)."""
    scale = max(scale, 1e-30)
    return 1.0 / scale / (1 + np.maximum(obs, 0) / scale) ** 2


def _class_loglik(n_allowed, noise, broad, weak, outlier):
    """Sum over groups of log p(observed | class): a group with no allowed position is noise
    around zero (plus a small outlier chance); one with allowed positions is unseen with
    probability ``weak`` (per group), otherwise broad."""
    allowed = weak * noise + (1 - weak) * broad
    forbidden = (1 - outlier) * noise + outlier * broad
    like = np.where(n_allowed > 0, allowed, forbidden)
    return float(np.sum(np.log(np.maximum(like, 1e-300))))


def allowed_two_theta(cell, space_group, wavelength, two_theta_range, zero_shift=None) -> np.ndarray:
    """2theta (deg, as measured: the cell's zero shift added back) of the distinct reflection
    positions of ``cell`` (a :class:`~.indexing.CellCandidate`) that ``space_group`` allows, in its
    standard setting, inside ``two_theta_range``: the ticks a plot shows."""
    zero = cell.zero_shift if zero_shift is None else zero_shift
    lo, hi = two_theta_range

    def q_of(tt):
        return two_theta_to_q(np.clip(tt - zero, 0.01, 179.9), wavelength)

    hkl, q = _all_hkl(cell.cell.reciprocal_metric, float(q_of(lo)), float(q_of(hi)))
    if not len(hkl):
        return np.zeros(0)
    hall = _hall_numbers_by_group()[int(space_group)][0][0]
    q = q[~_absent(hkl, hall)]
    two_theta = q_to_two_theta(q, wavelength) + zero
    return np.unique(np.round(two_theta, 3))
