"""Peak search on rendered patterns whose peaks are known: position error, missed and spurious
peaks, intensity error, speed.

    nice -n 10 python benchmarks/bench_peaks.py --count 120

Structures: pymatgen's AFLOW prototypes and Materials Project CIFs (``tests/crystallography_cases.py``),
simulated with ``simulate_reflections`` and rendered by ``csn_plugin.synth.render`` on a 0.01 deg grid
(5-90 deg, Cu Ka1+Ka2 unless the renderer draws it absent) with its measured-like defaults
(widths, noise, background, subtraction, asymmetry), a random zero shift kept known, no
impurity lines, no displacement or wavelength error (so that the true line positions are known).
"""

import argparse
import importlib.util
import json
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _cases():
    spec = importlib.util.spec_from_file_location("crystallography_cases", REPO / "tests" / "crystallography_cases.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def evaluate(x, y, truth, peaks):
    """Per-pattern statistics of a found PeakSet against the true lines."""
    tt, ti = truth["two_theta"], truth["intensity"]
    found = peaks.two_theta
    fw_true = peaks.fwhm_at(tt)
    out = {"n_true": int((ti > 0.5).sum()), "n_found": len(found)}
    if not len(found):
        out.update(errors=[], missed=int((ti > 5).sum()), detectable=int((ti > 5).sum()), spurious=0, int_err=[])
        return out
    # isolated true lines: no other line with > 20 % of its intensity within one FWHM
    diff = np.abs(tt[:, None] - tt[None, :])
    near = (diff < fw_true[:, None]) & (ti[None, :] > 0.2 * ti[:, None]) & ~np.eye(len(tt), dtype=bool)
    isolated = ~near.any(axis=1)
    dist = found[None, :] - tt[:, None]
    j = np.abs(dist).argmin(axis=1)
    err = dist[np.arange(len(tt)), j]
    matched = np.abs(err) < np.maximum(0.5 * fw_true, 0.03)
    # scale true relative intensities to the data's integrated units with the strongest matches
    strong = matched & isolated & (ti > 10)
    scale = np.median(peaks.intensity[j[strong]] / ti[strong]) if strong.sum() >= 2 else np.nan
    limit = peaks.detection_limit(tt)
    detectable = isolated & np.isfinite(scale) & (ti * scale > 2 * limit)
    out["errors"] = err[matched & isolated & (ti > 1)].tolist()
    out["detectable"] = int(detectable.sum())
    out["missed"] = int((detectable & ~matched).sum())
    # spurious: found peaks with no true line (> 0.1 % intensity) nearby
    near_true = np.abs(found[:, None] - tt[None, :]) < np.maximum(0.5 * peaks.fwhm_at(found)[:, None], 0.05)
    real = (near_true & (ti[None, :] > 0.1)).any(axis=1)
    out["spurious"] = int((~real).sum())
    good = strong & (peaks.significance[j] > 20) if np.isfinite(scale) else np.zeros(len(tt), dtype=bool)
    out["int_err"] = (np.abs(peaks.intensity[j[good]] / scale - ti[good]) / ti[good]).tolist()
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    cases = _cases()
    from csn_plugin.crystallography import find_peaks

    rng = np.random.default_rng(args.seed)
    aflow = cases.aflow_structures()
    mp = cases.mp_structures(count=args.count // 2, stride=211, max_sites=80)
    pool = [aflow[i] for i in rng.choice(len(aflow), args.count - len(mp), replace=False)] + mp
    errors, int_err, times = [], [], []
    missed = detectable = spurious = found = 0
    fwhm = []
    for index, (name, lattice, frac, numbers, occ, sg) in enumerate(pool):
        zero = float(rng.uniform(-0.05, 0.05))
        config = cases.measured_like_config(zero_shift=zero, impurities=False)
        x, y, truth = cases.render_known(lattice, frac, numbers, occ, seed=1000 + index, config=config)
        t0 = time.perf_counter()
        peaks = find_peaks(x, y, "CuKa")
        times.append(time.perf_counter() - t0)
        stats = evaluate(x, y, truth, peaks)
        errors += stats["errors"]
        int_err += stats["int_err"]
        missed += stats["missed"]
        detectable += stats["detectable"]
        spurious += stats["spurious"]
        found += stats["n_found"]
        if len(peaks):
            fwhm.append(float(np.median(peaks.fwhm)))
    errors = np.abs(np.array(errors))
    result = {
        "patterns": len(pool),
        "position_error_median_deg": float(np.median(errors)),
        "position_error_p95_deg": float(np.percentile(errors, 95)),
        "lines_compared": int(len(errors)),
        "missed_fraction_of_detectable": missed / max(detectable, 1),
        "detectable_isolated_lines": detectable,
        "spurious_fraction_of_found": spurious / max(found, 1),
        "found_peaks": found,
        "intensity_rel_error_median": float(np.median(int_err)) if int_err else None,
        "fwhm_median_deg": float(np.median(fwhm)),
        "seconds_median": float(np.median(times)),
        "seconds_p90": float(np.percentile(times, 90)),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
