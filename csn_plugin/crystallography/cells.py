"""Unit cells: parameters and metric tensors, centring, Niggli reduction, the highest-symmetry
Bravais lattice a metric is compatible with, and comparison of two lattices.

The lattice-symmetry search is Le Page-like in spirit but brute force: every triple of short
lattice vectors (integer combinations with coefficients -2..2 of the Niggli-reduced basis)
is tested, vectorised, against the metric conditions of each of the 14 Bravais lattices
(equal lengths, right angles, 120 degrees), and its centring is read from the inverse of the
index matrix. A cF lattice whose indexing came out as a tI cell with c/a = sqrt(2) is found as
cF, an oC cell with b = a sqrt(3) as hP, and so on.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

# Bravais lattices from the highest symmetry down (the order matches the search preference).
BRAVAIS_ORDER = ("cF", "cI", "cP", "hP", "hR", "tI", "tP", "oF", "oI", "oS", "oP", "mS", "mP", "aP")
FAMILY_OF_BRAVAIS = {"cF": "cubic", "cI": "cubic", "cP": "cubic", "hP": "hexagonal", "hR": "hexagonal",
                     "tI": "tetragonal", "tP": "tetragonal", "oF": "orthorhombic", "oI": "orthorhombic",
                     "oS": "orthorhombic", "oP": "orthorhombic", "mS": "monoclinic", "mP": "monoclinic",
                     "aP": "triclinic"}
SYSTEM_RANK = {"cubic": 6, "hexagonal": 5, "tetragonal": 4, "orthorhombic": 3, "monoclinic": 2, "triclinic": 1}

# Centring translations of conventional cells (fractions), zero vector first.
CENTRINGS = {
    "P": [(0, 0, 0)],
    "A": [(0, 0, 0), (0, 0.5, 0.5)],
    "B": [(0, 0, 0), (0.5, 0, 0.5)],
    "C": [(0, 0, 0), (0.5, 0.5, 0)],
    "I": [(0, 0, 0), (0.5, 0.5, 0.5)],
    "F": [(0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)],
    "R": [(0, 0, 0), (2 / 3, 1 / 3, 1 / 3), (1 / 3, 2 / 3, 2 / 3)],  # obverse, hexagonal axes
}
# Primitive bases (rows, in conventional fractions) of each centred lattice.
_PRIMITIVE = {
    "P": np.eye(3),
    "A": np.array([[1, 0, 0], [0, 0.5, 0.5], [0, -0.5, 0.5]]),
    "B": np.array([[0.5, 0, 0.5], [0, 1, 0], [-0.5, 0, 0.5]]),
    "C": np.array([[0.5, 0.5, 0], [-0.5, 0.5, 0], [0, 0, 1]]),
    "I": np.array([[-0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.5, 0.5, -0.5]]),
    "F": np.array([[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]),
    "R": np.array([[2 / 3, 1 / 3, 1 / 3], [-1 / 3, 1 / 3, 1 / 3], [-1 / 3, -2 / 3, 1 / 3]]),
}


def allowed_by_centring(hkl, centring) -> np.ndarray:
    """Bool per hkl (..., 3): not absent because of the lattice centring."""
    hkl = np.asarray(hkl)
    h, k, l = hkl[..., 0], hkl[..., 1], hkl[..., 2]
    if centring == "P":
        return np.ones(h.shape, dtype=bool)
    if centring == "A":
        return (k + l) % 2 == 0
    if centring == "B":
        return (h + l) % 2 == 0
    if centring == "C":
        return (h + k) % 2 == 0
    if centring == "I":
        return (h + k + l) % 2 == 0
    if centring == "F":
        return ((h + k) % 2 == 0) & ((k + l) % 2 == 0)
    if centring == "R":
        return (-h + k + l) % 3 == 0
    raise ValueError(f"unknown centring {centring!r}")


@dataclass(frozen=True)
class Cell:
    """A unit cell: lengths in angstrom, angles in degrees."""

    a: float
    b: float
    c: float
    alpha: float = 90.0
    beta: float = 90.0
    gamma: float = 90.0

    @property
    def parameters(self) -> tuple:
        return (self.a, self.b, self.c, self.alpha, self.beta, self.gamma)

    @property
    def metric(self) -> np.ndarray:
        """Direct metric tensor G (angstrom^2)."""
        a, b, c = self.a, self.b, self.c
        ca, cb, cg = (math.cos(math.radians(v)) for v in (self.alpha, self.beta, self.gamma))
        return np.array([[a * a, a * b * cg, a * c * cb], [a * b * cg, b * b, b * c * ca], [a * c * cb, b * c * ca, c * c]])

    @property
    def reciprocal_metric(self) -> np.ndarray:
        """G* = G^-1 (1/angstrom^2): Q(hkl) = 1/d^2 = h G* h^T."""
        return np.linalg.inv(self.metric)

    @property
    def volume(self) -> float:
        return float(math.sqrt(max(np.linalg.det(self.metric), 0.0)))

    @property
    def matrix(self) -> np.ndarray:
        """Lattice vectors as rows (a along x, b in the xy plane)."""
        return _matrix_from_metric(self.metric)

    @classmethod
    def from_metric(cls, metric) -> "Cell":
        g = np.asarray(metric, dtype=float)
        a, b, c = np.sqrt(np.clip(np.diag(g), 1e-12, None))

        def angle(x, y, gxy):
            return math.degrees(math.acos(float(np.clip(gxy / (x * y), -1, 1))))

        return cls(float(a), float(b), float(c), angle(b, c, g[1, 2]), angle(a, c, g[0, 2]), angle(a, b, g[0, 1]))

    @classmethod
    def from_matrix(cls, matrix) -> "Cell":
        m = np.asarray(matrix, dtype=float)
        return cls.from_metric(m @ m.T)

    @classmethod
    def from_reciprocal_metric(cls, rmetric) -> "Cell":
        return cls.from_metric(np.linalg.inv(np.asarray(rmetric, dtype=float)))

    def q(self, hkl) -> np.ndarray:
        """1/d^2 of reflections hkl (..., 3)."""
        hkl = np.asarray(hkl, dtype=float)
        return np.einsum("...i,ij,...j->...", hkl, self.reciprocal_metric, hkl)

    def d(self, hkl) -> np.ndarray:
        return 1.0 / np.sqrt(self.q(hkl))

    def transformed(self, rows) -> "Cell":
        """The cell spanned by new basis vectors given as rows of coefficients of the old ones."""
        t = np.asarray(rows, dtype=float)
        return Cell.from_metric(t @ self.metric @ t.T)

    def primitive(self, centring) -> "Cell":
        """The primitive cell of this conventional cell with the given centring."""
        return self.transformed(_PRIMITIVE[centring])

    def round(self, digits=4) -> tuple:
        return tuple(round(v, digits) for v in self.parameters)


def _matrix_from_metric(g):
    a, b, c = np.sqrt(np.diag(g))
    cg = g[0, 1] / (a * b)
    cb = g[0, 2] / (a * c)
    ca = g[1, 2] / (b * c)
    sg = math.sqrt(max(1 - cg * cg, 1e-12))
    cx = c * cb
    cy = c * (ca - cb * cg) / sg
    cz = math.sqrt(max(c * c - cx * cx - cy * cy, 1e-12))
    return np.array([[a, 0, 0], [b * cg, b * sg, 0], [cx, cy, cz]])


def niggli_reduce(cell: Cell, eps=1e-5):
    """(reduced Cell, T) with T the integer rows of the reduced basis in the input's basis."""
    import spglib

    m = cell.matrix
    reduced = spglib.niggli_reduce(m, eps=eps)
    if reduced is None:
        return cell, np.eye(3, dtype=int)
    t = np.rint(reduced @ np.linalg.inv(m)).astype(int)
    return Cell.from_matrix(reduced), t


@functools.lru_cache(maxsize=None)
def _short_vectors(limit=2):
    """Integer vectors with coefficients -limit..limit (zero left out), and one per +-pair."""
    r = range(-limit, limit + 1)
    v = np.array([(i, j, k) for i in r for j in r for k in r if (i, j, k) != (0, 0, 0)])
    first = np.where(v[:, 0] != 0, v[:, 0], np.where(v[:, 1] != 0, v[:, 1], v[:, 2]))
    return v, v[first > 0]


@dataclass(frozen=True)
class LatticeMatch:
    """A Bravais lattice compatible with a metric: its symmetrised conventional cell, the
    centring letter, the rows T of the conventional basis in the reduced primitive basis, and
    the metric's distortion from it (largest relative length and angle deviations)."""

    bravais: str
    cell: Cell
    centring: str
    transform: np.ndarray
    length_deviation: float
    angle_deviation: float


def _member_table(vectors):
    """(216,) bool: which rows, coded in sixths (a*36 + b*6 + c, each mod 1), are these vectors."""
    table = np.zeros(216, dtype=bool)
    for v in vectors:
        a, b, c = (int(round(x * 6)) % 6 for x in v)
        table[a * 36 + b * 6 + c] = True
    return table


_CENTRING_TABLES = {letter: (len(vectors), _member_table(vectors)) for letter, vectors in CENTRINGS.items()}


def _int_det(t):
    """Determinants (K,) of integer matrices (K, 3, 3), exactly."""
    return (t[:, 0, 0] * (t[:, 1, 1] * t[:, 2, 2] - t[:, 1, 2] * t[:, 2, 1])
            - t[:, 0, 1] * (t[:, 1, 0] * t[:, 2, 2] - t[:, 1, 2] * t[:, 2, 0])
            + t[:, 0, 2] * (t[:, 1, 0] * t[:, 2, 1] - t[:, 1, 1] * t[:, 2, 0]))


def _cross(u, v):
    return np.stack([u[:, 1] * v[:, 2] - u[:, 2] * v[:, 1], u[:, 2] * v[:, 0] - u[:, 0] * v[:, 2],
                     u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]], axis=-1)


def _centrings_of(t_rows):
    """Centring letters (K,) of conventional bases (K, 3, 3) (rows, integer, det > 0): "" where
    the index-|det| sublattice is none of P A B C I F R (obverse)."""
    t = np.rint(t_rows).astype(np.int64)
    det = _int_det(t)
    # the primitive rows in conventional fractions are the rows of inv(T) = adj(T) / det: in
    # sixths, 6 adj / det, whole where det divides 6 adj (det is 1-4 here)
    adj = np.stack([_cross(t[:, 1], t[:, 2]), _cross(t[:, 2], t[:, 0]), _cross(t[:, 0], t[:, 1])], axis=-1)
    six = 6 * adj
    safe = np.where(det == 0, 1, det)[:, None, None]
    exact = (np.mod(six, safe) == 0).all(axis=-1)  # (K, 3)
    digits = np.mod(six // safe, 6)
    code = digits[..., 0] * 36 + digits[..., 1] * 6 + digits[..., 2]  # (K, 3)
    out = np.full(len(t_rows), "", dtype=object)
    for letter, (count, table) in _CENTRING_TABLES.items():
        # every primitive row (mod 1) must be one of the centrings
        ok = (exact & table[code]).all(axis=-1) & (det == count) & (out == "")
        out[ok] = letter
    return out


def lattice_symmetry(cell: Cell, centring="P", length_tol=0.01, angle_tol=1.0) -> list:
    """The Bravais lattices the lattice of ``cell`` (with its centring) is compatible with,
    highest symmetry first, each as a :class:`LatticeMatch` (the best triple per lattice).
    ``length_tol`` is relative, ``angle_tol`` in degrees."""
    primitive = cell.primitive(centring)
    reduced, _ = niggli_reduce(primitive)
    g = reduced.metric
    vectors, half = _short_vectors(3)
    dots = half @ g @ half.T  # (H, H)
    lengths = np.sqrt(np.diag(dots))
    cos = dots / np.outer(lengths, lengths)
    sin_tol = math.sin(math.radians(angle_tol))
    # only vectors no longer than 2.5x the longest reduced axis
    short = lengths <= 3.2 * math.sqrt(max(np.diag(g))) + 1e-9
    perpendicular = (np.abs(cos) < sin_tol) & short[:, None] & short[None, :]
    matches = {}
    n = len(half)
    j_idx, i_idx = np.nonzero(perpendicular)
    # triples (i, j, k): j the unique axis (b of monoclinic, c of tetragonal/hexagonal), i, k
    # both perpendicular to j
    if len(j_idx):
        order = np.argsort(j_idx, kind="stable")
        j_sorted, i_sorted = j_idx[order], i_idx[order]
        starts = np.searchsorted(j_sorted, np.arange(n))
        counts = np.searchsorted(j_sorted, np.arange(n), side="right") - starts
        # every ordered pair (i, k) of the members of each j, j ascending, i major, k minor
        pairs = counts * counts
        jj = np.repeat(np.arange(n), pairs)
        offset = np.arange(pairs.sum()) - np.repeat(np.cumsum(pairs) - pairs, pairs)
        ii = i_sorted[starts[jj] + offset // counts[jj]]
        kk = i_sorted[starts[jj] + offset % counts[jj]]
        keep = ii != kk
        tri = np.column_stack([ii[keep], jj[keep], kk[keep]])
    else:
        tri = np.zeros((0, 3), dtype=int)
    if len(tri):
        t_rows = np.stack([half[tri[:, 0]], half[tri[:, 1]], half[tri[:, 2]]], axis=1)  # (T,3,3)
        det = _int_det(t_rows)
        good = (np.abs(det) >= 1) & (np.abs(det) <= 4)
        tri, t_rows, det = tri[good], t_rows[good], det[good]
        la, lb, lc = lengths[tri[:, 0]], lengths[tri[:, 1]], lengths[tri[:, 2]]
        cos_ac = cos[tri[:, 0], tri[:, 2]]
        # conditions per family with j the unique axis (a = i, unique = j, other = k)
        ang_ac = np.degrees(np.arccos(np.clip(cos_ac, -1, 1)))
        ortho_dev = np.degrees(np.abs(np.arcsin(np.clip(np.stack([cos_ac, cos[tri[:, 0], tri[:, 1]], cos[tri[:, 1], tri[:, 2]]], 1), -1, 1)))).max(1)
        mono_dev = np.degrees(np.abs(np.arcsin(np.clip(np.stack([cos[tri[:, 0], tri[:, 1]], cos[tri[:, 1], tri[:, 2]]], 1), -1, 1)))).max(1)
        eq_ik = np.abs(la - lc) / np.maximum(la, lc)
        eq_all = np.maximum(eq_ik, np.maximum(np.abs(la - lb), np.abs(lc - lb)) / np.maximum(np.maximum(la, lb), lc))
        hex_dev = np.maximum(np.abs(ang_ac - 120.0), np.degrees(np.abs(np.arcsin(np.clip(np.stack([cos[tri[:, 0], tri[:, 1]], cos[tri[:, 1], tri[:, 2]]], 1), -1, 1)))).max(1))
        tests = {
            "cubic": (eq_all, ortho_dev),
            "hexagonal": (eq_ik, hex_dev),
            "tetragonal": (eq_ik, ortho_dev),
            "orthorhombic": (np.zeros(len(tri)), ortho_dev),
            "monoclinic": (np.zeros(len(tri)), mono_dev),
        }
        for family, (ldev, adev) in tests.items():
            ok = (ldev <= length_tol) & (adev <= angle_tol)
            if not ok.any():
                continue
            cand = np.flatnonzero(ok)
            # prefer small determinants (smallest conventional cell), then small distortion
            size = (la[cand] + lb[cand] + lc[cand]) / (3 * lengths.min())
            score = np.abs(det[cand]) * 100 + size + 0.01 * (ldev[cand] / max(length_tol, 1e-9) + adev[cand] / max(angle_tol, 1e-9))
            cand = cand[np.argsort(score, kind="stable")][:2000]
            t = t_rows[cand].astype(float)
            if family == "monoclinic":
                rows = t.copy()  # b unique
            else:
                rows = t[:, [0, 2, 1]].copy()  # c unique
            if family == "hexagonal":
                flip = cos_ac[cand] > 0
                rows[flip, 1] = -rows[flip, 1]
            neg = np.linalg.det(rows) < 0
            rows[neg, 2] = -rows[neg, 2]
            letters = _centrings_of(rows)
            if family == "hexagonal":  # reverse -> obverse setting: the 2-fold about c
                alt = rows.copy()
                alt[:, :2] = -alt[:, :2]
                alt_letters = _centrings_of(alt)
                use_alt = (letters == "") & (alt_letters == "R")
                rows[use_alt] = alt[use_alt]
                letters[use_alt] = "R"
            first = {}  # the first candidate of each Bravais lattice (in the order of score)
            for letter in set(letters) - {""}:
                bravais = _bravais_name(family, letter)
                if bravais is not None:
                    i = int(np.argmax(letters == letter))
                    first[bravais] = min(first.get(bravais, i), i)
            for bravais, i in first.items():
                c, row = cand[i], rows[i]
                conv = reduced.transformed(row)
                matches[bravais] = LatticeMatch(bravais, symmetrize(conv, family), letters[i], row.astype(int),
                                                float(ldev[c]), float(adev[c]))
    matches["aP"] = LatticeMatch("aP", reduced, "P", np.eye(3, dtype=int), 0.0, 0.0)
    return [matches[b] for b in BRAVAIS_ORDER if b in matches]


def _bravais_name(family, letter):
    table = {
        "cubic": {"P": "cP", "I": "cI", "F": "cF"},
        "hexagonal": {"P": "hP", "R": "hR"},
        "tetragonal": {"P": "tP", "I": "tI"},
        "orthorhombic": {"P": "oP", "C": "oS", "A": "oS", "B": "oS", "I": "oI", "F": "oF"},
        "monoclinic": {"P": "mP", "C": "mS", "A": "mS", "I": "mS"},
    }
    return table[family].get(letter)


def symmetrize(cell: Cell, family: str) -> Cell:
    """The nearest cell with the exact metric of the family (conventional axes)."""
    a, b, c, al, be, ga = cell.parameters
    if family == "cubic":
        m = (a + b + c) / 3
        return Cell(m, m, m, 90, 90, 90)
    if family == "hexagonal":
        m = (a + b) / 2
        return Cell(m, m, c, 90, 90, 120)
    if family == "tetragonal":
        m = (a + b) / 2
        return Cell(m, m, c, 90, 90, 90)
    if family == "orthorhombic":
        return Cell(a, b, c, 90, 90, 90)
    if family == "monoclinic":
        return Cell(a, b, c, 90, be, 90)
    return cell


def compare_lattices(found: Cell, found_centring: str, true: Cell, true_centring: str = "P",
                     length_tol=0.005, angle_tol=0.5, max_index=4):
    """How a found lattice relates to the true one: ("equivalent", 1) when some basis of the
    true lattice has the found reduced metric within the tolerances; ("supercell", n) when the
    found lattice is a sublattice of index n of the true one (found cell n times bigger);
    ("subcell", n) for the reverse; ("different", 0) otherwise."""
    f_red, _ = niggli_reduce(found.primitive(found_centring))
    t_red, _ = niggli_reduce(true.primitive(true_centring))
    if _contains(t_red, f_red, 1, length_tol, angle_tol):
        return ("equivalent", 1)
    ratio = f_red.volume / t_red.volume
    n = int(round(ratio)) if ratio >= 1 else int(round(1 / ratio))
    if 2 <= n <= max_index:
        if ratio > 1 and _contains(t_red, f_red, n, length_tol, angle_tol):
            return ("supercell", n)
        if ratio < 1 and _contains(f_red, t_red, n, length_tol, angle_tol):
            return ("subcell", n)
    return ("different", 0)


def _contains(base: Cell, target: Cell, index, length_tol, angle_tol) -> bool:
    """Whether ``base``'s lattice has a sublattice of this index whose some basis has the
    reduced ``target`` metric (lengths and angles within tolerance)."""
    limit = 2 if index == 1 else 4
    vectors, _ = _short_vectors(limit)
    g = base.metric
    lengths = np.sqrt(np.einsum("ij,jk,ik->i", vectors, g, vectors))
    ta, tb, tc = target.a, target.b, target.c
    pick = [np.flatnonzero(np.abs(lengths - x) <= length_tol * x + 1e-9) for x in (ta, tb, tc)]
    if any(len(p) == 0 for p in pick):
        return False
    va, vb, vc = (vectors[p] for p in pick)
    gt = target.metric
    ab = va @ g @ vb.T  # (A, B)
    ok_ab = np.abs(ab - gt[0, 1]) <= _dot_tol(ta, tb, length_tol, angle_tol)
    ia, ib = np.nonzero(ok_ab)
    if not len(ia):
        return False
    ac = va @ g @ vc.T
    bc = vb @ g @ vc.T
    ok = (np.abs(ac[ia] - gt[0, 2]) <= _dot_tol(ta, tc, length_tol, angle_tol)) & (
        np.abs(bc[ib] - gt[1, 2]) <= _dot_tol(tb, tc, length_tol, angle_tol))
    pa, pc = np.nonzero(ok)
    if not len(pa):
        return False
    rows = np.stack([va[ia[pa]], vb[ib[pa]], vc[pc]], axis=1)
    det = np.abs(np.rint(np.linalg.det(rows))).astype(int)
    return bool((det == index).any())


def _dot_tol(x, y, length_tol, angle_tol):
    return x * y * (2 * length_tol + math.radians(angle_tol))
