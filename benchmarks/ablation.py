"""The comparison tables: CSN against the baselines (the paper's Table 1), CSN without its parts
(Table 2), the grid step and the long-tail treatment, all trained from scratch on the same dataset
with the same compute budget (wall minutes on the same cores), then scored on every evaluation set.

    python benchmarks/ablation.py --dataset /work/datasets/natural-200k \
        --test-natural /work/datasets/test-natural --runs /work/runs/ablation \
        --minutes 20 --parallel 2 --json docs/ablation.json

``--bundle`` then copies the three baselines into ``models/baseline-<name>.safetensors`` (with their
sidecars: named, the command that made them, the uniform-prior caveat, a temperature fitted on 800
held-out items): the classifiers the built-in plugin registers.

Each run is `csn train ... --threads 1 --max-minutes M` in ``RUNS/<variant>`` (resumable: a run
that already exported its model is not trained again). ``--parallel 2`` runs two at a time, one
thread each, which uses the 2 cores better than one run on two threads.

``--real DATA`` (issue 11): the same comparison on the real-structure store's peak shards
(``DATA/peaks``; the grid step of the bundled model, 0.1 deg, is the base and 0.05 the choice),
scored on issue 11's sets (``evaluate_real.real_sets``: val split, natural test split, dev set and
its balanced subset, held-out minerals, rruff-dev), network-only under the ICSD prior:

    python benchmarks/ablation.py --real /work/datasets/real --runs /work/runs/ablation-real \
        --minutes 12 --parallel 2 --json docs/ablation_real.json
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from csn_plugin.training.calibration import calibrate_model  # noqa: E402
from csn_plugin.inference.classifier import SpaceGroupClassifier  # noqa: E402
from csn_plugin.evaluation.sets import evaluate_sets  # noqa: E402
from csn_plugin.nets.csn import parameter_count  # noqa: E402
from evaluate_model import evaluation_sets  # noqa: E402

# name: (architecture, network overrides, grid step, balance, table)
VARIANTS = {
    "csn": ("csn", {}, 0.05, "logit-adjust", "architectures"),
    "mlp": ("mlp", {}, 0.05, "logit-adjust", "architectures"),
    "cnn": ("cnn", {}, 0.05, "logit-adjust", "architectures"),
    "nopoolcnn": ("nopoolcnn", {}, 0.05, "logit-adjust", "architectures"),
    "csn-no-embedding": ("csn", {"use_embedding_attention": False}, 0.05, "logit-adjust", "ablations"),
    "csn-no-rule-head": ("csn", {"use_rule_head": False}, 0.05, "logit-adjust", "ablations"),
    "csn-grid-0.1": ("csn", {}, 0.1, "logit-adjust", "choices"),
    "csn-sampler": ("csn", {}, 0.05, "sampler", "choices"),
}
# the real-structure comparison (--real): the same variants on the bundled model's 0.1-deg grid,
# and the 0.05-deg grid as the choice
REAL_VARIANTS = {**{name: (arch, overrides, 0.1, balance, table)
                    for name, (arch, overrides, _, balance, table) in VARIANTS.items()
                    if name in ("csn", "cnn", "nopoolcnn", "csn-no-embedding", "csn-no-rule-head")},
                 "csn-grid-0.05": ("csn", {}, 0.05, "logit-adjust", "choices"),
                 "csn-sampler": ("csn", {}, 0.1, "sampler", "choices"),
                 # issue 11 section 2, what transfers: a sixth field holds the run's extra `csn train` options
                 "csn-jitter": ("csn", {}, 0.1, "logit-adjust", "transfer", {"--render": {"intensity_jitter": 0.4}}),
                 "csn-weak-dropout": ("csn", {}, 0.1, "logit-adjust", "transfer",
                                      {"--render": {"weak_dropout": 0.5, "weak_threshold": 0.05}}),
                 "csn-no-random": ("csn", {}, 0.1, "logit-adjust", "transfer", {"--random-share": 0.0}),
                 "csn-random-0.3": ("csn", {}, 0.1, "logit-adjust", "transfer", {"--random-share": 0.3})}


def variants(args):
    return REAL_VARIANTS if getattr(args, "real", None) else VARIANTS


# At 2e-3 the NoPoolCNN (2.3 M parameters, most in its first dense layer) collapsed to a constant
# output within its budget; it gets a lower learning rate.
LEARNING_RATES = {"nopoolcnn": 5e-4}


def train_command(name, args):
    architecture, overrides, step, balance, _, *extra = variants(args)[name]
    dataset = str(Path(args.real) / "peaks") if args.real else args.dataset
    options = [str(item) for key, value in (extra[0] if extra else {}).items()
               for item in (key, json.dumps(value) if isinstance(value, dict) else value)]
    return ["csn", "train", *options, "--dataset", dataset, "--out", str(Path(args.runs) / name),
            "--architecture", architecture, "--model", json.dumps(overrides), "--grid-step", str(step),
            "--balance", balance, "--steps", "1000000", "--max-minutes", str(args.minutes),
            "--batch-size", "128", "--lr", str(LEARNING_RATES.get(name, 2e-3)), "--val-every", "250", "--threads", "1", "--seed", "0"]


def train_all(names, args):
    pending = [n for n in names if not (Path(args.runs) / n / "model.safetensors").exists()]
    running = []
    while pending or running:
        while pending and len(running) < args.parallel:
            name = pending.pop(0)
            Path(args.runs, name).mkdir(parents=True, exist_ok=True)
            log = open(Path(args.runs) / name / "stdout.log", "a")
            print(f"training {name}: {' '.join(train_command(name, args))}", flush=True)
            running.append((name, subprocess.Popen(train_command(name, args), stdout=log, stderr=subprocess.STDOUT)))
        time.sleep(5)
        for name, process in list(running):
            if process.poll() is not None:
                print(f"{name} finished with exit code {process.returncode}", flush=True)
                running.remove((name, process))


def score(name, args, cache):
    run = Path(args.runs) / name
    classifier = SpaceGroupClassifier(model=run / "model.safetensors", device="cpu")
    key = classifier.grid.step
    if key not in cache:
        cache[key] = evaluation_sets(classifier.grid, args.test_natural, limit=args.limit, pdcif_structures=False)
    report = evaluate_sets(classifier, cache[key], priors=("uniform", "icsd", "mp"))
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return {**run_row(name, args, classifier, report), "val_top1_uniform": log[-1].get("val_top1")}


def run_row(name, args, classifier, report):
    """The report row of one trained variant: its size, its training record and its scores."""
    sidecar = json.loads((Path(args.runs) / name / "model.json").read_text())
    return {"variant": name, "table": variants(args)[name][4], "parameters": parameter_count(classifier.model),
            "steps": sidecar["training"]["steps"], "minutes": sidecar["training"]["minutes"],
            "seconds_per_step": 60 * sidecar["training"]["minutes"] / max(1, sidecar["training"]["steps"]),
            "sets": report}


def table(rows, names):
    header = ("| model | params | steps | synthetic top-1 (MP) | synthetic top-5 (MP) | synthetic balanced top-1 (MP) "
              "| synthetic top-5 (uniform) | real structures top-1 (ICSD) | rruff-dev top-1 / top-5 (ICSD) | rruff-dev crystal system | pdcif top-1 (ICSD) |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for row in rows:
        if row["variant"] not in names:
            continue
        s = row["sets"]
        cell = lambda name, prior, key: f"{100 * s[name][prior][key]:.1f}" if name in s else "-"
        lines.append(f"| {row['variant']} | {row['parameters']:,} | {row['steps']:,} | {cell('synthetic', 'mp', 'top1')} | "
                     f"{cell('synthetic', 'mp', 'top5')} | {cell('synthetic', 'mp', 'balanced_top1')} | {cell('synthetic', 'uniform', 'top5')} | "
                     f"{cell('real-structures', 'icsd', 'top1')} | {cell('rruff-dev', 'icsd', 'top1')} / {cell('rruff-dev', 'icsd', 'top5')} | "
                     f"{cell('rruff-dev', 'icsd', 'crystal_system')} | {cell('pdcif', 'icsd', 'top1')} |")
    return "\n".join(lines)


BASELINE_UNIFORM_CAVEAT = ("unreliable for this baseline (trained with logit adjustment for 18 CPU-minutes: synthetic "
                           "top-5 under the uniform prior 0.1 % or less); use icsd, cod or mp (models/baselines.md)")


def bundle_baselines(args):
    """models/baseline-{mlp,cnn,nopoolcnn}.safetensors + sidecar from the runs (weights copied as is,
    so the sidecar's sha256 stays valid), with the uniform-prior caveat and a fitted temperature."""
    import shutil

    from csn_plugin.nets.store import sha256_of
    from csn_plugin.models import MODELS_DIR

    for name in ("mlp", "cnn", "nopoolcnn"):
        run = Path(args.runs) / name
        target = MODELS_DIR / f"baseline-{name}.safetensors"
        shutil.copyfile(run / "model.safetensors", target)
        info = json.loads((run / "model.json").read_text())
        info["name"] = f"baseline-{name}"
        info["training"]["command"] = " ".join(train_command(name, args))
        info["training"]["hardware"] = "1 of 2 CPU cores (Intel Xeon), no GPU"
        info["model_card"] = "models/baselines.md"
        info["prior_warnings"] = {"uniform": BASELINE_UNIFORM_CAVEAT}
        assert info["sha256"] == sha256_of(target)
        target.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
        temperature = calibrate_model(target, args.dataset, items=800)
        print(f"bundled {target} ({target.stat().st_size / 1e6:.1f} MB), temperature {temperature:.3f}")


def score_real(name, args, sources, cache):
    """Issue 11's sets (network-only, ICSD prior) for one trained variant."""
    from evaluate_real import real_sets

    run = Path(args.runs) / name
    classifier = SpaceGroupClassifier(model=run / "model.safetensors", device="cpu", prior="icsd", network_only=True)
    if classifier.grid.step not in cache:
        cache[classifier.grid.step] = real_sets(sources, classifier.grid, args.real)
    return run_row(name, args, classifier, evaluate_sets(classifier, cache[classifier.grid.step], priors=("icsd",)))


REAL_COLUMNS = (("val split (choose by this)", "top1", "val top-1"), ("test split, natural", "top1", "test top-1"),
                ("test split, natural", "top5", "test top-5"), ("test split, natural", "crystal_system", "test crystal system"),
                ("dev set, balanced", "top1", "dev balanced top-1"), ("held-out minerals", "top1", "held-out minerals top-1"),
                ("rruff-dev", "top1", "rruff-dev top-1"), ("rruff-dev", "top5", "rruff-dev top-5"),
                ("rruff-dev", "crystal_system", "rruff-dev crystal system"))


def real_table(rows, names):
    header = "| model | params | steps | " + " | ".join(c[2] for c in REAL_COLUMNS) + " |"
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for row in rows:
        if row["variant"] not in names:
            continue
        s = row["sets"]
        cells = [f"{100 * s[name]['icsd'][key]:.1f}" if name in s else "-" for name, key, _ in REAL_COLUMNS]
        lines.append(f"| {row['variant']} | {row['parameters']:,} | {row['steps']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(path, rows, minutes, order=VARIANTS):
    """Write the scored rows to ``path``, keeping the other variants of an earlier report there;
    returns all the rows written."""
    if path.exists():
        scored = {row["variant"] for row in rows}
        rows = [row for row in json.loads(path.read_text())["runs"] if row["variant"] not in scored] + rows
        rows.sort(key=lambda row: list(order).index(row["variant"]) if row["variant"] in order else len(order))
    path.write_text(json.dumps({"minutes_per_run": minutes, "runs": rows}, indent=2, default=float) + "\n")
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--test-natural", default=None)
    parser.add_argument("--real", default=None, help="a real-structure build folder: issue 11's comparison (see above)")
    parser.add_argument("--runs", required=True)
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--limit", type=int, default=4000)
    parser.add_argument("--only", nargs="*", default=None, help="variants (default: all of the mode)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--bundle", action="store_true", help="copy the trained baselines into models/ and stop")
    parser.add_argument("--report", action="store_true", help="print the tables of an earlier --json report and stop")
    args = parser.parse_args()
    if not args.real and not (args.dataset and args.test_natural):
        parser.error("give --real DATA, or --dataset and --test-natural")
    args.only = args.only or list(variants(args))
    if args.real:
        return main_real(args)
    if args.bundle:
        return bundle_baselines(args)
    if args.report:
        rows = json.loads(Path(args.json).read_text())["runs"]
    else:
        train_all(args.only, args)
        torch.set_num_threads(2)
        cache, rows = {}, []
        for name in args.only:
            rows.append(score(name, args, cache))
            print(f"scored {name}", flush=True)
        if args.json:
            rows = write_report(Path(args.json), rows, args.minutes)
    for title, names in (("Architectures (same data, same budget)", ["csn", "mlp", "cnn", "nopoolcnn", "nopoolcnn-lr2e-3"]),
                         ("Ablations of CSN", ["csn", "csn-no-embedding", "csn-no-rule-head"]),
                         ("Grid step and long-tail treatment", ["csn", "csn-grid-0.1", "csn-sampler"])):
        print(f"\n{title}\n\n{table(rows, names)}")


def main_real(args):
    if args.report:
        rows = json.loads(Path(args.json).read_text())["runs"]
    else:
        from evaluate_real import real_sources

        train_all(args.only, args)
        torch.set_num_threads(2)
        sources, cache, rows = real_sources(args.real), {}, []
        for name in args.only:
            rows.append(score_real(name, args, sources, cache))
            print(f"scored {name}", flush=True)
        if args.json:
            rows = write_report(Path(args.json), rows, args.minutes, order=REAL_VARIANTS)
    for title, names in (("Architectures (real structures, same budget)", ["csn", "cnn", "nopoolcnn"]),
                         ("Ablations of CSN", ["csn", "csn-no-embedding", "csn-no-rule-head"]),
                         ("Grid step and long-tail treatment", ["csn", "csn-grid-0.05", "csn-sampler"]),
                         ("What transfers (issue 11, section 2)", ["csn", "csn-jitter", "csn-weak-dropout", "csn-no-random",
                                                                   "csn-random-0.3"])):
        print(f"\n{title}\n\n{real_table(rows, names)}")


if __name__ == "__main__":
    main()
