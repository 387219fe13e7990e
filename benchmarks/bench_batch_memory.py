"""Peak RSS and wall time of one ``csn classify`` over many small .xy files (streamed batches).

Writes ``--files`` .xy files into a temporary folder -- noisy, rescaled copies of a few rendered
patterns (the bundled example and patterns rendered from random stick lists by
``csn_plugin.inputs.render_sticks``), 5-90 deg at 0.04 deg -- plus ``--bad`` unreadable
files, then runs ``csn classify FILES... --format jsonl`` once as a child process and reports
its peak RSS (``getrusage(RUSAGE_CHILDREN).ru_maxrss``), its wall time, the time to its first
jsonl line (output appears as it goes) and the numbers of answers and error entries.

    nice -n 10 python benchmarks/bench_batch_memory.py --files 20000
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).resolve().parents[1] / "csn_plugin" / "data" / "example_TiO2.xy"
STEP = 0.04


def base_patterns(count, seed):
    """(two_theta, [intensity profiles]): the example resampled, then rendered random sticks."""
    from csn_plugin.inputs import render_grid, render_sticks

    grid = render_grid()
    keep = slice(None, None, int(round(STEP / (grid[1] - grid[0]))))
    two_theta = grid[keep]
    example = np.loadtxt(EXAMPLE)
    profiles = [np.interp(two_theta, example[:, 0], example[:, 1])]
    rng = np.random.default_rng(seed)
    for _ in range(count - 1):
        d = rng.uniform(1.1, 8.0, rng.integers(10, 60))
        f2m = rng.uniform(0.05, 1.0, len(d))
        profiles.append(1000 * render_sticks(d, f2m)[keep] + 50)
    return two_theta, profiles


def write_files(folder, files, bad, seed):
    two_theta, profiles = base_patterns(8, seed)
    angles = [f"{value:.2f}" for value in two_theta]
    rng = np.random.default_rng(seed + 1)
    paths = []
    for index in range(files):
        profile = profiles[index % len(profiles)] * rng.uniform(0.5, 2.0)
        counts = rng.poisson(np.clip(profile, 0, None)).astype(float)
        path = folder / f"p{index:05d}.xy"
        path.write_text("\n".join(f"{a} {c:.0f}" for a, c in zip(angles, counts)) + "\n")
        paths.append(path)
    for index in range(bad):
        path = folder / f"bad{index:03d}.xy"
        path.write_text("this is not a pattern\n")
        paths.insert(len(paths) * (index + 1) // (bad + 1), path)
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--bad", type=int, default=10, help="unreadable files mixed in (each an error entry)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="write the files here (kept) instead of a temp folder")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="csn-batch-") as temporary:
        folder = args.keep or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        paths = write_files(folder, args.files, args.bad, args.seed)
        print(f"wrote {len(paths)} files in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        # relative names keep the command line short (ARG_MAX)
        command = ["csn", "classify", *[path.name for path in paths], "--format", "jsonl",
                   "--batch-size", str(args.batch_size), "--device", "cpu"]
        started = time.perf_counter()
        first_line = None
        answers = errors = 0
        with subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
            for line in child.stdout:
                if first_line is None:
                    first_line = time.perf_counter() - started
                record = json.loads(line)
                if "error" in record:
                    errors += 1
                else:
                    answers += 1
            stderr = child.stderr.read()
            returncode = child.wait()
        wall = time.perf_counter() - started
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    result = {
        "files": len(paths),
        "answers": answers,
        "error_entries": errors,
        "exit_code": returncode,
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "wall_s": round(wall, 1),
        "first_jsonl_line_s": None if first_line is None else round(first_line, 1),
        "files_per_s": round(len(paths) / wall, 1),
        "progress_bar_on_stderr": "classifying" in stderr,
        "command": "csn classify p00000.xy ... --format jsonl --batch-size "
                   f"{args.batch_size} --device cpu",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
