"""CLI start-up and single-file classify wall time, against bare-interpreter references measured
in the same run (these machines are noisy: compare the ratios).

    python benchmarks/bench_cli.py [--repeats 5]
"""

import argparse
import statistics
import subprocess
import sys
import time

from _shared import REPO  # noqa: E402

EXAMPLE = REPO / "csn_plugin" / "data" / "example_TiO2.xy"


def wall(command, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = [
        ("python -c pass (reference)", [sys.executable, "-c", "pass"]),
        ("python -c 'import torch' (reference)", [sys.executable, "-c", "import torch"]),
        ("csn --help", ["csn", "--help"]),
        ("csn classify example_TiO2.xy", ["csn", "classify", str(EXAMPLE)]),
        ("csn classify --format json example_TiO2.xy", ["csn", "classify", "--format", "json", str(EXAMPLE)]),
    ]
    print("| command | median wall (s) | best (s) |")
    print("|---|---|---|")
    for label, command in rows:
        median, best = wall(command, args.repeats)
        print(f"| {label} | {median:.3f} | {best:.3f} |")


if __name__ == "__main__":
    main()
