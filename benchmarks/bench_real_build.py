"""Benchmark of the real-structure store: build time, counts per source, failures, and the data
path (structures simulated per second, stored and augmented, per source).

    python benchmarks/bench_real_build.py --out /work/datasets/real \
        --mp-tar ../shared/data/structures/materials-project-144861-cifs.tar.xz --workers 2 --json bench.json
    python benchmarks/bench_real_build.py --out DIR --no-build      # only report an existing build + data path

Builds (or resumes: finished slices are kept, so a rerun measures only what is missing) with
``csn_plugin.synth.store.build_store``; then simulates ``--sample`` structures of each source
(at most 400 sites, as the peak shards do) unchanged and as augmented variants, one process.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def data_path_rate(store, sample, seed=0):
    from csn_plugin.synth.store import simulate_item

    rng = np.random.default_rng(seed)
    small = np.diff(store.offsets) <= 400
    rates = {}
    for code, name in enumerate(store.source_names_all):
        candidates = np.flatnonzero((store.source == code) & small)
        if not len(candidates):
            continue
        chosen = rng.choice(candidates, size=min(sample, len(candidates)), replace=False)
        entry = {"structures": int(len(chosen)), "median_sites": float(np.median(np.diff(store.offsets)[chosen]))}
        for variant in (False, True):
            started = time.perf_counter()
            failed = 0
            for index in chosen:
                try:
                    peaks, _, _ = simulate_item(store, int(index), rng, variant=variant)
                    failed += peaks is None
                except Exception:
                    failed += 1
            seconds = time.perf_counter() - started
            entry["variant_per_s" if variant else "stored_per_s"] = round(len(chosen) / seconds, 1)
            entry["variant_failed" if variant else "stored_failed"] = failed
        rates[name] = entry
    return rates


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--mp-tar", default=None)
    parser.add_argument("--sources", default="")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--sample", type=int, default=100, help="structures per source for the data-path rate")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    from csn_plugin.synth.store import SOURCE_ORDER, StructureStore, build_store

    if args.no_build:
        manifest = json.loads((Path(args.out) / "store.json").read_text())
    else:
        names = [n for n in args.sources.split(",") if n] or None
        manifest = build_store(args.out, mp_tar=args.mp_tar, sources=names, workers=args.workers)
    store = StructureStore(args.out)
    store.source_names_all = SOURCE_ORDER
    result = {
        "elapsed_seconds": manifest["elapsed_seconds"], "workers": manifest["workers"],
        "built_slices": manifest["built_slices"], "sources": manifest["sources"],
        "missing_sources": manifest["missing_sources"], "splits": manifest.get("splits"),
        "data_path": data_path_rate(store, args.sample),
    }
    print(f"build: {manifest['elapsed_seconds']} s with {manifest['workers']} workers ({manifest['built_slices']} slices built)")
    print(f"{'source':<11}{'parsed':>9}{'labelled':>10}{'disordered':>11}  skipped")
    for name, entry in manifest["sources"].items():
        print(f"{name:<11}{entry['parsed']:>9}{entry['labelled']:>10}{entry['disordered']:>11}  {entry['skipped']}")
    print(f"{'source':<11}{'sites':>7}{'stored/s':>10}{'variant/s':>11}")
    for name, entry in result["data_path"].items():
        print(f"{name:<11}{entry['median_sites']:>7.0f}{entry['stored_per_s']:>10}{entry['variant_per_s']:>11}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
