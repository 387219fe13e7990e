"""Inference speed of the bundled CSN model: patterns/s of predict_many (batch 256, resampling
included) and of single predict calls, on CPU (2 threads) and CUDA when present; the network
forward alone and the resampling alone are measured in the same run as references.

    python benchmarks/bench_inference.py [--model PATH] [--repeats 3]
"""

import argparse
import time

import numpy as np
import torch

from csn_plugin import Pattern, SpaceGroupClassifier
from csn_plugin.nets.csn import parameter_count

from _shared import SHARED  # noqa: E402  (../shared/data)


def measured_patterns(n):
    files = sorted((SHARED / "rruff-dev").glob("*.xy"))
    patterns = [Pattern.from_file(f, wavelength=1.5418) for f in files]
    return [patterns[i % len(patterns)] for i in range(n)]


def best_of(repeats, fn):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    patterns = measured_patterns(512)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"| device | parameters | predict_many batch 256 (patterns/s) | single predict (patterns/s) | network forward alone (patterns/s) | resampling alone (patterns/s) |")
    print("|---|---|---|---|---|---|")
    for device in devices:
        clf = SpaceGroupClassifier(model=args.model, device=device, network_only=True)  # the network path (issue 11 target)
        clf.predict_many(patterns[:256], batch_size=256)  # warm-up
        many = len(patterns) / best_of(args.repeats, lambda: clf.predict_many(patterns, batch_size=256))
        singles = patterns[:64]
        single = len(singles) / best_of(args.repeats, lambda: [clf.predict(p) for p in singles])
        grids = [clf.grid.resample(p.two_theta, p.intensity, p.wavelength) for p in patterns[:256]]
        resample = 256 / best_of(args.repeats, lambda: [clf.grid.resample(p.two_theta, p.intensity, p.wavelength) for p in patterns[:256]])
        values, masks = np.stack([g[0] for g in grids]), np.stack([g[1] for g in grids])
        forward = 256 / best_of(args.repeats, lambda: clf.probabilities_on_grid(values, masks))
        print(f"| {device} ({args.threads} threads) | {parameter_count(clf.model):,} | {many:,.0f} | {single:,.0f} | {forward:,.0f} | {resample:,.0f} |")


if __name__ == "__main__":
    main()
