"""Does re-scoring the 230 probabilities by agreement with the rule head help? Top-1/top-5 on the
synthetic test set and the rendered real structures, for several weights under three priors.

    python benchmarks/rule_rescoring.py --model models/csn.safetensors --test-natural DIR
"""

import argparse

import numpy as np
import torch

from csn_plugin.inference.classifier import SpaceGroupClassifier
from csn_plugin.evaluation.sets import rendered_peak_set
from csn_plugin.evaluation.metrics import summarize
from evaluate_model import real_structure_set


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--test-natural", required=True)
    parser.add_argument("--limit", type=int, default=4000)
    args = parser.parse_args()
    torch.set_num_threads(2)
    grid = SpaceGroupClassifier(model=args.model, device="cpu").grid
    sets = {"synthetic": rendered_peak_set(args.test_natural, grid, limit=args.limit, sources=[0]),
            "real-structures": real_structure_set(grid)}
    print("| prior | weight | synthetic top-1 | synthetic top-5 | real top-1 | real top-5 |")
    print("|---|---|---|---|---|---|")
    for prior in ("mp", "icsd", "uniform"):
        classifier = SpaceGroupClassifier(model=args.model, device="cpu", prior=prior)
        for weight in (0.0, 1.0, 2.0, 4.0, 8.0):
            classifier.rule_rescoring = weight
            row = []
            for values, masks, labels in sets.values():
                p = np.concatenate([classifier.probabilities_on_grid(values[i:i + 256], masks[i:i + 256])[0] for i in range(0, len(values), 256)])
                summary = summarize(p, labels)
                row += [summary["top1"], summary["top5"]]
            print(f"| {prior} | {weight} | " + " | ".join(f"{100 * x:.1f}" for x in row) + " |", flush=True)


if __name__ == "__main__":
    main()
