"""Powder X-ray diffraction peaks from a crystal structure, fast and in agreement with pymatgen.

Same physics as pymatgen's ``XRDCalculator.get_pattern`` (form factors from its
``atomic_scattering_params.json``, occupancies, no Debye-Waller factor, Lorentz-polarisation,
merging within ``TWO_THETA_TOL`` and dropping below ``SCALED_INTENSITY_TOL``), but vectorised:
the structure factors of the whole Friedel half of the reciprocal-space box come out of one
complex matrix product per element, built from per-axis phase factors
``exp(2 pi i h x) exp(2 pi i k y) exp(2 pi i l z)``.

- :func:`simulate_reflections`: the core on plain arrays (dataset builder, renderer).
- :func:`simulate_peaks`: a pymatgen ``Structure`` or structure file -> :class:`PeakList`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ReflectionLimitError, StructureError
from ..physics import DEFAULT_WAVELENGTH, lorentz_polarization, resolve_wavelength

# pymatgen.analysis.diffraction.core.AbstractDiffractionPatternCalculator
TWO_THETA_TOL = 1e-5  # degrees: reflections closer than this are one peak
SCALED_INTENSITY_TOL = 1e-3  # peaks at or below this (of 100) are dropped

D_MERGE_RTOL = 1e-7  # simulate_reflections: reflections whose d agree this well are merged
_CHUNK_ENTRIES = 1 << 20  # phase-matrix entries held at once per array (16 MiB complex128)
# Bounds on one simulation (memory ~ 8 bytes x box points + 50 bytes x reflections): a cell whose
# reflections up to d_min exceed them (a = 300 A or more: a supercell, a protein, wrong units)
# is refused with a ReflectionLimitError naming the cell instead of allocating hundreds of GB.
MAX_REFLECTIONS = 4_000_000
MAX_BOX_POINTS = 25_000_000

_SYMBOLS = (
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As "
    "Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd "
    "Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am "
    "Cm Bk Cf Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og"
).split()


def _load_scattering_table():
    """(a, b, known) indexed by Z: f(s) = Z - 41.78214 s^2 sum_i a_i exp(-b_i s^2)."""
    path = Path(__file__).resolve().parent.parent / "data" / "atomic_scattering_params.json"
    params = json.loads(path.read_text())
    a = np.zeros((len(_SYMBOLS) + 1, 4))
    b = np.zeros((len(_SYMBOLS) + 1, 4))
    known = np.zeros(len(_SYMBOLS) + 1, dtype=bool)
    for z, symbol in enumerate(_SYMBOLS, start=1):
        if symbol in params:
            coefficients = np.asarray(params[symbol], dtype=float)
            a[z, : len(coefficients)] = coefficients[:, 0]
            b[z, : len(coefficients)] = coefficients[:, 1]
            known[z] = True
    return a, b, known


_FF_A, _FF_B, _FF_KNOWN = _load_scattering_table()


def describe_cell(lattice) -> str:
    """'a=3000 b=3000 c=3000 A, alpha=90 beta=90 gamma=90 deg' from a 3x3 lattice matrix."""
    lattice = np.asarray(lattice, dtype=float)
    a, b, c = np.linalg.norm(lattice, axis=1)

    def angle(u, v):
        cosine = float(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))
        return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))

    alpha, beta, gamma = angle(lattice[1], lattice[2]), angle(lattice[0], lattice[2]), angle(lattice[0], lattice[1])
    return f"a={a:.4g} b={b:.4g} c={c:.4g} A, alpha={alpha:.4g} beta={beta:.4g} gamma={gamma:.4g} deg"


def check_reflection_count(lattice, g_max, g_min=0.0):
    """Raise ReflectionLimitError when the reciprocal-space box or sphere up to |g| = g_max
    (1/angstrom) holds more points than one simulation may allocate."""
    lattice = np.asarray(lattice, dtype=float)
    volume = abs(float(np.linalg.det(lattice)))
    expected = 2.0 / 3.0 * math.pi * (g_max**3 - g_min**3) * volume  # Friedel half of the shell
    h_max, k_max, l_max = (float(x) for x in np.floor(g_max * np.linalg.norm(lattice, axis=1) + 1e-9))
    box = (h_max + 1) * (2 * k_max + 1) * (2 * l_max + 1)
    if expected > MAX_REFLECTIONS or box > MAX_BOX_POINTS:
        d_min = 1.0 / g_max if g_max > 0 else math.inf
        raise ReflectionLimitError(
            f"the cell ({describe_cell(lattice)}, V={volume:.3g} A^3) has about {expected:.2g} reflections with "
            f"d >= {d_min:.3g} A, more than the {MAX_REFLECTIONS:,} csn simulates: too large a cell for a "
            "powder pattern (a supercell, a macromolecule or lengths in the wrong unit?)"
        )


@dataclass(frozen=True)
class Reflections:
    """Reflections merged by equal d, sorted by d descending.

    ``f2m[p]`` is the sum of |F|^2 over the merged reflections (both Friedel mates counted),
    without Lorentz-polarisation; ``multiplicity[p]`` counts them; ``cos2[p]`` is the mean
    cos^2 of the angle between the reciprocal vectors and ``po_direction`` (None without one).
    """

    d: np.ndarray
    f2m: np.ndarray
    multiplicity: np.ndarray
    cos2: np.ndarray | None = None

    def __len__(self):
        return len(self.d)


@dataclass(frozen=True)
class PeakList:
    """A stick pattern: peak positions (2theta, degrees), intensities (max 100), d (angstrom),
    one representative (h, k, l) per family of equivalent reflections, and the number of
    reflections merged into each peak."""

    two_theta: np.ndarray
    intensity: np.ndarray
    d: np.ndarray
    hkls: list
    multiplicity: np.ndarray
    wavelength: float

    @property
    def x(self):
        return self.two_theta

    @property
    def y(self):
        return self.intensity

    def __len__(self):
        return len(self.two_theta)


def _as_arrays(lattice_matrix, frac_coords, atomic_numbers, occupancies):
    lattice = np.asarray(lattice_matrix, dtype=float)
    if lattice.shape != (3, 3) or not np.all(np.isfinite(lattice)):
        raise ValueError(f"lattice_matrix must be a finite 3x3 array, got shape {lattice.shape}")
    volume = abs(np.linalg.det(lattice))
    if not volume > 1e-6 * np.prod(np.linalg.norm(lattice, axis=1)) or volume < 1e-3:
        raise ValueError("lattice_matrix is singular (cell volume ~ 0)")
    coords = np.asarray(frac_coords, dtype=float).reshape(-1, 3)
    raw_numbers = np.asarray(atomic_numbers).ravel()
    if raw_numbers.dtype.kind not in "iu":
        if raw_numbers.dtype.kind != "f" or not np.all(np.isfinite(raw_numbers)) or np.any(raw_numbers != np.round(raw_numbers)):
            raise ValueError(f"atomic numbers must be whole numbers, got {raw_numbers[:5].tolist()}")
    if raw_numbers.size and (raw_numbers.min() < 1 or raw_numbers.max() > len(_SYMBOLS)):
        z = raw_numbers[(raw_numbers < 1) | (raw_numbers > len(_SYMBOLS))][0]
        raise ValueError(f"no X-ray scattering factors for Z={z:g}: not an element (atomic numbers run 1-{len(_SYMBOLS)})")
    numbers = raw_numbers.astype(int)
    if len(numbers) != len(coords):
        raise ValueError(f"{len(coords)} sites but {len(numbers)} atomic numbers")
    if len(numbers) == 0:
        raise ValueError("no atoms")
    if not np.all(np.isfinite(coords)):
        raise ValueError("frac_coords must be finite")
    if occupancies is None:
        weights = np.ones(len(numbers))
    else:
        weights = np.asarray(occupancies, dtype=float).ravel()
        if len(weights) != len(numbers):
            raise ValueError(f"{len(numbers)} sites but {len(weights)} occupancies")
    bad = (numbers < 1) | (numbers > len(_SYMBOLS))
    bad[~bad] = ~_FF_KNOWN[numbers[~bad]]
    if bad.any():
        z = int(numbers[bad][0])
        name = _SYMBOLS[z - 1] if 1 <= z <= len(_SYMBOLS) else f"Z={z}"
        raise ValueError(f"no X-ray scattering factors for element {name}")
    return lattice, coords, numbers, weights


def _structure_factors(lattice, coords, numbers, weights, g_max, g_min=0.0, dtype=np.complex128):
    """|F|^2 of the reciprocal points with g_min <= |g| <= g_max in the Friedel half-space.

    Returns (hkl (M, 3) int, g2 (M,) = |g|^2 in 1/angstrom^2, f2 (M,)), sorted by g2.
    """
    check_reflection_count(lattice, g_max, g_min)
    recip = np.linalg.inv(lattice).T  # rows: reciprocal vectors without 2 pi
    metric = recip @ recip.T
    h_max, k_max, l_max = np.floor(g_max * np.linalg.norm(lattice, axis=1) + 1e-9).astype(int)
    hs = np.arange(0, h_max + 1)
    ks = np.arange(-k_max, k_max + 1)
    ls = np.arange(-l_max, l_max + 1)

    # |g|^2 on the half box h >= 0, in float64 from the integer indices
    g2_hk = (
        metric[0, 0] * hs[:, None] ** 2 + metric[1, 1] * ks[None, :] ** 2
        + 2 * metric[0, 1] * hs[:, None] * ks[None, :]
    )
    g2_box = 2 * (metric[0, 2] * hs[:, None, None] + metric[1, 2] * ks[None, :, None]) * ls  # one box-sized array
    g2_box += g2_hk[:, :, None]
    g2_box += metric[2, 2] * ls**2
    inside = g2_box <= g_max * g_max * (1 + 1e-12)
    if g_min > 0:
        inside &= g2_box >= g_min * g_min * (1 - 1e-12)
    # Friedel half: h > 0, or h == 0 and (k > 0, or k == 0 and l > 0); drops (000) too
    inside[0, :k_max] = False
    inside[0, k_max, : l_max + 1] = False

    pair_used = inside.any(axis=2)
    pair_h, pair_k = np.nonzero(pair_used)  # (h, k) rows that hold any point
    point_pair, point_l = np.nonzero(inside[pair_h, pair_k])
    if len(point_pair) == 0:
        empty = np.zeros(0)
        return np.zeros((0, 3), dtype=int), empty, empty
    g2 = g2_box[pair_h[point_pair], pair_k[point_pair], point_l]
    s2 = g2 / 4

    # per-axis phase factors exp(2 pi i n x), one row per atom
    two_pi = 2 * np.pi
    phase_h = np.exp(1j * two_pi * np.outer(coords[:, 0], hs))
    phase_k = np.exp(1j * two_pi * np.outer(coords[:, 1], ks))
    phase_l = np.exp(1j * two_pi * np.outer(coords[:, 2], ls)).astype(dtype)
    weighted_h = phase_h * weights[:, None]

    elements = np.unique(numbers)
    element_atoms = [np.flatnonzero(numbers == z) for z in elements]
    forms = [z - 41.78214 * s2 * (np.exp(-np.multiply.outer(s2, _FF_B[z])) @ _FF_A[z]) for z in elements]

    # S_e[pair, l] = sum_{j in e} w_j e^{2pi i h x_j} e^{2pi i k y_j} e^{2pi i l z_j}: a matmul over
    # atoms, in blocks of (h, k) pairs and chunks of atoms that hold ~_CHUNK_ENTRIES entries each
    structure_factor = np.zeros(len(g2), dtype=np.complex128)
    pairs_per_block = max(1, _CHUNK_ENTRIES // len(ls))
    for first in range(0, len(pair_h), pairs_per_block):
        block = slice(first, first + pairs_per_block)
        points = slice(*np.searchsorted(point_pair, [first, first + pairs_per_block]))
        block_h, block_k = pair_h[block], pair_k[block]
        atoms_per_chunk = max(1, _CHUNK_ENTRIES // len(block_h))
        for atoms_of_element, form in zip(element_atoms, forms):
            phase_sum = 0
            for start in range(0, len(atoms_of_element), atoms_per_chunk):
                atoms = atoms_of_element[start : start + atoms_per_chunk]
                phase_hk = (weighted_h[atoms][:, block_h] * phase_k[atoms][:, block_k]).astype(dtype)
                phase_sum = phase_sum + phase_hk.T @ phase_l[atoms]  # (pairs in block, 2L+1)
            structure_factor[points] += form[points] * phase_sum[point_pair[points] - first, point_l[points]]
    f2 = structure_factor.real**2 + structure_factor.imag**2

    hkl = np.stack([hs[pair_h[point_pair]], ks[pair_k[point_pair]], ls[point_l]], axis=1)
    order = np.argsort(g2, kind="stable")
    return hkl[order], g2[order], f2[order]


def _run_starts(new_run: np.ndarray) -> np.ndarray:
    """Start indices of runs, given a bool per element after the first (True = new run)."""
    return np.concatenate(([0], np.flatnonzero(new_run) + 1))


def simulate_reflections(
    lattice_matrix,
    frac_coords,
    atomic_numbers,
    occupancies=None,
    d_min: float = 0.889,
    po_direction=None,
) -> Reflections:
    """Structure factors of all reflections with d >= d_min, merged by equal d.

    lattice_matrix: 3x3, rows = lattice vectors in angstrom; frac_coords: (N, 3);
    atomic_numbers: (N,); occupancies: (N,) or None (all 1). A partially occupied site with
    several species is several rows at the same coordinates. po_direction: a direct-lattice
    [u, v, w]; then ``cos2`` holds the mean cos^2 between each merged g and that direction.
    """
    lattice, coords, numbers, weights = _as_arrays(lattice_matrix, frac_coords, atomic_numbers, occupancies)
    if not d_min > 0:
        raise ValueError(f"d_min must be positive, got {d_min}")
    hkl, g2, f2 = _structure_factors(lattice, coords, numbers, weights, 1.0 / d_min)
    if len(g2) == 0:
        empty = np.zeros(0)
        return Reflections(empty, empty, np.zeros(0, dtype=int), None if po_direction is None else empty)
    starts = _run_starts(np.diff(g2) > 2 * D_MERGE_RTOL * g2[:-1])
    counts = np.diff(np.append(starts, len(g2)))
    cos2 = None
    if po_direction is not None:
        uvw = np.asarray(po_direction, dtype=float).ravel()
        direction = uvw @ lattice
        norm2 = float(direction @ direction)
        if uvw.shape != (3,) or not norm2 > 0:
            raise ValueError(f"po_direction must be a nonzero [u, v, w], got {po_direction!r}")
        cos2_each = np.clip((hkl @ uvw) ** 2 / (g2 * norm2), 0.0, 1.0)  # g.t = hkl.uvw
        cos2 = np.add.reduceat(cos2_each, starts) / counts
    return Reflections(
        d=1.0 / np.sqrt(g2[starts]),
        f2m=2.0 * np.add.reduceat(f2, starts),
        multiplicity=2 * counts,
        cos2=cos2,
    )


def _load_structure(structure):
    """A pymatgen Structure from a Structure or a path; StructureError otherwise."""
    if hasattr(structure, "lattice") and hasattr(structure, "species_and_occu"):
        return structure
    if not isinstance(structure, (str, Path)):
        raise StructureError(
            None, f"expected a pymatgen Structure or a path to a structure file, got {type(structure).__name__}"
        )
    path = Path(structure)
    if not path.is_file():
        raise StructureError(path, "no such file")
    import warnings

    from pymatgen.core import Structure

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = Structure.from_file(str(path))
    except Exception as error:  # pymatgen raises many kinds; report one line
        reason = " ".join(str(error).split()) or type(error).__name__
        raise StructureError(path, f"not a readable crystal structure ({reason[:200]})") from None
    if len(loaded) == 0:
        raise StructureError(path, "the structure has no sites")
    return loaded


def _structure_arrays(structure, source):
    coords, numbers, weights = [], [], []
    for frac, site in zip(structure.frac_coords, structure, strict=True):
        for species, occupancy in site.species.items():
            z = getattr(species, "Z", 0)
            valid = isinstance(z, (int, np.integer)) and not isinstance(z, bool) and 1 <= z <= len(_SYMBOLS)
            if not valid or type(species).__name__.startswith("Dummy"):
                symbol = getattr(species, "symbol", None) or str(species)
                raise StructureError(source, f"unknown element {symbol!r} (site {len(coords) + 1}): not in the periodic table")
            if not _FF_KNOWN[z]:
                raise StructureError(source, f"no X-ray scattering factors for element {_SYMBOLS[z - 1]}")
            coords.append(frac)
            numbers.append(z)
            weights.append(occupancy)
    if not numbers:
        raise StructureError(source, "the structure has no sites")
    return np.asarray(coords), np.asarray(numbers), np.asarray(weights, dtype=float)


def _families(hkl, peak_of, hexagonal):
    """Per peak: one (h, k, l) per family of permuted |indices| (pymatgen's get_unique_families,
    with 4-index permutations on hexagonal lattices), the lexicographic maximum as its name."""
    index_abs = np.abs(hkl)
    if hexagonal:
        index_abs = np.column_stack([index_abs, np.abs(hkl[:, 0] + hkl[:, 1])])
    key_digits = np.sort(index_abs, axis=1)
    base = int(key_digits.max()) + 1
    key = np.zeros(len(hkl), dtype=np.int64)
    for column in key_digits.T:
        key = key * base + column
    key += peak_of.astype(np.int64) * base ** key_digits.shape[1]
    offset = int(np.abs(hkl).max())
    width = 2 * offset + 1
    lex = ((hkl[:, 0] + offset) * width + hkl[:, 1] + offset) * width + hkl[:, 2] + offset
    # sort by (peak, name descending): the last of each key group is its name
    order = np.lexsort((lex, key))
    key_sorted = key[order]
    last = np.append(key_sorted[1:] != key_sorted[:-1], True)
    names = hkl[order[last]]
    name_peaks = peak_of[order[last]]
    # within a peak, families by name descending
    order = np.lexsort((-lex[order[last]], name_peaks))
    families = [[] for _ in range(int(peak_of.max()) + 1)] if len(peak_of) else []
    for peak, name in zip(name_peaks[order].tolist(), names[order].tolist()):
        families[peak].append(tuple(name))
    return families


def simulate_peaks(structure, wavelength=DEFAULT_WAVELENGTH, two_theta_range=(0, 90)) -> PeakList:
    """The stick pattern of pymatgen's ``XRDCalculator(wavelength).get_pattern(structure)``.

    structure: a pymatgen Structure or a path to a CIF (or any file ``Structure.from_file``
    reads). wavelength: angstrom or a name ('CuKa1', 'MoKa'). two_theta_range: degrees, or None
    for the whole limiting sphere. Raises StructureError for inputs that are not structures.
    """
    source = structure if isinstance(structure, (str, Path)) else None
    structure = _load_structure(structure)
    wavelength = resolve_wavelength(wavelength)
    if two_theta_range is None:
        low, high = 0.0, 180.0
    else:
        low, high = (float(value) for value in two_theta_range)
        if not 0 <= low < high <= 180:
            raise ValueError(f"two_theta_range must satisfy 0 <= min < max <= 180, got {two_theta_range!r}")
    g_min, g_max = (2 * math.sin(math.radians(t / 2)) / wavelength for t in (low, high))
    coords, numbers, weights = _structure_arrays(structure, source)
    try:
        lattice, coords, numbers, weights = _as_arrays(structure.lattice.matrix, coords, numbers, weights)
    except ValueError as error:
        raise StructureError(source, str(error)) from None
    try:
        hkl, g2, f2 = _structure_factors(lattice, coords, numbers, weights, g_max, g_min)
    except ReflectionLimitError as error:
        raise StructureError(source, str(error)) from None
    except MemoryError:
        raise StructureError(source, f"out of memory simulating the cell ({describe_cell(lattice)})") from None
    if len(g2) == 0:
        empty = np.zeros(0)
        return PeakList(empty, empty, empty, [], np.zeros(0, dtype=int), wavelength)

    g = np.sqrt(g2)
    two_theta = np.degrees(2 * np.arcsin(np.clip(wavelength * g / 2, -1, 1)))
    intensity_each = 2 * f2 * lorentz_polarization(two_theta)
    # merge like pymatgen: reflections sharing round(2theta / TWO_THETA_TOL)
    bins = np.round(two_theta / TWO_THETA_TOL).astype(np.int64)
    starts = _run_starts(bins[1:] != bins[:-1])
    intensity = np.add.reduceat(intensity_each, starts)
    counts = np.diff(np.append(starts, len(g2)))
    keep = intensity / intensity.max() * 100 > SCALED_INTENSITY_TOL
    peak_of = np.repeat(np.arange(len(starts)), counts)
    renumber = np.cumsum(keep) - 1
    reflection_kept = keep[peak_of]
    hkls = _families(hkl[reflection_kept], renumber[peak_of[reflection_kept]], structure.lattice.is_hexagonal())
    intensity = intensity[keep]
    return PeakList(
        two_theta=two_theta[starts][keep],
        intensity=intensity / intensity.max() * 100,
        d=1.0 / g[starts][keep],
        hkls=hkls,
        multiplicity=2 * counts[keep],
        wavelength=wavelength,
    )
