"""Speed of csn_plugin.synth.simulate against pymatgen's XRDCalculator on the test comparison set.

    nice -n 10 python benchmarks/bench_simulate.py [--repeats 3]

Per structure, pymatgen ``get_pattern`` and ``simulate_peaks`` run interleaved (best of
``--repeats`` each, Cu Ka1, 2theta 0-90); prints a markdown snippet with the total and median
per-structure speed-up and the raw ``simulate_reflections`` rate at d_min = 0.889 A.
"""

import argparse
import importlib.util
import platform
import time
import warnings

import numpy as np

from _shared import REPO  # noqa: E402


def load_comparison_structures():
    """The structure set of tests/test_simulate.py (same deterministic picks)."""
    spec = importlib.util.spec_from_file_location("csn_test_simulate", REPO / "tests" / "test_simulate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.comparison_structures()


def best_time(function, repeats):
    best = float("inf")
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    from pymatgen.analysis.diffraction.xrd import XRDCalculator

    from csn_plugin.synth.simulate import _structure_arrays, simulate_peaks, simulate_reflections

    structures = load_comparison_structures()
    calculator = XRDCalculator(1.5406)
    simulate_peaks(structures[0][1])  # warm-up (imports, caches)
    calculator.get_pattern(structures[0][1])

    pymatgen_times, csn_times, agree = [], [], 0
    for name, structure in structures:
        t_pymatgen = t_csn = float("inf")
        for _ in range(args.repeats):  # interleaved so both see the same machine load
            t, reference = best_time(lambda: calculator.get_pattern(structure), 1)
            t_pymatgen = min(t_pymatgen, t)
            t, peaks = best_time(lambda: simulate_peaks(structure, 1.5406), 1)
            t_csn = min(t_csn, t)
        pymatgen_times.append(t_pymatgen)
        csn_times.append(t_csn)
        agree += len(reference.x) == len(peaks) and bool(
            np.allclose(reference.x, peaks.two_theta, atol=1e-6) and np.allclose(reference.y, peaks.intensity, atol=1e-6)
        )
    pymatgen_times, csn_times = np.array(pymatgen_times), np.array(csn_times)
    ratios = pymatgen_times / csn_times

    arrays = []
    for _, structure in structures:
        coords, numbers, occupancies = _structure_arrays(structure, None)
        arrays.append((structure.lattice.matrix, coords, numbers, occupancies))
    sizes = np.array([len(a[2]) for a in arrays])

    def rate(selection):
        chosen = [a for a, keep in zip(arrays, selection) if keep]
        elapsed, _ = best_time(lambda: [simulate_reflections(*a, d_min=0.889) for a in chosen], args.repeats)
        return len(chosen) / elapsed, len(chosen)

    rate_all, n_all = rate(np.ones(len(arrays), dtype=bool))
    rate_big, n_big = rate(sizes >= 100)

    print(f"Machine: {platform.processor() or platform.machine()}, numpy {np.__version__}; "
          f"{len(structures)} structures (1-{sizes.max()} atoms incl. partial-occupancy rows), Cu Ka1.\n")
    print("| measure | value |")
    print("| --- | --- |")
    print(f"| pymatgen `get_pattern` total (2theta 0-90) | {pymatgen_times.sum():.3f} s |")
    print(f"| csn `simulate_peaks` total (2theta 0-90) | {csn_times.sum():.3f} s |")
    print(f"| speed-up, total time | {pymatgen_times.sum() / csn_times.sum():.1f}x |")
    print(f"| speed-up, median per structure (min-max) | {np.median(ratios):.1f}x ({ratios.min():.1f}-{ratios.max():.1f}x) |")
    print(f"| peak lists identical to pymatgen (positions and intensities within 1e-6) | {agree}/{len(structures)} |")
    print(f"| `simulate_reflections` rate, d_min 0.889 A, all {n_all} structures | {rate_all:.0f} structures/s |")
    print(f"| `simulate_reflections` rate, d_min 0.889 A, the {n_big} with >= 100 atoms | {rate_big:.0f} structures/s |")


if __name__ == "__main__":
    main()
