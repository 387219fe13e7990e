"""The peak-list training set: build (reproducible, resumable, parallel), read, batch, CLI."""

import json
import os
from collections import Counter

import numpy as np
import pytest
from click.testing import CliRunner

from csn_plugin.synth import dataset as ds
from csn_plugin.synth import structures
from csn_plugin.cli.main import cli

COUNT, SHARD = 60, 20
ARRAYS = ("d", "f2m", "cos2", "rank", "offsets", "space_group", "requested_group", "source", "n_atoms", "po_direction")


def _shard_arrays(path):
    with np.load(path) as shard:
        return {key: shard[key] for key in ARRAYS}


def _all_arrays(directory):
    return [_shard_arrays(ds.shard_path(directory, i)) for i in range(COUNT // SHARD)]


def _same(a, b):
    return all(all(np.array_equal(x[key], y[key]) for key in ARRAYS) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    directory = tmp_path_factory.mktemp("natural")
    manifest = ds.build_dataset(directory, COUNT, seed=3, distribution="natural", workers=1, progress=False,
                                shard_size=SHARD)
    return directory, manifest


def test_build_writes_shards_and_manifest(built):
    directory, manifest = built
    assert sorted(p.name for p in directory.glob("shard-*.npz")) == [f"shard-{i:05d}.npz" for i in range(3)]
    on_disk = json.loads((directory / "manifest.json").read_text())
    assert on_disk == manifest and manifest["status"] == "complete"
    assert manifest["count"] == COUNT and manifest["seed"] == 3 and manifest["distribution"] == "natural"
    assert manifest["recipe_version"] == ds.RECIPE_VERSION
    # every attempt is either an item or a skip counted by reason
    assert manifest["attempts"] == COUNT + sum(manifest["skipped"].values())
    assert not list(directory.glob(".*tmp"))
    shard = _shard_arrays(ds.shard_path(directory, 0))
    assert shard["d"].dtype == np.float32 and shard["offsets"].dtype == np.int64
    assert shard["offsets"][0] == 0 and shard["offsets"][-1] == len(shard["d"]) and len(shard["offsets"]) == SHARD + 1
    assert shard["space_group"].dtype == np.int16 and shard["po_direction"].shape == (SHARD, 3)
    assert ((shard["space_group"] >= 1) & (shard["space_group"] <= 230)).all()
    assert set(np.unique(shard["source"])) <= {0, 1, 2}
    assert (shard["cos2"] >= 0).all() and (shard["cos2"] <= 1).all() and (shard["f2m"] > 0).all()
    for i in range(SHARD):
        d = shard["d"][shard["offsets"][i]:shard["offsets"][i + 1]]
        assert len(d) >= ds.MIN_PEAKS and (np.diff(d) < 0).all() and d.min() >= ds.D_MIN * (1 - 1e-6)


def test_same_seed_same_arrays_and_parallel_matches(built, tmp_path):
    directory, _ = built
    again = tmp_path / "again"
    ds.build_dataset(again, COUNT, seed=3, distribution="natural", workers=2, progress=False, shard_size=SHARD)
    assert _same(_all_arrays(directory), _all_arrays(again))
    other = tmp_path / "other"
    ds.build_dataset(other, SHARD, seed=4, distribution="natural", workers=1, progress=False, shard_size=SHARD)
    assert not np.array_equal(_shard_arrays(ds.shard_path(other, 0))["d"], _all_arrays(directory)[0]["d"])


def test_resume_rebuilds_only_missing_shards(built, tmp_path):
    import shutil

    directory = tmp_path / "resume"
    shutil.copytree(built[0], directory)
    before = _all_arrays(directory)
    ds.shard_path(directory, 1).unlink()
    old_times = {i: os.stat(ds.shard_path(directory, i)).st_mtime_ns for i in (0, 2)}
    manifest = ds.build_dataset(directory, COUNT, seed=3, distribution="natural", workers=1, progress=False,
                                shard_size=SHARD)
    assert manifest["built_shards"] == 1 and manifest["count"] == COUNT
    assert {i: os.stat(ds.shard_path(directory, i)).st_mtime_ns for i in (0, 2)} == old_times
    assert _same(before, _all_arrays(directory))
    with pytest.raises(ds.DatasetError, match="other settings"):
        ds.build_dataset(directory, COUNT, seed=9, distribution="natural", progress=False, shard_size=SHARD)


def test_labels_and_peaks_agree_with_spglib_and_pymatgen(built):
    import spglib
    from pymatgen.analysis.diffraction.xrd import XRDCalculator
    from pymatgen.core import Lattice, Structure

    directory, _ = built
    shard = _shard_arrays(ds.shard_path(directory, 0))
    replay = list(ds.shard_items(0, SHARD, 3, "natural"))
    assert len(replay) == SHARD
    for i, (crystal, po, label, _) in enumerate(replay):
        cell = (crystal.lattice, crystal.frac_coords, crystal.atomic_numbers)
        assert spglib.get_symmetry_dataset(cell, symprec=1e-3).number == label == shard["space_group"][i]
        assert np.array_equal(po, shard["po_direction"][i]) and len(crystal) == shard["n_atoms"][i]
    for i, (crystal, _, _, _) in enumerate(replay[:3]):  # the strongest peaks sit where pymatgen puts them
        structure = Structure(Lattice(crystal.lattice), crystal.atomic_numbers, crystal.frac_coords)
        pattern = XRDCalculator(wavelength=1.5406).get_pattern(structure, two_theta_range=(5, 100))
        strong = np.asarray(pattern.d_hkls)[np.asarray(pattern.y) > 10]
        stored = shard["d"][shard["offsets"][i]:shard["offsets"][i + 1]]
        assert np.abs(stored[None, :] - strong[:, None]).min(axis=1).max() < 1e-4


def test_failures_are_counted_not_raised():
    rng_source_calls = Counter()

    def sometimes_broken(rng):
        rng_source_calls["n"] += 1
        crystal = structures.sample_structure(rng, "balanced")
        if rng_source_calls["n"] % 3 == 0:  # all atoms on one point: no peaks worth keeping
            crystal.frac_coords = np.zeros_like(crystal.frac_coords)
        if rng_source_calls["n"] % 3 == 1:
            raise structures.StructureSkipped("placement", "made up")
        return crystal

    skipped = Counter()
    items = list(ds.shard_items(0, 5, 1, "balanced", skipped, source=sometimes_broken))
    assert len(items) == 5
    assert skipped["placement"] >= 5 and sum(v for k, v in skipped.items() if k not in ("placement", "attempts")) >= 4
    assert skipped["attempts"] == 5 + sum(v for k, v in skipped.items() if k != "attempts")


def test_balanced_build_covers_many_groups(tmp_path):
    manifest = ds.build_dataset(tmp_path, 80, seed=0, distribution="balanced", progress=False, shard_size=80)
    groups = ds.dataset_info(tmp_path)["space_groups"]
    assert manifest["count"] == 80 and len(groups) >= 50
    print(f"balanced: {len(groups)} groups in 80 items; requested-group agreement "
          f"{manifest['requested_group_agreement']}")
    assert manifest["requested_group_agreement"] >= 0.85


def test_peak_dataset_split_and_batch(built):
    from csn_plugin.physics import lorentz_polarization

    directory, _ = built
    data = ds.PeakDataset(directory)
    assert len(data) == COUNT and data.space_groups.shape == (COUNT,)
    assert np.array_equal(data.space_groups, np.concatenate([a["space_group"] for a in _all_arrays(directory)]))
    train, val = data.split(0.25, seed=1)
    assert len(val) == 15 and len(train) == 45 and not set(train) & set(val)
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(COUNT))
    assert np.array_equal(data.split(0.25, seed=1)[1], val) and not np.array_equal(data.split(0.25, seed=2)[1], val)

    indices = np.array([5, 0, 59, 5, 31])
    max_peaks = 8
    d, f2m, cos2 = data.batch(indices, max_peaks=max_peaks)
    assert d.shape == f2m.shape == cos2.shape == (5, max_peaks) and d.dtype.is_floating_point
    for row, index in enumerate(indices):
        item_d, item_f2m, item_cos2 = data.peaks(index)
        two_theta = 2 * np.degrees(np.arcsin(1.5406 / (2 * item_d.astype(np.float64))))
        strength = item_f2m * lorentz_polarization(two_theta)
        chosen = np.sort(np.argsort(-strength)[:max_peaks])
        n = len(chosen)
        assert np.array_equal(d[row, :n].numpy(), item_d[chosen])
        assert np.array_equal(f2m[row, :n].numpy(), item_f2m[chosen])
        assert np.array_equal(cos2[row, :n].numpy(), item_cos2[chosen])
        assert (f2m[row, n:] == 0).all() and (d[row, n:] == 0).all()
    wide_d, wide_f2m, _ = data.batch([1, 2], max_peaks=512)  # everything fits: all peaks, padded
    for row, index in enumerate([1, 2]):
        n = data.peak_counts[index]
        assert np.array_equal(wide_d[row, :n].numpy(), data.peaks(index)[0]) and (wide_f2m[row, n:] == 0).all()


def test_info_json_and_cli(built, tmp_path):
    directory, _ = built
    data = ds.PeakDataset(directory)
    info = ds.dataset_info(directory)
    expected = Counter(int(g) for g in data.space_groups)
    assert info["count"] == COUNT and info["space_groups"] == {str(g): n for g, n in sorted(expected.items())}
    runner = CliRunner()
    result = runner.invoke(cli, ["dataset", "info", str(directory), "--json"])
    assert result.exit_code == 0 and json.loads(result.output) == info
    result = runner.invoke(cli, ["dataset", "build", "--out", str(tmp_path / "cli"), "--count", "3", "--seed", "2",
                                 "--quiet"])
    assert result.exit_code == 0 and ds.dataset_info(tmp_path / "cli")["count"] == 3


@pytest.mark.parametrize("args", [
    ["dataset", "build", "--out", "x", "--count", "0"],
    ["dataset", "build", "--out", "x", "--count", "ten"],
    ["dataset", "build", "--count", "5"],
    ["dataset", "build", "--out", "x", "--count", "5", "--distribution", "uniform"],
    ["dataset", "build", "--out", "x", "--count", "5", "--workers", "0"],
    ["dataset", "info", "/no/such/dataset"],
])
def test_cli_bad_arguments_give_one_line_errors(args, tmp_path):
    result = CliRunner().invoke(cli, args)
    lines = result.output.strip().splitlines()
    assert result.exit_code != 0 and len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_cli_errors_for_foreign_directories(built, tmp_path):
    runner = CliRunner()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(cli, ["dataset", "info", str(empty)])
    assert result.exit_code != 0 and "no dataset shards" in result.output and len(result.output.strip().splitlines()) == 1
    result = runner.invoke(cli, ["dataset", "build", "--out", str(built[0]), "--count", str(COUNT), "--seed", "5",
                                 "--shard-size", str(SHARD), "--quiet"])
    assert result.exit_code != 0 and "other settings" in result.output and len(result.output.strip().splitlines()) == 1
