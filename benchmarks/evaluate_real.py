"""Issue 11's network-only targets for one or more models, in one run (same rendered sets):

- val split: 2,000 structures drawn at random from the val split (structure types and minerals
  never trained on), the set a choice between models is made on (until session 6 it was the 512
  val-split structures of the peak shards' shard 0, now reported as "val shard 0": the trainer's
  monitor, too small to tell close models apart);
- test split, natural: structures drawn at random from the test split (the issue's "real-structure
  test": the natural distribution of unseen structure types);
- dev set: drawn from the test split of the real-structure store (structure types and minerals
  never in train; a few structures per group at most, so flatter than natural), rendered like
  measured data (``csn_plugin.synth.devset.devset_patterns``);
- dev set, class-balanced subset (the paper's protocol);
- held-out minerals: dev-set structures of minerals held out by name (every AMCSD/BGMN entry of the
  mineral on the test side; ``heldout_minerals.json`` of the build);
- rruff-dev (measured, development check only: nothing is fitted or selected on it).

A model is ``bundled`` (models/csn.safetensors), a ``.safetensors`` path, or a training run folder
(its ``checkpoint.pt`` is exported to a temporary safetensors with the run's architecture).

    python benchmarks/evaluate_real.py --data /work/datasets/real --model bundled \
        --model /work/runs/real-csn --json docs/evaluate_real.json
"""

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from _shared import SHARED  # noqa: E402  (../shared/data)

from csn_plugin.evaluation.sets import evaluate_sets, markdown_table, measured_set
from csn_plugin.inference.classifier import SpaceGroupClassifier
from csn_plugin.synth.devset import devset_patterns, load_devset

KEYS = ("count", "top1", "top5", "crystal_system", "balanced_top1", "ece")


def export_run(run_dir, out_dir):
    """A run folder's checkpoint as safetensors + sidecar (the run's architecture and grid)."""
    from csn_plugin.grid import ModelGrid
    from csn_plugin.nets.registry import build_network
    from csn_plugin.nets.store import save_model

    run_dir = Path(run_dir)
    config = json.loads((run_dir / "train_config.json").read_text())
    grid = ModelGrid(step=config["grid_step"])
    model = build_network(config["architecture"], {**config.get("model", {}), "grid_size": grid.size})
    state = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    path = Path(out_dir) / f"{run_dir.name}-step{int(state['step'])}.safetensors"
    save_model(model, path, grid, metadata={"train_prior": "uniform", "training": {"steps": int(state["step"])}},
               architecture=config["architecture"])
    return str(path), int(state["step"])


def val_split_set(data_dir, grid, seed=0):
    """(values, masks, labels) of the val-split structures of the build's peak shards (shard 0:
    structure types never trained on, the set to choose by), rendered like the dev set."""
    from csn_plugin.synth.dataset import PeakDataset
    from csn_plugin.synth.render import render

    first = Path(data_dir) / "peaks" / "shard-00000.npz"
    if not first.is_file():
        return None
    with np.load(first, allow_pickle=False) as shard:
        n = len(shard["space_group"])
    data = PeakDataset(Path(data_dir) / "peaks")
    d, f2m, cos2 = data.batch(np.arange(n))
    values, masks = render(d, f2m, torch.tensor(grid.two_theta, dtype=torch.float32),
                           torch.Generator().manual_seed(int(seed) + 12345), cos2=cos2)
    return values.numpy(), masks.numpy(), np.asarray(data.space_groups)[:n]


def split_sample(data_dir, count, which="test", seed=0, max_atoms=400):
    """``count`` structures drawn at random from the ``which`` split ("test" or "val": the natural
    distribution of structure types never trained on, unlike the dev set, which caps each group;
    "train": structure types the network was trained on, as a user's known phases),
    as dev-set-like items for :func:`csn_plugin.synth.devset.devset_patterns`."""
    from types import SimpleNamespace

    from csn_plugin.synth.arrays import StructureStore
    from csn_plugin.synth.splits import TEST, TRAIN, VAL, load_splits

    store = StructureStore(data_dir)
    split = load_splits(data_dir, store)
    pool = np.flatnonzero((split == {"test": TEST, "val": VAL, "train": TRAIN}[which]) & (np.diff(store.offsets) <= max_atoms))
    chosen = np.sort(np.random.default_rng(seed).choice(pool, size=min(count, len(pool)), replace=False))
    return [SimpleNamespace(record=store.record(int(i)), space_group=int(store.space_group[i])) for i in chosen]


def heldout_mask(items, data_dir):
    names = json.loads((Path(data_dir) / "heldout_minerals.json").read_text())["test"]
    keys = {name.strip().lower() for group in names.values() for name in group} | set(names)
    return np.array([bool(item.record.mineral) and item.record.mineral.strip().lower() in keys for item in items])


def real_sources(data_dir, limit=0, test_count=2000, seed=0):
    """The structures behind the sets: dev-set items (with their balanced and held-out-mineral
    masks) and a natural test-split sample."""
    items = load_devset(data_dir)
    if limit:
        items = items[:limit]
    return {"items": items, "balanced": np.array([item.balanced for item in items]),
            "held": heldout_mask(items, data_dir),
            "test": split_sample(data_dir, test_count, "test", seed) if test_count else [],
            "val": split_sample(data_dir, test_count, "val", seed) if test_count else []}


def real_sets(sources, grid, data_dir, seed=0):
    """Issue 11's evaluation sets on one model grid: name -> (values, masks, labels)."""
    values, masks, labels = devset_patterns(sources["items"], grid, seed=seed)
    balanced, held = sources["balanced"], sources["held"]
    sets = {}
    if sources["val"]:
        sets["val split (choose by this)"] = devset_patterns(sources["val"], grid, seed=seed)
    val = val_split_set(data_dir, grid, seed)
    if val is not None:
        sets["val shard 0"] = val
    if sources["test"]:
        sets["test split, natural"] = devset_patterns(sources["test"], grid, seed=seed)
    sets.update({"dev set": (values, masks, labels),
                 "dev set, balanced": (values[balanced], masks[balanced], labels[balanced]),
                 "held-out minerals": (values[held], masks[held], labels[held])})
    if (SHARED / "rruff-dev" / "labels.csv").is_file():
        sets["rruff-dev"] = measured_set(SHARED / "rruff-dev", grid)
    return sets


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a real-structure build folder (devset.npz, heldout_minerals.json)")
    parser.add_argument("--model", action="append", default=None, help="bundled, a .safetensors path or a run folder; repeatable")
    parser.add_argument("--prior", default="icsd")
    parser.add_argument("--limit", type=int, default=0, help="at most this many dev structures (0: all)")
    parser.add_argument("--test-count", type=int, default=2000, help="test-split (and val-split) structures drawn at random (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    sources = real_sources(args.data, limit=args.limit, test_count=args.test_count, seed=args.seed)
    report, tmp, cache = {}, tempfile.TemporaryDirectory(), {}
    for spec in args.model or ["bundled"]:
        label, path = spec, None
        if spec != "bundled" and Path(spec).is_dir():
            path, step = export_run(spec, tmp.name)
            label = f"{Path(spec).name} (step {step})"
        elif spec != "bundled":
            path = spec
        classifier = SpaceGroupClassifier(model=path, device="cpu", prior=args.prior, network_only=True)
        if classifier.grid.step not in cache:  # the same rendered sets for every model on one grid
            cache[classifier.grid.step] = real_sets(sources, classifier.grid, args.data, seed=args.seed)
        report[label] = evaluate_sets(classifier, cache[classifier.grid.step], priors=(args.prior,))
        print(f"## {label}\n")
        print(markdown_table(report[label], keys=KEYS) + "\n", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
