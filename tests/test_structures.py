"""Structure sources for the training set: random Wyckoff crystals and real-structure variants."""

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from csn_plugin.synth import structures
from csn_plugin.synth.structures import StructureSkipped

# Two groups per crystal system, with centred, screw/glide and rhombohedral cases.
GROUPS = [1, 2, 4, 14, 15, 19, 62, 70, 88, 139, 141, 148, 161, 166, 176, 186, 194, 198, 205, 225, 227, 230]


def _spglib_group(crystal, symprec=1e-3):
    import spglib

    cell = (crystal.lattice, crystal.frac_coords, crystal.atomic_numbers)
    return spglib.get_symmetry_dataset(cell, symprec=symprec).number


def _invariant_under(crystal, affine_ops, tolerance=1e-6):
    """Every op maps every atom onto an atom of the same element (independent of spglib)."""
    frac, numbers = crystal.frac_coords, crystal.atomic_numbers
    for op in affine_ops:
        image = frac @ op[:3, :3].T + op[:3, 3]
        diff = image[:, None, :] - frac[None, :, :]
        diff -= np.round(diff)
        close = (np.abs(diff).max(axis=2) < tolerance) & (numbers[:, None] == numbers[None, :])
        if not close.any(axis=1).all():
            return False
    return True


def _pymatgen_radius(z):
    from pymatgen.core import Element

    return Element.from_Z(int(z)).atomic_radius or 1.0


@pytest.fixture(scope="module")
def random_crystals():
    rng = np.random.default_rng(2024)
    crystals, failures = [], Counter()
    for group in GROUPS:
        for _ in range(4):
            try:
                crystals.append(structures.random_structure(group, rng))
            except StructureSkipped as skip:
                failures[skip.reason] += 1
    return crystals, failures


def test_random_crystals_have_the_requested_symmetry(random_crystals):
    from pyxtal.symmetry import Group

    crystals, failures = random_crystals
    assert len(crystals) >= 0.8 * 4 * len(GROUPS), failures
    for crystal in crystals:
        general = Group(crystal.requested_group).Wyckoff_positions[0]
        ops = [op.affine_matrix for op in general.ops]
        assert _invariant_under(crystal, ops), crystal.requested_group
    found = [_spglib_group(crystal) for crystal in crystals]
    agreement = np.mean([f == c.requested_group for f, c in zip(found, crystals)])
    print(f"requested vs spglib group agreement: {agreement:.3f} over {len(crystals)} crystals")
    assert agreement >= 0.85


_SHIFTS = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=np.float64)


def min_distance(lattice, frac_coords):
    """Smallest interatomic distance (angstrom) with periodic images (a test helper)."""
    frac = np.asarray(frac_coords, dtype=np.float64)
    diff = frac[:, None, :] - frac[None, :, :]
    diff -= np.round(diff)
    cart = (diff[:, :, None, :] + _SHIFTS) @ np.asarray(lattice, dtype=np.float64)
    dist_sq = np.einsum("mnsk,mnsk->mns", cart, cart)
    dist_sq[np.arange(len(frac)), np.arange(len(frac)), 13] = np.inf
    return float(np.sqrt(dist_sq.min()))


def test_random_crystals_respect_minimum_distances(random_crystals):
    for crystal in random_crystals[0]:
        frac, lattice = crystal.frac_coords, crystal.lattice
        diff = frac[:, None, :] - frac[None, :, :]
        diff -= np.round(diff)
        shifts = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])
        dist = np.linalg.norm((diff[:, :, None, :] + shifts) @ lattice, axis=-1)
        dist[np.arange(len(frac)), np.arange(len(frac)), 13] = np.inf
        radii = np.array([_pymatgen_radius(z) for z in crystal.atomic_numbers])
        bound = 0.55 * (radii[:, None] + radii[None, :])
        assert (dist.min(axis=2) >= bound).all(), crystal.name
        assert min_distance(lattice, frac) == pytest.approx(dist.min())


def test_lattices_obey_the_crystal_system():
    rng = np.random.default_rng(7)
    for system, check in [
        ("cubic", lambda p: np.allclose(p[:3], p[0]) and np.allclose(p[3:], 90)),
        ("hexagonal", lambda p: np.isclose(p[0], p[1]) and np.allclose(p[3:5], 90) and np.isclose(p[5], 120)),
        ("tetragonal", lambda p: np.isclose(p[0], p[1]) and np.allclose(p[3:], 90)),
        ("orthorhombic", lambda p: np.allclose(p[3:], 90)),
        ("monoclinic", lambda p: np.isclose(p[3], 90) and np.isclose(p[5], 90) and p[4] >= 90),
    ]:
        for volume in (50.0, 700.0):
            lattice = structures.random_lattice(system, volume, rng)
            a, b, c = np.linalg.norm(lattice, axis=1)
            angle = lambda u, v: np.degrees(np.arccos(u @ v / np.linalg.norm(u) / np.linalg.norm(v)))  # noqa: E731
            parameters = np.array([a, b, c, angle(lattice[1], lattice[2]), angle(lattice[0], lattice[2]),
                                   angle(lattice[0], lattice[1])])
            assert check(parameters), (system, parameters)
            assert abs(np.linalg.det(lattice)) == pytest.approx(volume)


def test_mp_recipes_are_wyckoff_indices_that_add_up_to_the_atom_count():
    """The pyxtal table's ``wps`` are indices into Group(spg).Wyckoff_positions, one per orbit."""
    import pyxtal
    from pyxtal.symmetry import Group

    path = Path(pyxtal.__file__).parent / "database" / "spg_num_wps_mp.csv"
    rows = list(csv.DictReader(open(path)))
    for row in rows[:: max(1, len(rows) // 300)]:
        group = Group(int(row["spg"]))
        total = sum(group.Wyckoff_positions[int(i)].multiplicity for i in row["wps"].split("-"))
        assert total == int(row["n_atoms"]), row
    rng = np.random.default_rng(0)
    recipes_225 = {tuple(int(i) for i in r["wps"].split("-")) for r in rows if r["spg"] == "225"}
    for _ in range(30):
        recipe = structures.sample_recipe(225, rng, max_atoms=500)
        assert recipe in recipes_225


def test_space_group_sampling_natural_and_balanced():
    from importlib import resources

    text = resources.files("csn_plugin.data").joinpath("space_group_counts.csv").read_text()
    mp = {int(r["space_group"]): float(r["materials_project"]) for r in csv.DictReader(text.splitlines())}
    rng = np.random.default_rng(1)
    natural = Counter(structures.sample_space_group(rng, "natural") for _ in range(20000))
    total = sum(mp.values())
    for group in (14, 62, 225, 2):
        assert natural[group] / 20000 == pytest.approx(mp[group] / total, rel=0.15), group
    balanced = Counter(structures.sample_space_group(rng, "balanced") for _ in range(5000))
    assert len(balanced) >= 225 and max(balanced.values()) < 3 * 5000 / 230
    with pytest.raises(ValueError):
        structures.sample_space_group(rng, "uniform")


def test_impossible_recipe_is_skipped_not_crashed():
    rng = np.random.default_rng(0)
    with pytest.raises(StructureSkipped) as caught:  # two atoms on the same fixed site 4a
        structures.random_structure(225, rng, recipe=(11, 11))
    assert caught.value.reason == "placement"


def test_real_pool_and_symmetry_keeping_variants():
    pool = structures.real_structures()
    assert len(pool) > 200
    assert len({real.space_group for real in pool}) > 80
    rng = np.random.default_rng(5)
    kept, substituted = 0, 0
    picks = [pool[int(i)] for i in rng.choice(len(pool), size=25, replace=False)]
    for real in picks:
        assert _spglib_group(real) == real.space_group
        variant = structures.real_variant(real, rng, substitute=1.0, strain=0.03, displacement=0.05)
        assert variant.source == "variant" and len(variant) == len(real.atomic_numbers)
        assert len(set(variant.atomic_numbers)) == len(set(real.atomic_numbers))  # distinct stay distinct
        substituted += not np.array_equal(variant.atomic_numbers, real.atomic_numbers)
        assert not np.allclose(variant.lattice, real.lattice)
        ops = [np.vstack([np.hstack([r, t[:, None]]), [0, 0, 0, 1]]) for r, t in zip(real.rotations, real.translations)]
        # the shipped coordinates are rounded (0.33333 for 1/3), so invariance holds to ~1e-4 only
        kept += _invariant_under(variant, ops, tolerance=2e-3) and _spglib_group(variant) == real.space_group
    assert kept >= 24
    assert substituted >= 10


def test_sample_structure_mixes_sources():
    rng = np.random.default_rng(11)
    sources = Counter()
    for _ in range(150):
        try:
            sources[structures.sample_structure(rng, "natural").source] += 1
        except StructureSkipped:
            pass
    share_real = (sources["real"] + sources["variant"]) / sum(sources.values())
    assert 0.12 < share_real < 0.45, sources
    assert sources["random"] > sources["variant"] > sources["real"] > 0


# ------------------------------------------------------------------------- optional minerals, cache
def test_real_pool_sources_follow_the_optional_minerals_extra():
    pool = structures.real_structures()
    prefixes = {real.name.split(":")[0] for real in pool}
    assert {"aflow", "pyxtal"} <= prefixes  # declared dependencies: always there
    has_minerals = structures.mineral_db_path() is not None
    assert ("mineral" in prefixes) == has_minerals
    assert ("mineral" in structures.real_structure_sources()) == has_minerals


def test_missing_minerals_extra_is_reported_naming_the_extra(monkeypatch):
    """Without robocrys the pool is still built, with one warning that names the extra."""
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "robocrys" else real_find_spec(name, *a))
    assert structures.mineral_db_path() is None
    with pytest.warns(structures.MineralsMissingWarning, match=r'csn-plugin\[minerals\]'):
        raw = structures._raw_real_structures()
    assert raw and not any(name.startswith("mineral:") for name, *_ in raw)


class _Payload:
    """Unpickling this creates a directory: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.makedirs, (self.marker,))


def _fresh_pool(monkeypatch, cache_dir, max_atoms=12):
    monkeypatch.setenv("CSN_CACHE_DIR", str(cache_dir))
    structures._real_pool.cache_clear()
    try:
        return structures._real_pool(max_atoms)
    finally:
        structures._real_pool.cache_clear()


def test_pool_cache_round_trips_as_plain_arrays(tmp_path, monkeypatch):
    built = _fresh_pool(monkeypatch, tmp_path)
    path = structures._pool_cache_path(12)
    assert path.suffix == ".npz" and path.parent == tmp_path and path.is_file()
    with np.load(path, allow_pickle=False) as data:  # no object arrays inside
        assert all(data[name].dtype != object for name in data.files)
    loaded = structures.load_pool(path)
    assert len(loaded) == len(built) > 20
    for a, b in zip(built, loaded):
        assert a.name == b.name and a.space_group == b.space_group
        for field in ("lattice", "frac_coords", "atomic_numbers", "rotations", "translations", "permutations"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=f"{a.name} {field}")
    assert _fresh_pool(monkeypatch, tmp_path)[0].name == built[0].name  # read back from the cache


@pytest.mark.parametrize("planted", ["pickle", "object-array-npz"])
def test_planted_cache_file_is_not_executed(tmp_path, monkeypatch, planted):
    import pickle

    monkeypatch.setenv("CSN_CACHE_DIR", str(tmp_path))
    path = structures._pool_cache_path(12)
    marker = tmp_path / "code-was-executed"
    if planted == "pickle":
        path.write_bytes(pickle.dumps((_Payload(marker),)))
    else:  # a well-formed npz whose arrays are pickled objects
        with open(path, "wb") as handle:
            np.savez(handle, version=np.array(structures.POOL_VERSION), names=np.array([_Payload(marker)], dtype=object))
    for legacy in tmp_path.glob("*.npz"):  # the pickle cache of earlier versions, at its old name too
        legacy.with_suffix(".pkl").write_bytes(pickle.dumps((_Payload(marker),)))
    pool = _fresh_pool(monkeypatch, tmp_path)
    assert not marker.exists()
    assert len(pool) > 20 and all(isinstance(real, structures.RealStructure) for real in pool)
    assert len(structures.load_pool(path)) == len(pool)  # the planted file was replaced by a real cache
