"""Bundle a trained CSN run as ``models/csn.safetensors``: weights from the run's checkpoint, a
sidecar with the training record, the softmax temperature fitted on the dataset's held-out
(val-split) items, and the uniform-prior caveat measured on them. Prints the new sha256, which
goes into ``csn_plugin.nets.store.BUNDLED_SHA256`` (the tests check the two agree).

    python benchmarks/bundle_csn.py --run /work/runs/real-csn --dataset /work/datasets/real/peaks \
        --stages models/checkpoints/real-csn/stages.json
"""

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from _shared import REPO  # noqa: E402

from evaluate_real import export_run


def uniform_top5(weights, dataset_dir, items):
    """Top-5 of the model under the uniform prior on the held-out items (for the caveat)."""
    from csn_plugin.evaluation.metrics import top_k_accuracy
    from csn_plugin.evaluation.sets import uniform_posteriors
    from csn_plugin.inference.classifier import SpaceGroupClassifier
    from csn_plugin.synth.batches import render_items
    from csn_plugin.synth.dataset import PeakDataset

    classifier = SpaceGroupClassifier(model=str(weights), device="cpu", prior="icsd", network_only=True)
    data = PeakDataset(dataset_dir)
    indices = np.arange(min(items, len(data)))
    values, masks = render_items(data, indices, classifier.grid, torch.Generator().manual_seed(99))
    return top_k_accuracy(uniform_posteriors(classifier, values.numpy(), masks.numpy()),
                          np.asarray(data.space_groups)[indices], 5)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="the training run folder (checkpoint.pt, train_config.json)")
    parser.add_argument("--dataset", required=True, help="its dataset (the first --items are the held-out val split)")
    parser.add_argument("--items", type=int, default=512)
    parser.add_argument("--stages", default=None, help="JSON list of the run's stages (commands, minutes, threads)")
    parser.add_argument("--out", default=str(REPO / "models" / "csn.safetensors"))
    args = parser.parse_args()

    from csn_plugin.nets.store import sha256_of, sidecar_path
    from csn_plugin.training.calibration import calibrate_model

    tmp = tempfile.mkdtemp()
    exported, step = export_run(args.run, tmp)
    out = Path(tmp) / "staged" / Path(args.out).name  # calibrated here: models/ holds the pinned file until the end
    out.parent.mkdir()
    shutil.copyfile(exported, out)
    config = json.loads((Path(args.run) / "train_config.json").read_text())
    state = torch.load(Path(args.run) / "checkpoint.pt", map_location="cpu", weights_only=True)
    info = json.loads(sidecar_path(exported).read_text())
    info.update({
        "sha256": sha256_of(out),
        "training": {"steps": step, "minutes": round(float(state["elapsed"]) / 60, 1), "batch_size": config["batch_size"],
                     "balance": config["balance"], "seed": config["seed"], "dataset": config["dataset"],
                     "validation_items": args.items, "lr": config["lr"], "grid_step": config["grid_step"],
                     "stages": json.loads(Path(args.stages).read_text()) if args.stages else [],
                     "hardware": "2 CPU cores (Intel Xeon), no GPU"},
        "train_prior": "uniform", "rule_rescoring": 1.0, "name": "csn", "temperature": 1.0,
        "model_card": "models/csn.md",
    })
    sidecar_path(out).write_text(json.dumps(info, indent=2) + "\n")
    temperature = calibrate_model(out, args.dataset, items=args.items)
    top5 = uniform_top5(out, args.dataset, args.items)
    info = json.loads(sidecar_path(out).read_text())
    info["prior_warnings"] = {"uniform": (
        f"unreliable for this model: trained with logit adjustment, its uniform-prior scores favour rare groups "
        f"(top-5 {100 * top5:.1f} % on the {args.items} held-out val-split structures); use icsd, cod or mp")}
    sidecar_path(out).write_text(json.dumps(info, indent=2) + "\n")
    shutil.copyfile(out, args.out)
    shutil.copyfile(sidecar_path(out), sidecar_path(Path(args.out)))
    print(json.dumps({"weights": str(args.out), "sha256": info["sha256"], "step": step, "temperature": temperature,
                      "uniform_top5": top5}, indent=1))


if __name__ == "__main__":
    main()
