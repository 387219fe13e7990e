"""Space-group facts (symbol, crystal system, Bravais lattice, point group) and the 46 symmetry
rules the model predicts beside the 230 space groups, all derived from spglib's database.

Everything is computed on first use and cached in memory (the full tables take a fraction of a
second); spglib is imported only then. ``python -m csn_plugin.symmetry`` prints the rule
documentation (docs/symmetry-rules.md).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import numpy as np

CRYSTAL_SYSTEMS = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic")
BRAVAIS_LATTICES = ("aP", "mP", "mS", "oP", "oS", "oF", "oI", "tP", "tI", "hR", "hP", "cP", "cF", "cI")
# Lattice-metric families: trigonal groups (R ones in hexagonal axes) share the hexagonal metric.
CRYSTAL_FAMILIES = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "hexagonal", "cubic")

_LAST_NUMBER_OF_SYSTEM = (2, 15, 74, 142, 167, 194, 230)

LAUE_CLASS_OF_POINT_GROUP = {
    "1": "-1", "-1": "-1",
    "2": "2/m", "m": "2/m", "2/m": "2/m",
    "222": "mmm", "mm2": "mmm", "mmm": "mmm",
    "4": "4/m", "-4": "4/m", "4/m": "4/m",
    "422": "4/mmm", "4mm": "4/mmm", "-42m": "4/mmm", "4/mmm": "4/mmm",
    "3": "-3", "-3": "-3",
    "32": "-3m", "3m": "-3m", "-3m": "-3m",
    "6": "6/m", "-6": "6/m", "6/m": "6/m",
    "622": "6/mmm", "6mm": "6/mmm", "-6m2": "6/mmm", "6/mmm": "6/mmm",
    "23": "m-3", "m-3": "m-3",
    "432": "m-3m", "-43m": "m-3m", "m-3m": "m-3m",
}

# --- the 46 rules -------------------------------------------------------------------------------

_POSITIONS = ("primary", "secondary", "tertiary")
# Orientation-free rules. The signed ones are +1 when the right-handed screw (3_1, 4_1, 6_1, 6_2)
# is present, -1 when only its left-handed partner is (a group with both, e.g. I4_1 or R3 in
# hexagonal axes, counts +1). "-3" is left out: a group has -3 exactly when it has a 3-fold
# axis (3 or 3_1/3_2) and -1.
_AXIS_RULES = ("3", "3_1/3_2", "4", "4_1/4_3", "4_2", "6", "6_1/6_5", "6_2/6_4", "6_3", "-1", "-4", "-6")
_TWOFOLD_RULES = tuple(f"{kind} {position}" for position in _POSITIONS for kind in ("2", "2_1"))
_PLANE_KINDS = ("m", "a/b/c glide", "n glide", "d glide")
_PLANE_RULES = tuple(f"{kind} {position}" for position in _POSITIONS for kind in _PLANE_KINDS)
# "c glide": some axial glide translates by c/2 (separates Pcc2/Pba2, P-4c2/P-4b2);
# "non-symmorphic": no origin makes every operation a point operation plus a centring
# (separates I222/I2_12_12_1, I23/I2_13).
_EXTRA_RULES = ("c glide", "non-symmorphic")
OPERATION_RULE_NAMES = _AXIS_RULES + _TWOFOLD_RULES + _PLANE_RULES + _EXTRA_RULES
LATTICE_RULE_NAMES = tuple(f"lattice {lattice}" for lattice in BRAVAIS_LATTICES)
RULE_NAMES = OPERATION_RULE_NAMES + LATTICE_RULE_NAMES
assert len(OPERATION_RULE_NAMES) == 32 and len(RULE_NAMES) == 46

# Hermann-Mauguin symmetry directions (direct lattice, first non-zero index positive) -> position
# 0/1/2 = primary/secondary/tertiary. Trigonal and hexagonal groups are in hexagonal axes.
_HEXAGONAL_DIRECTIONS = {(0, 0, 1): 0, (1, 0, 0): 1, (0, 1, 0): 1, (1, 1, 0): 1,
                         (1, -1, 0): 2, (1, 2, 0): 2, (2, 1, 0): 2}
_SYMMETRY_DIRECTIONS = {
    "triclinic": {},
    "monoclinic": {(0, 1, 0): 0},
    "orthorhombic": {(1, 0, 0): 0, (0, 1, 0): 1, (0, 0, 1): 2},
    "tetragonal": {(0, 0, 1): 0, (1, 0, 0): 1, (0, 1, 0): 1, (1, 1, 0): 2, (1, -1, 0): 2},
    "trigonal": _HEXAGONAL_DIRECTIONS,
    "hexagonal": _HEXAGONAL_DIRECTIONS,
    "cubic": {(1, 0, 0): 0, (0, 1, 0): 0, (0, 0, 1): 0,
              (1, 1, 1): 1, (1, 1, -1): 1, (1, -1, 1): 1, (1, -1, -1): 1,
              (1, 1, 0): 2, (1, -1, 0): 2, (1, 0, 1): 2, (1, 0, -1): 2, (0, 1, 1): 2, (0, 1, -1): 2},
}

# (det, trace) of a rotation matrix -> its kind: n for a proper n-fold rotation, -n for -n
# (-2 is a mirror).
_KIND_OF_DET_TRACE = {(1, 3): 1, (1, -1): 2, (1, 0): 3, (1, 1): 4, (1, 2): 6,
                      (-1, -3): -1, (-1, 1): -2, (-1, 0): -3, (-1, -1): -4, (-1, -2): -6}


@dataclass(frozen=True)
class SpaceGroupInfo:
    """One space group in its default setting (spglib's first Hall number; R groups in
    hexagonal axes, monoclinic groups with unique axis b)."""

    number: int
    symbol: str  # short Hermann-Mauguin symbol, screws with underscores: "P2_1/c", "P6_3/mmc"
    crystal_system: str
    bravais: str
    point_group: str
    laue_class: str
    centrosymmetric: bool
    hall_number: int


def _check_number(n) -> int:
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise ValueError(f"space-group number must be an integer 1..230, not {n!r}")
    if not 1 <= n <= 230:
        raise ValueError(f"space-group number must be 1..230, not {n}")
    return int(n)


def _crystal_system_of_number(n: int) -> str:
    for system, last in zip(CRYSTAL_SYSTEMS, _LAST_NUMBER_OF_SYSTEM):
        if n <= last:
            return system
    raise AssertionError(n)


def _bravais_of(system: str, centring: str) -> str:
    if system == "triclinic":
        return "aP"
    if system == "monoclinic":
        return "mP" if centring == "P" else "mS"
    if system == "orthorhombic":
        return "o" + ("S" if centring in "ABC" else centring)
    if system == "trigonal":
        return "hR" if centring == "R" else "hP"
    return system[0] + centring  # tP tI hP cP cF cI


def _field(record, name):
    """A field of spglib's SpaceGroupType (a dataclass in spglib >= 2.5, a dict before)."""
    return record[name] if isinstance(record, dict) else getattr(record, name)


def _spglib_database(function_name: str, hall_number: int):
    """spglib.<function_name>(hall_number), without spglib 2.7's error-handling deprecation
    warning (database look-ups of valid Hall numbers cannot fail)."""
    import spglib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return getattr(spglib, function_name)(hall_number)


@functools.lru_cache(maxsize=None)
def _default_hall_numbers() -> tuple:
    first = {}
    for hall in range(1, 531):
        first.setdefault(_field(_spglib_database("get_spacegroup_type", hall), "number"), hall)
    return tuple(first[n] for n in range(1, 231))


@functools.lru_cache(maxsize=None)
def _all_space_groups() -> tuple:
    groups = []
    for n, hall in enumerate(_default_hall_numbers(), start=1):
        record = _spglib_database("get_spacegroup_type", hall)
        symbol = _field(record, "international_short")
        point_group = _field(record, "pointgroup_international")
        rotations, _ = _operations(n)
        system = _crystal_system_of_number(n)
        groups.append(SpaceGroupInfo(
            number=n, symbol=symbol, crystal_system=system, bravais=_bravais_of(system, symbol[0]),
            point_group=point_group, laue_class=LAUE_CLASS_OF_POINT_GROUP[point_group],
            centrosymmetric=bool((rotations == -np.eye(3, dtype=np.int64)).all(axis=(1, 2)).any()),
            hall_number=hall))
    return tuple(groups)


def space_group(n: int) -> SpaceGroupInfo:
    """Facts about space group ``n`` (1..230); ValueError otherwise."""
    return _all_space_groups()[_check_number(n) - 1]


# --- operations of a group and what each one is --------------------------------------------------


@functools.lru_cache(maxsize=None)
def _operations(n: int):
    """(rotations (k,3,3) int64, translations (k,3) in [0,1)) of group n, centring copies included."""
    symmetry = _spglib_database("get_symmetry_from_database", _default_hall_numbers()[n - 1])
    translations = np.mod(np.round(np.asarray(symmetry["translations"], dtype=float) * 24) / 24, 1.0)
    return np.asarray(symmetry["rotations"], dtype=np.int64), translations


def _centrings(rotations, translations) -> np.ndarray:
    """The centring translations (k,3) of an operation list, the zero vector included."""
    return translations[(rotations == np.eye(3, dtype=np.int64)).all(axis=(1, 2))]


def _in_lattice(vectors, centrings) -> np.ndarray:
    """Whether each vector (...,3) is a translation of Z^3 plus these centrings."""
    difference = np.asarray(vectors, dtype=float)[..., None, :] - centrings
    return (np.abs(difference - np.round(difference)) < 1e-6).all(axis=-1).any(axis=-1)


def _primitive(vector) -> tuple:
    """The shortest integer vector along ``vector`` (integers), first non-zero entry positive."""
    vector = [int(v) for v in vector]
    divisor = math.gcd(*vector)
    vector = [v // divisor for v in vector]
    if next(v for v in vector if v) < 0:
        vector = [-v for v in vector]
    return tuple(vector)


def _null_direction(matrix) -> np.ndarray:
    """The primitive integer vector spanning the null space of an integer 3x3 matrix of rank 2."""
    for i, j in ((0, 1), (0, 2), (1, 2)):
        cross = np.cross(matrix[i], matrix[j])
        if cross.any():
            return np.array(_primitive(cross), dtype=np.int64)
    raise ValueError("matrix has rank < 2")


@dataclass(frozen=True)
class _RotationFacts:
    kind: int  # n for a proper n-fold rotation, -n for -n (-2 = mirror), 1 identity, -1 inversion
    direction: tuple | None  # rotation axis (right-handed) or mirror normal, primitive integers
    projector: np.ndarray | None  # onto the axis (1/n sum W^k) or the mirror plane ((1 + W)/2)
    shortest: np.ndarray | None  # shortest lattice vector along a rotation axis (centring counted)
    step: int  # the screw order p is defined modulo this (what Z^3 shifts can change)


@functools.lru_cache(maxsize=None)
def _rotation_facts(rotation_bytes: bytes, centring_bytes: bytes) -> _RotationFacts:
    rotation = np.frombuffer(rotation_bytes, dtype=np.int64).reshape(3, 3)
    centrings = np.frombuffer(centring_bytes, dtype=float).reshape(-1, 3)
    identity = np.eye(3, dtype=np.int64)
    kind = _KIND_OF_DET_TRACE[(int(round(np.linalg.det(rotation))), int(np.trace(rotation)))]
    if kind == -2:
        normal = tuple(_null_direction(rotation + identity))
        return _RotationFacts(kind, normal, (identity + rotation) / 2, None, 1)
    if kind not in (2, 3, 4, 6):
        return _RotationFacts(kind, None, None, None, 1)
    axis = _null_direction(rotation - identity)
    if kind > 2:  # orient the axis so that the rotation is right-handed about it
        probe = next(e for e in identity if np.cross(axis, e).any())
        if np.linalg.det(np.stack([axis, probe, rotation @ probe]).astype(float)) < 0:
            axis = -axis
    shortest = axis.astype(float)
    for divisor in (6, 4, 3, 2):
        if _in_lattice(axis / divisor, centrings):
            shortest = axis / divisor
            break
    projector = sum(np.linalg.matrix_power(rotation, k) for k in range(kind)) / kind
    step = kind
    for unit in identity:  # what an integer shift adds to n * (intrinsic part / shortest)
        step = math.gcd(step, int(round(kind * (projector @ unit) @ shortest / (shortest @ shortest))))
    return _RotationFacts(kind, tuple(int(v) for v in axis), projector, shortest, step)


_SHIFTS = np.array(list(np.ndindex(2, 2, 2)), dtype=float)
_PLANE_KINDS_BY_RANK = ("m", "a/b/c glide", "n glide", "d glide", None)


def _plane_ranks(glides):
    """Rank 0 m, 1 axial, 2 n, 3 d, 4 other of glide vectors (...,3), and the axis index 0/1/2
    (a/b/c) of axial ones. d: every component 0, 1/4 or 3/4 (ITA's (a+-b)/4, (a+-b+-c)/4);
    other: the 'g' glides that F and R centring add, e.g. (1/4,1/4,1/2) or (1/6,1/3,1/3)."""
    def whole(values):
        return (np.abs(values - np.round(values)) < 1e-6).all(axis=-1)

    odd = np.round(2 * glides).astype(np.int64) % 2
    quarters = np.round(4 * glides).astype(np.int64) % 4
    diamond = whole(4 * glides) & ((quarters % 2 == 1) | (quarters == 0)).all(axis=-1)
    ranks = np.where(whole(glides), 0, np.where(whole(2 * glides), np.where(odd.sum(-1) == 1, 1, 2),
                                               np.where(diamond, 3, 4)))
    return ranks, odd.argmax(axis=-1)


def _is_symmorphic(rotations, translations, centrings) -> bool:
    """Whether some origin turns every operation into a point operation plus a centring.

    An origin shift o changes t into t + (W - 1) o; the generators of the point group are tried
    against every origin on a 1/24 grid (all translations in the database are multiples of 1/24)."""
    if _in_lattice(translations, centrings).all():
        return True
    identity = np.eye(3, dtype=np.int64)
    generators, generated = [], {identity.tobytes()}
    for rotation, translation in zip(rotations, translations):
        if rotation.tobytes() in generated:
            continue
        generators.append((rotation, translation))
        frontier, generated = [identity], {identity.tobytes()}
        while frontier:  # the point group the generators so far generate
            element = frontier.pop()
            for generator, _ in generators:
                product = element @ generator
                if product.tobytes() not in generated:
                    generated.add(product.tobytes())
                    frontier.append(product)
    allowed = np.zeros(24 ** 3, dtype=bool)  # centrings mod 1 on the 1/24 grid, coded x*576+y*24+z
    allowed[((np.round(centrings * 24) % 24) @ _GRID_CODE).astype(np.int64)] = True
    origins = _origin_grid()  # in 24ths; float for fast exact small-integer products
    for rotation, translation in generators:
        shifted = (origins @ (rotation - identity).T + np.round(translation * 24)) % 24
        origins = origins[allowed[(shifted @ _GRID_CODE).astype(np.int64)]]
        if not len(origins):
            return False
    return True


_GRID_CODE = np.array([576.0, 24.0, 1.0])


@functools.lru_cache(maxsize=None)
def _origin_grid() -> np.ndarray:
    """Every origin on the 1/24 grid of the unit cell, in 24ths, (13824, 3)."""
    return np.array(list(np.ndindex(24, 24, 24)), dtype=float)


@functools.lru_cache(maxsize=None)
def _group_features(n: int) -> dict:
    """{operation rule name: +1/-1} for the rules present in group n (plus "-3", not a rule)."""
    system = _crystal_system_of_number(n)
    positions_of = _SYMMETRY_DIRECTIONS[system]
    rotations, translations = _operations(n)
    centrings = _centrings(rotations, translations)
    centring_bytes = np.ascontiguousarray(centrings).tobytes()
    found = {}

    def mark(name, sign=1):
        found[name] = max(found.get(name, -1), sign)

    by_rotation = {}
    for index, rotation in enumerate(rotations):
        by_rotation.setdefault(rotation.tobytes(), []).append(index)
    for rotation_bytes, indices in by_rotation.items():
        facts = _rotation_facts(rotation_bytes, centring_bytes)
        kind, shifts = facts.kind, translations[indices]
        if kind in (-1, -3, -4, -6):
            mark(str(kind))
        elif kind in (2, 3, 4, 6):
            steps = kind * (shifts @ facts.projector.T) @ facts.shortest / (facts.shortest @ facts.shortest)
            if (np.abs(steps - np.round(steps)) > 1e-6).any():
                raise AssertionError(f"group {n}: screw part is not a lattice fraction")
            for p in sorted(set(int(v) for v in np.round(steps).astype(np.int64) % facts.step)):
                if kind == 2:
                    position = _POSITIONS[positions_of[_primitive(facts.direction)]]
                    mark(f"2_1 {position}" if p else f"2 {position}")
                elif p == 0 or 2 * p == kind:
                    mark(f"{kind}_{p}" if p else str(kind))
                else:
                    low = min(p, kind - p)
                    mark({3: "3_1/3_2", 4: "4_1/4_3", 6: ("6_1/6_5", "6_2/6_4")[low - 1]}[kind],
                         1 if p == low else -1)
        elif kind == -2:
            position = _POSITIONS[positions_of[_primitive(facts.direction)]]
            candidates = (shifts[:, None, :] + _SHIFTS) @ facts.projector.T  # (t, 8, 3)
            ranks, axes = _plane_ranks(candidates)
            best = ranks.min(axis=1)
            for rank in set(best.tolist()):
                if _PLANE_KINDS_BY_RANK[rank] is not None:
                    mark(f"{_PLANE_KINDS_BY_RANK[rank]} {position}")
            if ((ranks == 1) & (best[:, None] == 1) & (axes == 2)).any():
                mark("c glide")
    if not _is_symmorphic(rotations, translations, centrings):
        mark("non-symmorphic")
    return found


# --- rule vectors ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _rule_table() -> np.ndarray:
    table = np.zeros((230, len(RULE_NAMES)), dtype=np.int8)
    lattice_offset = len(OPERATION_RULE_NAMES)
    for n in range(1, 231):
        features = _group_features(n)
        for index, name in enumerate(OPERATION_RULE_NAMES):
            table[n - 1, index] = features.get(name, 0)
        table[n - 1, lattice_offset + BRAVAIS_LATTICES.index(space_group(n).bravais)] = 1
    table.setflags(write=False)
    return table


def symmetry_rules(n: int) -> np.ndarray:
    """The 46 rule values of group ``n``: int8 in {-1, 0, 1}, in ``RULE_NAMES`` order."""
    return _rule_table()[_check_number(n) - 1].copy()


def rule_matrix() -> np.ndarray:
    """(230, 46) int8: row n-1 is ``symmetry_rules(n)``."""
    return _rule_table().copy()


def rule_targets(n: int) -> np.ndarray:
    """(46, 2) float32 training targets of group ``n``: column 0 presence (rule != 0), column 1
    direction (0 only where the rule is -1)."""
    rules = symmetry_rules(n)
    return np.stack([rules != 0, rules != -1], axis=-1).astype(np.float32)


def rules_from_targets(targets) -> np.ndarray:
    """Rule values int8 (..., 46) from targets or predicted probabilities (..., 46, 2): present
    where column 0 > 0.5, then -1 where column 1 <= 0.5, else +1."""
    targets = np.asarray(targets)
    if targets.shape[-2:] != (len(RULE_NAMES), 2):
        raise ValueError(f"targets must have shape (..., {len(RULE_NAMES)}, 2), not {targets.shape}")
    sign = np.where(targets[..., 1] > 0.5, 1, -1)
    return np.where(targets[..., 0] > 0.5, sign, 0).astype(np.int8)


# --- crystal systems, lattices, families ----------------------------------------------------------


def crystal_system_index(n: int) -> int:
    """Index of group ``n``'s crystal system in ``CRYSTAL_SYSTEMS``."""
    return CRYSTAL_SYSTEMS.index(_crystal_system_of_number(_check_number(n)))


def bravais_index(n: int) -> int:
    """Index of group ``n``'s Bravais lattice in ``BRAVAIS_LATTICES``."""
    return BRAVAIS_LATTICES.index(space_group(n).bravais)


def crystal_family(n: int) -> str:
    """Lattice-metric family of group ``n`` (``CRYSTAL_FAMILIES``; trigonal -> hexagonal)."""
    system = _crystal_system_of_number(_check_number(n))
    return "hexagonal" if system == "trigonal" else system


def group_to_crystal_system() -> np.ndarray:
    """(230,) int64: crystal-system index of groups 1..230, e.g. to sum 230 probabilities into 7
    with ``np.bincount(group_to_crystal_system(), weights=p, minlength=7)``."""
    return np.array([crystal_system_index(n) for n in range(1, 231)], dtype=np.int64)


def group_to_bravais() -> np.ndarray:
    """(230,) int64: Bravais-lattice index of groups 1..230 (see ``group_to_crystal_system``)."""
    return np.array([bravais_index(n) for n in range(1, 231)], dtype=np.int64)


# --- systematic absences of powder peak positions ------------------------------------------------

_HKL_LIMIT = 8  # |h|, |k|, |l| <= 8: enough for the 4n conditions of d glides and 4_1 screws


@functools.lru_cache(maxsize=None)
def _hkl() -> np.ndarray:
    box = range(-_HKL_LIMIT, _HKL_LIMIT + 1)
    hkl = np.array([(h, k, l) for h in box for k in box for l in box], dtype=np.int64)
    return hkl[(hkl != 0).any(axis=1)]


@functools.lru_cache(maxsize=None)
def _peak_positions(family: str):
    """(indices of the hkl used, position id of each): hkl with the same d-spacing under every
    metric of the family share a position. Only positions whose every hkl lies in the box."""
    hkl = _hkl()
    h, k, l = hkl.T
    if family == "triclinic":  # d depends on the full metric: only h and -h coincide
        first = np.where(h != 0, h, np.where(k != 0, k, l))
        keys = hkl * np.sign(first)[:, None]
        keep = np.ones(len(hkl), dtype=bool)
    elif family == "monoclinic":  # unique axis b: h^2, k^2, l^2 and hl
        keys, keep = np.stack([h * h, k * k, l * l, h * l], axis=1), np.ones(len(hkl), dtype=bool)
    elif family == "orthorhombic":
        keys, keep = np.stack([h * h, k * k, l * l], axis=1), np.ones(len(hkl), dtype=bool)
    elif family == "tetragonal":
        keys = np.stack([h * h + k * k, l * l], axis=1)
        keep = keys[:, 0] <= _HKL_LIMIT ** 2
    elif family == "hexagonal":
        keys = np.stack([h * h + h * k + k * k, l * l], axis=1)
        keep = keys[:, 0] <= 3 * _HKL_LIMIT ** 2 // 4
    else:  # cubic
        keys = (h * h + k * k + l * l)[:, None]
        keep = keys[:, 0] <= _HKL_LIMIT ** 2
    _, position = np.unique(keys[keep], axis=0, return_inverse=True)
    return np.flatnonzero(keep), position.reshape(-1)


@functools.lru_cache(maxsize=None)
def _fixed_by(rotation_bytes: bytes) -> np.ndarray:
    """Indices of the hkl (row vectors) that the rotation leaves unchanged: h W == h."""
    rotation = np.frombuffer(rotation_bytes, dtype=np.int64).reshape(3, 3)
    hkl = _hkl()
    return np.flatnonzero((hkl @ rotation == hkl).all(axis=1))


def _present_positions(n: int) -> np.ndarray:
    """Bool per peak position of group n's family: some hkl there is not systematically absent.

    hkl is absent when an operation (W, t) has h W == h and h.t not an integer."""
    rotations, translations = _operations(n)
    hkl = _hkl()
    absent = np.zeros(len(hkl), dtype=bool)
    for rotation, translation in zip(rotations, translations):
        if translation.any():
            fixed = _fixed_by(rotation.tobytes())
            phases = hkl[fixed] @ translation
            absent[fixed[np.abs(phases - np.round(phases)) > 1e-6]] = True
    used, position = _peak_positions(crystal_family(n))
    return np.bincount(position, weights=~absent[used], minlength=position.max() + 1) > 0


@functools.lru_cache(maxsize=None)
def _absence_table() -> np.ndarray:
    class_of_key, classes = {}, []
    for n in range(1, 231):
        key = (crystal_family(n), _present_positions(n).tobytes())
        classes.append(class_of_key.setdefault(key, len(class_of_key)))
    table = np.array(classes, dtype=np.int64)
    table.setflags(write=False)
    return table


def absence_class(n: int) -> int:
    """Class of group ``n`` among groups with the same crystal family and the same systematic
    absences of powder peak positions (numbered 0.. in order of their lowest group)."""
    return int(_absence_table()[_check_number(n) - 1])


def absence_classes() -> np.ndarray:
    """(230,) int64: ``absence_class`` of groups 1..230."""
    return _absence_table().copy()


def absence_class_members(k: int) -> list:
    """The group numbers in absence class ``k``."""
    table = _absence_table()
    if not 0 <= k <= table.max():
        raise ValueError(f"absence class must be 0..{table.max()}, not {k}")
    return [int(n) for n in np.flatnonzero(table == k) + 1]


# --- documentation ----------------------------------------------------------------------------------

_RULE_MEANINGS = {
    "3": "a pure 3-fold rotation axis",
    "3_1/3_2": "a 3-fold screw axis: +1 with 3_1 (3_1 and 3_2 together count +1), -1 with only 3_2",
    "4": "a pure 4-fold rotation axis",
    "4_1/4_3": "a 4-fold quarter screw: +1 with 4_1 (with or without 4_3), -1 with only 4_3",
    "4_2": "a 4_2 screw axis",
    "6": "a pure 6-fold rotation axis",
    "6_1/6_5": "a 6-fold sixth screw: +1 with 6_1, -1 with 6_5",
    "6_2/6_4": "a 6-fold third screw: +1 with 6_2, -1 with 6_4",
    "6_3": "a 6_3 screw axis",
    "-1": "an inversion centre (centrosymmetric)",
    "-4": "a -4 rotoinversion axis",
    "-6": "a -6 rotoinversion axis",
    "c glide": "some axial glide translates by c/2 (any orientation)",
    "non-symmorphic": "no origin turns every operation into a point operation plus a centring",
}
_POSITION_MEANINGS = {
    "2": "a pure 2-fold axis", "2_1": "a 2_1 screw axis",
    "m": "a mirror plane", "a/b/c glide": "an axial glide plane (half a cell edge)",
    "n glide": "a diagonal glide plane (half a face or body diagonal)",
    "d glide": "a diamond glide plane (a quarter diagonal)",
}
_DIRECTION_TEXT = ("monoclinic [010]; orthorhombic [100]; tetragonal, trigonal, hexagonal [001]; cubic <100>",
                   "orthorhombic [010]; tetragonal <100>; trigonal, hexagonal [100],[010],[110]; cubic <111>",
                   "orthorhombic [001]; tetragonal <110>; trigonal, hexagonal [1-10],[120],[210]; cubic <110>")
_EXAMPLE_GROUPS = (1, 2, 14, 15, 62, 136, 141, 166, 169, 170, 194, 225, 227)


def rule_meaning(name: str) -> str:
    """One line saying what rule ``name`` means."""
    if name.startswith("lattice "):
        return f"Bravais lattice {name.split()[1]} (one-hot)"
    if name in _RULE_MEANINGS:
        return _RULE_MEANINGS[name]
    kind, position = name.rsplit(" ", 1)
    where = "along" if kind in ("2", "2_1") else "with its normal along"
    return f"{_POSITION_MEANINGS[kind]} {where} a {position} direction"


def _distinct_count(columns) -> int:
    return len({row.tobytes() for row in np.ascontiguousarray(_rule_table()[:, columns])})


def rules_markdown() -> str:
    """The rule documentation as markdown (docs/symmetry-rules.md)."""
    n_operation = len(OPERATION_RULE_NAMES)
    with_lattice = _distinct_count(slice(None))
    without_lattice = _distinct_count(slice(0, n_operation))
    classes = _absence_table()
    lines = [
        "# Symmetry rules",
        "",
        "Generated by `python -m csn_plugin.symmetry > docs/symmetry-rules.md` from",
        "`csn_plugin/symmetry.py`; nothing in it is typed per space group.",
        "",
        "Beside the 230 space-group probabilities the model predicts 46 *symmetry rules*, each",
        "-1, 0 or +1 (`symmetry_rules(n)`, `rule_matrix()`): 32 rules about the symmetry",
        "operations and a one-hot Bravais lattice (14). As training targets each rule is two",
        "binary outputs, presence (rule != 0) and direction (0 only for -1): `rule_targets(n)`,",
        "inverted by `rules_from_targets`.",
        "",
        "## How the rules are derived",
        "",
        "Every operation (W, t) of the group, centring copies included, comes from spglib's",
        "database for the group's first Hall number (ITA standard setting: unique axis b for",
        "monoclinic groups, hexagonal axes for R groups).",
        "",
        "- *Kind* of W from det and trace: 1, 2, 3, 4, 6, -1, m (-2), -3, -4, -6.",
        "- *Direction*: a rotation's axis is the +1 eigenvector of W, a mirror's normal the -1",
        "  eigenvector, both as primitive direct-lattice vectors, sorted into the Hermann-Mauguin",
        "  primary, secondary and tertiary symmetry directions:",
        *(f"  {position}: {text}." for position, text in zip(_POSITIONS, _DIRECTION_TEXT)),
        "- *Screw part* of an n-fold rotation: t_int = (1/n) sum_k W^k t = (p/n) L with L the",
        "  shortest lattice vector (centring included) along the axis, oriented so that the",
        "  rotation is right-handed; p = 1 is 3_1, 4_1, 6_1, p = n - 1 its enantiomorph.",
        "- *Glide part* of a mirror: g = (t + W t)/2; g a lattice vector: m; half a cell edge:",
        "  a/b/c glide; half a face or body diagonal: n; components 0 or +-1/4: d. The 1/3, 1/6",
        "  and (1/4,1/4,1/2) glides that R and F centring add are not recorded.",
        "- Each operation is taken in its *simplest form* over shifts by integer cell vectors",
        "  (rotation before screw, m before a/b/c before n before d), as the Hermann-Mauguin",
        "  symbols do: P321 has 2_1 axes between its 2-fold axes along [100], and the rules say",
        "  only 2. Centring copies are separate operations, so C2 has both 2 and 2_1, and Fm-3m",
        "  has m, a/b/c and n planes normal to <100>: all of these are real.",
        "- `-3` is not a rule: it is present exactly when a 3-fold axis and -1 are. Its slot and",
        "  the spare 32nd one hold `c glide` and `non-symmorphic`, which separate the last pairs",
        "  (Pcc2/Pba2, P-4c2/P-4b2, I222/I2_12_12_1, I23/I2_13).",
        "",
        f"Distinct rule vectors over the 230 groups: **{with_lattice}** with the lattice rules,",
        f"**{without_lattice}** with the {n_operation} operation rules alone.",
        "",
        "## The 46 rules",
        "",
        "| # | rule | meaning | groups |",
        "|---|---|---|---|",
    ]
    counts = (_rule_table() != 0).sum(axis=0)
    for index, name in enumerate(RULE_NAMES):
        lines.append(f"| {index} | `{name}` | {rule_meaning(name)} | {counts[index]} |")
    lines += [
        "",
        "## Absence classes",
        "",
        "Groups of the same crystal family (trigonal with hexagonal, R groups in hexagonal axes)",
        "whose powder patterns have the same systematic absences of peak *positions*: an hkl",
        "(|h|,|k|,|l| <= 8) is absent when some operation has h W = h and h.t not an integer;",
        "a peak position (all hkl with the same d under every metric of the family, e.g. the same",
        "h^2+k^2+l^2 for cubic) is present when any of its hkl is allowed.",
        f"There are **{classes.max() + 1}** absence classes (`absence_class(n)`,",
        "`absence_class_members(k)`). Largest classes:",
        "",
        "| class | groups |",
        "|---|---|",
    ]
    sizes = np.bincount(classes)
    for k in np.argsort(-sizes, kind="stable")[:10]:
        members = absence_class_members(int(k))
        lines.append(f"| {k} | " + ", ".join(f"{n} {space_group(n).symbol}" for n in members) + " |")
    lines += ["", "## Examples", "", "Non-zero rules of some groups:", "",
              "| group | lattice | rules |", "|---|---|---|"]
    for n in _EXAMPLE_GROUPS:
        rules = symmetry_rules(n)
        shown = [f"`{RULE_NAMES[i]}`" + ("=-1" if value < 0 else "")
                 for i, value in enumerate(rules[:n_operation]) if value]
        lines.append(f"| {n} {space_group(n).symbol} | {space_group(n).bravais} | "
                     + (", ".join(shown) or "none") + " |")
    lines += ["", "=-1 marks a signed rule at -1 (only the left-handed screw)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(rules_markdown(), end="")
