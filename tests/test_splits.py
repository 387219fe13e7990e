"""Splits by structure type and mineral name, the dev set, the store and the peak shards
(csn_plugin.synth.splits / store / devset), on a store built from the structures of the
declared wheels (pymatgen's AFLOW prototypes, pyxtal's CIFs)."""

import json

import numpy as np
import pytest

from csn_plugin.synth import splits as splits_module
from csn_plugin.synth.splits import TEST, TRAIN, VAL, assign_splits, group_structures, hash_unit, side_of


def test_groups_link_types_and_minerals_transitively():
    types = np.array(["t1", "t1", "t2", "t3", "t4", "t5"])
    minerals = np.array(["", "", "quartz", "quartz", "", "quartz"])
    groups, keys = group_structures(types, minerals)
    assert groups[0] == groups[1]  # same type
    assert groups[2] == groups[3] == groups[5]  # same mineral, different types
    assert groups[0] != groups[2] and groups[4] not in (groups[0], groups[2])
    assert len(keys) == 3
    assert keys[groups[2]] == "mineral:quartz"  # the smallest member key names the group
    assert keys[groups[0]] == "type:t1"


def test_hash_assignment_is_deterministic_and_proportional():
    keys = [f"type:{i}" for i in range(20000)]
    sides = np.array([side_of(k) for k in keys])
    assert np.array_equal(sides, np.array([side_of(k) for k in keys]))
    assert 0.09 < np.mean(sides == TEST) < 0.11
    assert 0.04 < np.mean(sides == VAL) < 0.06
    assert 0 <= hash_unit("x") < 1 and hash_unit("x") != hash_unit("y")


def test_whole_groups_stay_on_one_side():
    rng = np.random.default_rng(0)
    types = np.array([f"t{k}" for k in rng.integers(0, 300, size=3000)])
    minerals = np.array([f"m{k}" if k < 80 else "" for k in rng.integers(0, 400, size=3000)])
    split, groups, keys, group_split = assign_splits(types, minerals)
    for key in np.unique(types):
        assert len(np.unique(split[types == key])) == 1
    for key in np.unique(minerals[minerals != ""]):
        assert len(np.unique(split[minerals == key])) == 1
    assert set(np.unique(split)) <= {TRAIN, VAL, TEST}
    assert np.array_equal(split, group_split[groups])


@pytest.fixture(scope="module")
def wheel_store(tmp_path_factory):
    """A store built from the 'wheels' source (real structures of declared packages)."""
    from csn_plugin.synth.sources import WheelSource
    from csn_plugin.synth.store import build_store

    if not WheelSource().available():
        pytest.skip(WheelSource().available().message)
    out = tmp_path_factory.mktemp("real-store")
    with _quiet():
        manifest = build_store(out, sources=["wheels", "mp"], workers=1, progress=False)
    return out, manifest


class _quiet:
    def __enter__(self):
        import warnings

        self._context = warnings.catch_warnings()
        self._context.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *args):
        return self._context.__exit__(*args)


def test_build_store_manifest_counts_and_missing_source(wheel_store):
    out, manifest = wheel_store
    entry = manifest["sources"]["wheels"]
    assert entry["labelled"] > 300 and entry["labelled"] <= entry["parsed"]
    assert "mp" in manifest["missing_sources"] and "--mp-tar" in manifest["missing_sources"]["mp"]
    assert manifest["symprec"] == 0.1 and manifest["symprec_fine"] == 1e-3
    saved = json.loads((out / "store.json").read_text())
    assert saved["sources"]["wheels"]["labelled"] == entry["labelled"]


def test_store_roundtrip_and_labels(wheel_store):
    from csn_plugin.synth.labels import label
    from csn_plugin.synth.store import StructureStore

    out, _ = wheel_store
    store = StructureStore(out)
    assert len(store) == len(store.id) == len(store.space_group)
    for index in (0, len(store) // 2, len(store) - 1):
        record = store.record(index)
        assert record.lattice.shape == (3, 3) and len(record) == store.n_rows(index)
        again = label(record)
        assert again.space_group == store.space_group[index]
        assert again.type_key == store.type_key[index]
    with np.load(next((out / "structures").glob("*.npz")), allow_pickle=False) as data:  # no pickled objects
        assert data["id"].dtype.kind == "U"


def test_resume_keeps_finished_slices(wheel_store):
    from csn_plugin.synth.store import build_store

    out, _ = wheel_store
    path = next((out / "structures").glob("wheels-*.npz"))
    before = path.stat().st_mtime_ns
    manifest = build_store(out, sources=["wheels"], workers=1, progress=False)
    assert manifest["built_slices"] == 0 and path.stat().st_mtime_ns == before


def test_splits_and_devset_files(wheel_store):
    from csn_plugin.synth.devset import load_devset
    from csn_plugin.synth.store import StructureStore

    out, manifest = wheel_store
    store = StructureStore(out)
    split = splits_module.load_splits(out, store)
    for key in np.unique(store.type_key):
        assert len(np.unique(split[store.type_key == key])) == 1
    summary = json.loads((out / "splits.json").read_text())
    assert sum(summary[name]["structures"] for name in ("train", "val", "test")) == len(store)
    items = load_devset(out)
    assert len(items) == summary["devset"]["structures"] > 0
    assert all(split[item.store_index] == TEST for item in items)
    assert all(item.space_group == store.space_group[item.store_index] for item in items)
    a, b, c, alpha, beta, gamma = items[0].cell_parameters
    assert min(a, b, c) > 1 and 30 < min(alpha, beta, gamma) <= max(alpha, beta, gamma) < 150
    balanced = load_devset(out / "devset.npz", balanced=True)
    counts = np.bincount([item.space_group for item in balanced])
    assert counts.max() <= splits_module.BALANCED_PER_GROUP
    assert {item.space_group for item in balanced} == {item.space_group for item in items}
    minerals = json.loads((out / "heldout_minerals.json").read_text())
    assert set(minerals) >= {"test", "val"}


def test_devset_path_errors(tmp_path, monkeypatch):
    from csn_plugin.synth.devset import load_devset

    monkeypatch.delenv("CSN_REAL_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="CSN_REAL_DATA"):
        load_devset()
    with pytest.raises(FileNotFoundError, match="devset.npz"):
        load_devset(tmp_path)


def test_augmentation_keeps_the_space_group(wheel_store):
    import spglib

    from csn_plugin.synth.labels import spglib_cell
    from csn_plugin.synth.store import AugmentConfig, StructureStore, augment, symmetry_of

    out, _ = wheel_store
    store = StructureStore(out)
    rng = np.random.default_rng(3)
    kept = changed_cell = 0
    candidates = rng.permutation(len(store))[:25]
    for index in candidates:
        record = store.record(index)
        lattice, numbers, frac, occ, b_iso = augment(record, symmetry_of(record), rng, AugmentConfig())
        changed_cell += not np.allclose(lattice, record.lattice)
        assert 0.3 <= b_iso <= 2.0
        found = spglib.get_symmetry_dataset(spglib_cell(lattice, frac, numbers, occ)[0], symprec=0.1)
        kept += found is not None and found.number == store.space_group[index]
    assert kept >= 23 and changed_cell >= 20


def test_peak_shards_feed_peak_dataset(wheel_store, tmp_path):
    from csn_plugin.synth.dataset import PeakDataset
    from csn_plugin.synth.store import StructureStore, write_peak_shards

    out, _ = wheel_store
    store = StructureStore(out)
    split = splits_module.load_splits(out, store)
    manifest = write_peak_shards(out, tmp_path / "peaks", variants=2, shard_size=64, seed=1, random_every=1,
                                 limit_shards=3, progress=False)
    assert manifest["status"] == "partial"
    data = PeakDataset(tmp_path / "peaks")
    d, f2m, cos2 = data.batch_arrays(np.arange(len(data)), max_peaks=128)
    assert d.shape == (len(data), 128) and (f2m > 0).sum(axis=1).min() >= 3
    with np.load(tmp_path / "peaks" / "shard-00000.npz", allow_pickle=False) as shard:  # validation shard
        assert (split[shard["store_index"]] == VAL).all() and (shard["variant"] == 0).all()
        assert np.array_equal(shard["space_group"], store.space_group[shard["store_index"]])
        n_val_structures = len(shard["space_group"])
    with np.load(tmp_path / "peaks" / "shard-00001.npz", allow_pickle=False) as shard:
        assert (split[shard["store_index"]] == TRAIN).all()
    # training validates on exactly the val-split shard (not the default 20 % of the items here)
    from csn_plugin.training.train import TrainConfig, train

    run = train(TrainConfig(dataset=str(tmp_path / "peaks"), out=str(tmp_path / "run"), steps=2, batch_size=4,
                            val_every=2, checkpoint_every=2, grid_step=0.1, val_fraction=0.2, warmup=1,
                            model={"dim": 32, "heads": 2, "gau_layers": 1, "gau_key_dim": 16, "stem_channels": [8, 16, 32]}))
    sidecar = json.loads((run / "model.json").read_text())
    assert sidecar["training"]["validation_items"] == n_val_structures != int(0.2 * len(data))
    assert (tmp_path / "peaks" / "shard-50000.npz").exists()  # the random-crystal complement
    again = write_peak_shards(out, tmp_path / "peaks", variants=2, shard_size=64, seed=1, random_every=1,
                              limit_shards=3, progress=False)
    assert again["jobs"] == 3
    from csn_plugin.synth.store import StoreError

    with pytest.raises(StoreError, match="other settings"):
        write_peak_shards(out, tmp_path / "peaks", variants=3, shard_size=64, seed=1, progress=False)


def test_on_the_fly_batch(wheel_store):
    from csn_plugin.synth.store import StructureStore, simulate_batch

    out, _ = wheel_store
    store = StructureStore(out)
    small = np.flatnonzero(np.diff(store.offsets) <= 40)[:6]
    rng = np.random.default_rng(0)
    (d, f2m, cos2), labels = simulate_batch(store, small, rng, max_peaks=64)
    assert d.shape == (6, 64) and np.array_equal(labels, store.space_group[small])
    (d2, _, _), _ = simulate_batch(store, small, rng, max_peaks=64)
    assert not np.allclose(d, d2)  # a fresh variant each call


def test_devset_renders_deterministically(wheel_store):
    from csn_plugin.grid import ModelGrid
    from csn_plugin.synth.devset import devset_patterns, load_devset

    out, _ = wheel_store
    items = load_devset(out)[:8]
    grid = ModelGrid(step=0.1)
    values, masks, labels = devset_patterns(items, grid, seed=4)
    again, _, _ = devset_patterns(items, grid, seed=4)
    assert values.shape == (8, grid.size) and np.allclose(values, again)
    assert np.allclose(values.max(axis=1), 1.0, atol=1e-5)
    assert np.array_equal(labels, [item.space_group for item in items])


def test_cli_real_info_and_errors(wheel_store, tmp_path):
    from click.testing import CliRunner

    from csn_plugin.cli.main import cli

    out, manifest = wheel_store
    result = CliRunner().invoke(cli, ["real", "info", str(out)])
    assert result.exit_code == 0
    summary = json.loads(result.output)
    assert summary["store.json"]["sources"]["wheels"]["labelled"] == manifest["sources"]["wheels"]["labelled"]
    result = CliRunner().invoke(cli, ["real", "build", "--out", str(tmp_path / "x"), "--sources", "nope"])
    assert result.exit_code == 1 and "unknown source" in result.output
    result = CliRunner().invoke(cli, ["real", "info", str(tmp_path)])
    assert result.exit_code == 1 and "store.json" in result.output
