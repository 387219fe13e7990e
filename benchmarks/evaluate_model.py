"""Accuracy of a model on every evaluation set under every domain prior, and whether re-scoring by
the symmetry-rule head helps. Prints markdown tables; writes the full report as JSON.

Sets: synthetic (random crystals of a test build with its own seed: structures disjoint from
training), synthetic-balanced (same, all 230 groups equally: the paper's class-balanced protocol),
real-structures (the structures shipped in the wheels, rendered: structure types seen in training),
pdcif-structures (the refined structures of the 15 Rietveld CIFs, rendered: unseen), and the measured
rruff-dev and pdcif profiles.

    python benchmarks/evaluate_model.py --model models/csn.safetensors \
        --test-natural DIR --test-balanced DIR --json docs/evaluation.json
"""

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from csn_plugin.inference.classifier import SpaceGroupClassifier
from csn_plugin.evaluation.sets import evaluate_sets, markdown_table, measured_set, pdcif_set, rendered_peak_set
from csn_plugin.evaluation.metrics import summarize
from csn_plugin.synth.render import RenderConfig, render
from csn_plugin.synth.simulate import simulate_reflections

from _shared import SHARED  # noqa: E402  (../shared/data)


def rendered_structures(structures, grid, seed=4321, max_peaks=256):
    """[(lattice, frac, numbers, label)] -> rendered (values, masks, labels), one draw each."""
    ds, fs, labels = [], [], []
    for lattice, frac, numbers, label in structures:
        reflections = simulate_reflections(lattice, frac, numbers, d_min=0.889)
        strength = reflections.f2m
        keep = np.sort(np.argsort(-strength)[:max_peaks])
        ds.append(reflections.d[keep])
        fs.append(reflections.f2m[keep])
        labels.append(label)
    width = max(len(d) for d in ds)
    d = torch.zeros(len(ds), width)
    f = torch.zeros(len(ds), width)
    for i, (di, fi) in enumerate(zip(ds, fs)):
        d[i, : len(di)] = torch.as_tensor(di)
        f[i, : len(fi)] = torch.as_tensor(fi)
    d[f == 0] = 1.0
    values, masks = render(d, f, torch.tensor(grid.two_theta, dtype=torch.float32), torch.Generator().manual_seed(seed), config=RenderConfig())
    return values.numpy(), masks.numpy(), np.asarray(labels)


def real_structure_set(grid):
    from csn_plugin.synth.structures import real_structures

    return rendered_structures([(r.lattice, r.frac_coords, r.atomic_numbers, r.space_group) for r in real_structures()], grid)


def pdcif_structure_set(grid):
    from pymatgen.io.cif import CifParser

    items = []
    for path in sorted((SHARED / "pdcif").glob("*.cif")):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                structure = CifParser(str(path)).parse_structures(primitive=False)[0]
            numbers = np.array([max(s.species.items(), key=lambda kv: kv[1])[0].Z for s in structure])
            items.append((structure.lattice.matrix, structure.frac_coords, numbers, structure.get_space_group_info(symprec=0.01)[1]))
        except Exception:
            continue
    return rendered_structures(items, grid)


def evaluation_sets(grid, test_natural=None, test_balanced=None, limit=4000, pdcif_structures=True):
    """{name: (values, masks, labels)} on ``grid``: the synthetic test builds given, the rendered
    real (and pdCIF) structures, and the measured rruff-dev and pdcif profiles when shared/ has them."""
    sets = {}
    if test_natural:
        sets["synthetic"] = rendered_peak_set(test_natural, grid, limit=limit, sources=[0])
    if test_balanced:
        sets["synthetic-balanced"] = rendered_peak_set(test_balanced, grid, sources=[0])
    sets["real-structures"] = real_structure_set(grid)
    if pdcif_structures:
        sets["pdcif-structures"] = pdcif_structure_set(grid)
    if (SHARED / "rruff-dev").exists():
        sets["rruff-dev"] = measured_set(SHARED / "rruff-dev", grid)
        sets["pdcif"] = pdcif_set(SHARED / "pdcif", grid)
    return sets


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--test-natural", default=None)
    parser.add_argument("--test-balanced", default=None)
    parser.add_argument("--limit", type=int, default=4000)
    parser.add_argument("--json", default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    classifier = SpaceGroupClassifier(model=args.model, device="cpu")  # the sidecar's rule re-scoring
    sets = evaluation_sets(classifier.grid, args.test_natural, args.test_balanced, args.limit)
    report = {"sets": evaluate_sets(classifier, sets)}
    print(markdown_table(report["sets"]))

    # Re-scoring by rule agreement, judged on the synthetic sets only (under the default prior).
    rescoring = {}
    for weight in (0.0, 0.5, 1.0, 2.0, 4.0):
        classifier.rule_rescoring = weight
        rescoring[weight] = {}
        for name in ("synthetic-balanced", "synthetic", "real-structures"):
            if name in sets:
                values, masks, labels = sets[name]
                p = np.concatenate([classifier.probabilities_on_grid(values[i:i + 256], masks[i:i + 256])[0] for i in range(0, len(values), 256)])
                rescoring[weight][name] = summarize(p, labels)["top1"]
    report["rule_rescoring_top1"] = rescoring
    print(f"\nTop-1 under the {classifier.prior_name} prior:\n\n| rule re-scoring weight | " + " | ".join(next(iter(rescoring.values())).keys()) + " |")
    print("|---|" + "---|" * len(next(iter(rescoring.values()))))
    for weight, row in rescoring.items():
        print(f"| {weight} | " + " | ".join(f"{100 * v:.1f}" for v in row.values()) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
