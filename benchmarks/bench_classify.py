"""Full classification speed (issue 10: median <= 1 s per pattern on one core): the network, peak
search, indexing and extinction analysis of each measured rruff-dev pattern, one process, one
thread, with the time of each stage; optionally against a reference checkout in the same run.

    python benchmarks/bench_classify.py                       # this checkout
    python benchmarks/bench_classify.py --reference /tmp/ref  # and a checkout of another commit

With ``--reference`` the files are run in blocks alternating between the two trees (a fresh
worker process per block, timed inside it: start-up excluded), so that load on the machine falls
on both alike; the report gives both medians and their ratio.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import REPO, SHARED  # noqa: E402


def worker(files):
    """Time each file's classification in this process: {file: {total, network, peaks, indexing, extinction}}."""
    import torch

    torch.set_num_threads(1)
    import csn_plugin.crystallography.indexing as indexing

    tree = os.environ.get("PYTHONPATH", "")
    if tree and not Path(indexing.__file__).resolve().is_relative_to(Path(tree).resolve()):
        raise SystemExit(f"csn_plugin came from {indexing.__file__}, not from {tree}")
    from csn_plugin.inference.classifier import SpaceGroupClassifier
    from csn_plugin.pattern import Pattern

    classifier = SpaceGroupClassifier(device="cpu", workers=1)
    network = SpaceGroupClassifier(device="cpu", network_only=True)
    classifier.predict(Pattern.from_file(files[0], wavelength=1.5418))  # first call: imports, caches
    out = {}
    for path in files:
        pattern = Pattern.from_file(path, wavelength=1.5418)
        t0 = time.perf_counter()
        network.predict(pattern)
        t1 = time.perf_counter()
        classifier._evidence_cache.clear()
        result = classifier.predict(pattern)
        t2 = time.perf_counter()
        timings = dict(result.evidence.timings) if result.evidence is not None else {}
        out[path] = {"network": t1 - t0, "total": t2 - t1, **timings, "indexed": result.cell is not None,
                     "top1": int(result.probabilities.argmax()) + 1,
                     "lattice": None if result.cell is None else result.cell.lattice}
    return out


def run_block(tree, files):
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); from bench_classify import worker; "
            "print(json.dumps(worker(sys.argv[2:])))")
    done = subprocess.run([sys.executable, "-c", code, str(Path(__file__).resolve().parent), *files], env=env,
                          capture_output=True, text=True, cwd=tree)
    if done.returncode:
        raise SystemExit(f"worker in {tree} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summary(times):
    totals = [t["total"] for t in times.values()]
    return {"patterns": len(totals), "median_s": statistics.median(totals),
            "p90_s": sorted(totals)[int(0.9 * (len(totals) - 1))], "mean_s": statistics.fmean(totals),
            "network_median_s": statistics.median(t["network"] for t in times.values()),
            "indexed": sum(t["indexed"] for t in times.values())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(SHARED))
    parser.add_argument("--count", type=int, default=0, help="the first N rruff-dev files (0: all)")
    parser.add_argument("--block", type=int, default=12, help="files per worker process")
    parser.add_argument("--reference", default=None, help="a checkout of another commit, run alternately")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    folder = Path(args.shared) / "rruff-dev"
    files = [str(folder / row["file"]) for row in csv.DictReader(open(folder / "labels.csv", newline=""))]
    files = files[:args.count] if args.count else files
    trees = {"this": REPO} | ({"reference": Path(args.reference).resolve()} if args.reference else {})
    times = {name: {} for name in trees}
    for start in range(0, len(files), args.block):
        block = files[start:start + args.block]
        for name, tree in (trees.items() if (start // args.block) % 2 == 0 else reversed(trees.items())):
            times[name].update(run_block(tree, block))
        print(f"{min(start + args.block, len(files))}/{len(files)}: " + ", ".join(
            f"{name} median {summary(t)['median_s']:.3f} s" for name, t in times.items()), file=sys.stderr, flush=True)
    report = {name: summary(t) for name, t in times.items()}
    if args.reference:
        report["ratio_median_this_over_reference"] = report["this"]["median_s"] / report["reference"]["median_s"]
        report["same_answers"] = sum(times["this"][f]["top1"] == times["reference"][f]["top1"]
                                     and times["this"][f]["lattice"] == times["reference"][f]["lattice"] for f in files)
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps({"report": report, "per_file": times}, indent=2) + "\n")


if __name__ == "__main__":
    main()
