"""Training-set build rate: `build_dataset` vs the reference path pyxtal + spglib + pymatgen.

Measures in one run:
1. per-stage cost of our path (generator, spglib label, peak simulation) in one process;
2. random crystals of the same space groups made the reference way (pyxtal's ``from_random``
   with our crystals' compositions + spglib + pymatgen ``XRDCalculator.get_pattern``, 2theta
   0-120 deg at Cu Ka1 = our d >= 0.889 A) and our way (Wyckoff generator + spglib +
   ``simulate_reflections``), interleaved in two halves -> speed-up ratio;
3. a real build of ``--count`` items with ``--workers`` processes -> items/s, projected time
   for 200,000 items.
Prints a markdown snippet for docs/benchmarks.md.

    nice -n 10 python benchmarks/bench_dataset.py --count 2000 --workers 2 --reference 30
"""

import argparse
import os
import tempfile
import time
import warnings
from collections import Counter

import numpy as np


def stage_costs(n_items, seed):
    """Mean seconds per item of each stage of our path, in this process."""
    from csn_plugin.synth import dataset, structures

    rng = np.random.default_rng(seed)
    totals = Counter()
    made, skipped, crystals = 0, 0, []
    while made < n_items:
        start = time.perf_counter()
        try:
            crystal = structures.sample_structure(rng, "natural")
        except structures.StructureSkipped:
            totals["generate"] += time.perf_counter() - start
            skipped += 1
            continue
        po = structures.sample_po_direction(rng)
        middle = time.perf_counter()
        structures.space_group_of(crystal.lattice, crystal.frac_coords, crystal.atomic_numbers)
        labelled = time.perf_counter()
        dataset.peaks_of(crystal, po)
        done = time.perf_counter()
        totals["generate"] += middle - start
        totals["spglib"] += labelled - middle
        totals["simulate"] += done - labelled
        made += 1
        crystals.append(crystal)
    return {stage: seconds / n_items for stage, seconds in totals.items()}, skipped, crystals


def ours_on(crystal_groups, rng):
    """Seconds for our path (generate + label + simulate) on random crystals of these groups."""
    from csn_plugin.synth import dataset, structures

    start = time.perf_counter()
    for group in crystal_groups:
        while True:
            try:
                crystal = structures.random_structure(group, rng)
                break
            except structures.StructureSkipped:
                continue
        structures.space_group_of(crystal.lattice, crystal.frac_coords, crystal.atomic_numbers)
        dataset.peaks_of(crystal, structures.sample_po_direction(rng))
    return time.perf_counter() - start


def reference_on(crystals):
    """Seconds (total, in from_random) and failures for pyxtal from_random + spglib + XRDCalculator on the same groups
    and compositions."""
    import spglib
    from pymatgen.analysis.diffraction.xrd import XRDCalculator
    from pyxtal import pyxtal

    from csn_plugin.synth.structures import SYMBOLS

    calculator = XRDCalculator(wavelength=1.5406)
    failures = 0
    generate_seconds = 0.0
    start = time.perf_counter()
    for crystal in crystals:
        numbers, counts = np.unique(crystal.atomic_numbers, return_counts=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                generate_start = time.perf_counter()
                generated = pyxtal()
                generated.from_random(3, crystal.requested_group, [SYMBOLS[z] for z in numbers], [int(c) for c in counts])
                structure = generated.to_pymatgen()
                generate_seconds += time.perf_counter() - generate_start
                cell = (structure.lattice.matrix, structure.frac_coords, [site.specie.Z for site in structure])
                spglib.get_symmetry_dataset(cell, symprec=1e-3)
                calculator.get_pattern(structure, two_theta_range=(0, 120))
        except Exception:  # pyxtal gives up on some compositions; the time still counts
            failures += 1
    return time.perf_counter() - start, generate_seconds, failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="items in the timed build")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reference", type=int, default=30, help="crystals made the reference way")
    parser.add_argument("--stages", type=int, default=300, help="items for the per-stage costs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from csn_plugin.synth.dataset import build_dataset
    from csn_plugin.synth.structures import group_table, real_structures

    real_structures()  # the cached pool, as in a build
    for number in range(1, 231):
        group_table(number)

    stages, skipped, crystals = stage_costs(args.stages, args.seed)
    randoms = [c for c in crystals if c.source == "random"][: args.reference]
    rng = np.random.default_rng(args.seed + 1)
    # interleave halves so load changes hit both paths alike
    half = len(randoms) // 2
    ours_seconds, reference_seconds, pyxtal_seconds, reference_failures = 0.0, 0.0, 0.0, 0
    for part in (randoms[:half], randoms[half:]):
        ours_seconds += ours_on([c.requested_group for c in part], rng)
        seconds, generate_seconds, failures = reference_on(part)
        reference_seconds += seconds
        pyxtal_seconds += generate_seconds
        reference_failures += failures

    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        manifest = build_dataset(os.path.join(directory, "bench"), args.count, seed=args.seed, workers=args.workers,
                                 progress=False)
        build_seconds = time.perf_counter() - start
    rate = manifest["count"] / build_seconds
    per_item = sum(stages.values())
    atoms = np.mean([len(c) for c in crystals])

    print(f"### Training-set build rate ({os.cpu_count()} CPU cores; other jobs may share them)\n")
    print("| stage (one process, natural mix) | ms per item | share |")
    print("| --- | ---: | ---: |")
    for stage in ("generate", "spglib", "simulate"):
        print(f"| {stage} | {1000 * stages[stage]:.1f} | {100 * stages[stage] / per_item:.0f} % |")
    print(f"| total | {1000 * per_item:.1f} | {args.stages} items, mean {atoms:.0f} atoms/cell, "
          f"{skipped} generator skips |\n")
    print(f"| path, {len(randoms)} random crystals of the same space groups | s per crystal |")
    print("| --- | ---: |")
    print(f"| ours: Wyckoff generator + spglib + simulate_reflections | {ours_seconds / len(randoms):.4f} |")
    print(f"| reference: pyxtal from_random (our compositions) + spglib + XRDCalculator (0-120 deg) | "
          f"{reference_seconds / len(randoms):.4f} ({reference_failures} pyxtal failures) |")
    print(f"| of which pyxtal from_random alone | {pyxtal_seconds / len(randoms):.4f} |")
    print(f"| **speed-up** | **{reference_seconds / ours_seconds:.1f}x** |\n")
    print(f"pyxtal from_random alone would allow at most {2 * len(randoms) / max(pyxtal_seconds, 1e-9):.1f} "
          f"structures/s on 2 cores (generator stage only; ours: {2 / stages['generate']:.0f}/s).\n")
    print(f"Build: {manifest['count']} items with {args.workers} workers in {build_seconds:.1f} s = "
          f"**{rate:.1f} items/s** -> 200,000 items in **{200000 / rate / 3600:.2f} h**; "
          f"skipped {manifest['skipped']}, requested-group agreement {manifest['requested_group_agreement']}.")


if __name__ == "__main__":
    main()
