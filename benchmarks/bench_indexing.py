"""Indexing and extinction analysis on real structures simulated and rendered like measured
data (true cells known), and on the measured rruff-dev patterns (crystal system by M20 bin).

    nice -n 10 python benchmarks/bench_indexing.py --per-system 20         # MP + AFLOW structures
    nice -n 10 python benchmarks/bench_indexing.py --synth /work/datasets/real --per-system 20
    nice -n 10 python benchmarks/bench_indexing.py --rruff                 # measured rruff-dev
    python benchmarks/bench_indexing.py --synth /work/datasets/real --per-system 30 --extinction-only

Real structures: a deterministic sample of the Materials Project CIFs in ../shared (every
``--stride``-th of the archive, at most 80 sites; when ``csn_plugin.synth`` provides a
development set with known cells, pass ``--synth``) and pymatgen's AFLOW prototypes, balanced
over crystal systems (``--per-system``). Each is rendered with ``csn_plugin.synth.render``'s
measured-like defaults (random zero shift and displacement, Ka1+Ka2, impurity lines in 40 %,
noise, background), its peaks found with ``find_peaks`` and indexed with ``index_pattern``.
Correct: the top candidate's reduced cell equals the true one within 0.5 % and 0.5 deg;
sub/supercell: a sublattice or superlattice of index 2-4 (reported separately).
Extinction: with the true conventional cell and with the indexed cell when it is right, the
rank of the true absence class, and the accuracy of "lattice + top absence class -> the
commonest group of that class under the ICSD prior".
"""

import argparse
import collections
import csv
import importlib.util
import json
import time
import warnings
from pathlib import Path

import numpy as np

from _shared import REPO, SHARED  # noqa: E402  (the checkout and ../shared/data)


def _cases():
    spec = importlib.util.spec_from_file_location("crystallography_cases", REPO / "tests" / "crystallography_cases.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _system(sg):
    from csn_plugin.symmetry import space_group

    return space_group(sg).crystal_system


def _family(system):
    return "hexagonal" if system == "trigonal" else system


def _val_items(path, count, seed):
    """Val-split structures (choose by these: the dev set is the test split) with their spglib
    conventional cell at symprec 0.1, the tolerance of the labels."""
    import spglib

    from evaluate_real import split_sample

    out = []
    for item in split_sample(path, count, "val", seed):
        r = item.record
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = spglib.get_symmetry_dataset((r.lattice, r.frac, r.numbers), symprec=0.1)
        if data is not None and int(data.number) == item.space_group:
            item.std_lattice = np.asarray(data.std_lattice)
            out.append(item)
    return out


def synth_pool(path, per_system, seed, split="dev"):
    """Balanced over the 7 crystal systems from the real-structure development set of
    ``csn_plugin.synth`` (structure types and minerals never in the training split), or with
    ``split="val"`` from the val split (for choosing settings)."""
    from csn_plugin.synth.devset import load_devset

    rng = np.random.default_rng(seed)
    by_system = collections.defaultdict(list)
    items = load_devset(path, balanced=True) if split == "dev" else _val_items(path, 40 * per_system, seed)
    for item in items:
        r = item.record
        if len(r.numbers) > 120:
            continue
        by_system[_system(item.space_group)].append((r.id, r.lattice, r.frac, r.numbers, r.occupancies, item.space_group,
                                                     item.std_lattice))
    pool = []
    for system in ("cubic", "tetragonal", "hexagonal", "trigonal", "orthorhombic", "monoclinic", "triclinic"):
        rows = by_system[system]
        pool += [rows[i] for i in rng.permutation(len(rows))[:per_system]]
    return pool


def structure_pool(cases, per_system, seed, stride):
    """Balanced over the 7 crystal systems: MP CIFs first, AFLOW prototypes to fill."""
    rng = np.random.default_rng(seed)
    by_system = collections.defaultdict(list)
    for row in cases.mp_structures(count=per_system * 12, stride=stride, max_sites=80):
        by_system[_system(row[5])].append(row)
    for row in cases.aflow_structures(max_sites=80):
        by_system[_system(row[5])].append(row)
    pool = []
    for system in ("cubic", "tetragonal", "hexagonal", "trigonal", "orthorhombic", "monoclinic", "triclinic"):
        rows = by_system[system]
        take = rng.permutation(len(rows))[:per_system]
        pool += [rows[i] for i in take]
    return pool


def conventional(lattice, frac, numbers, symprec=1e-3):
    """(Cell, Bravais lattice) of the spglib standard conventional cell (at ``symprec``, else 0.1)."""
    import spglib

    from csn_plugin.crystallography.cells import Cell
    from csn_plugin.symmetry import space_group

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = spglib.get_symmetry_dataset((lattice, frac, numbers), symprec=symprec)
        if data is None:
            data = spglib.get_symmetry_dataset((lattice, frac, numbers), symprec=0.1)
    return Cell.from_matrix(data.std_lattice), space_group(int(data.number)).bravais


def run_structures(args):
    cases = _cases()
    import torch

    from csn_plugin.crystallography import extinction_probabilities, find_peaks, index_pattern
    from csn_plugin.crystallography.cells import Cell, compare_lattices
    from csn_plugin.priors import prior_probabilities
    from csn_plugin.synth.render import RenderConfig
    from csn_plugin.symmetry import absence_class, absence_class_members, space_group

    torch.set_num_threads(1)
    icsd = prior_probabilities("icsd")
    if args.synth:
        pool = synth_pool(args.synth, args.per_system, args.seed, args.split)
    else:
        pool = structure_pool(cases, args.per_system, args.seed, args.stride)
    rows = []
    only = set(args.only.split(",")) if args.only else None
    for index, (name, lattice, frac, numbers, occ, sg, *known) in enumerate(pool):
        if only is not None and _system(sg) not in only:
            continue  # (the index keeps each pattern's render seed of the full run)
        config = RenderConfig().replace(p_full_range=1.0, step=(0.01, 0.01))
        x, y, _ = cases.render_known(lattice, frac, numbers, occ, seed=5000 + index, config=config)
        t0 = time.perf_counter()
        peaks = find_peaks(x, y, "CuKa")
        t1 = time.perf_counter()
        system = _system(sg)
        if known:  # the dev set's spglib conventional cell (symprec 0.1, as its labels)
            true_cell, true_lattice = Cell.from_matrix(known[0]), space_group(sg).bravais
        else:
            true_cell, true_lattice = conventional(lattice, frac, numbers)
        if args.extinction_only:
            rows.append(extinction_row(name, sg, system, peaks, true_cell, true_lattice, icsd))
            if args.verbose:
                print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows[-1].items()}), flush=True)
            continue
        result = index_pattern(peaks, time_limit=args.time_limit)
        t2 = time.perf_counter()
        row = {"name": name, "sg": sg, "system": system, "peaks": len(peaks), "peak_s": t1 - t0,
               "index_s": t2 - t1, "indexed": result.indexed, "timed_out": result.timed_out}
        top = result.candidates[0] if result.candidates else None
        if top is not None:
            # against the true lattice itself: the conventional cell with its centring (a stored
            # structure may hold a conventional or a supercell, which is not the lattice)
            relation, n = compare_lattices(top.cell, top.centring, true_cell, space_group(sg).symbol[0])
            row.update(relation=relation, index=n, lattice=top.lattice, found_system=top.crystal_system, M20=top.M20,
                       lines=top.peaks_used, indexed_lines=top.peaks_indexed)
        else:
            row.update(relation="none", lattice=None, found_system=None, M20=0.0)
        # extinction with the true conventional cell
        k_true = absence_class(sg)
        try:
            ext = extinction_probabilities(peaks, true_cell, lattice=true_lattice, zero_shift=0.0)
            row["ext_rank_true_cell"] = ext.classes.index(k_true) if k_true in ext.classes else -1
            top_members = absence_class_members(ext.top_class)
            guess = max(top_members, key=lambda n_: icsd[n_ - 1])
            row["ext_group_right_true_cell"] = guess == sg
            row["ext_s"] = None
        except Exception as error:  # report, do not stop the benchmark
            row["ext_error"] = repr(error)[:200]
        if top is not None and row["relation"] == "equivalent" and _family(system) == top.crystal_system:
            t3 = time.perf_counter()
            ext = extinction_probabilities(peaks, top)
            row["ext_s"] = time.perf_counter() - t3
            top_members = absence_class_members(ext.top_class)
            row["ext_rank_indexed"] = ext.classes.index(k_true) if k_true in ext.classes else -1
            row["ext_group_right_indexed"] = max(top_members, key=lambda n_: icsd[n_ - 1]) == sg
        rows.append(row)
        if args.verbose:
            print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    return rows


def true_cell_zero(peaks, cell, lattice, max_shift=0.12):
    """The zero shift (deg) that best lays the true cell's lines on the found peaks (the
    indexing refines it for an indexed cell; the rendered pattern has a random zero shift and
    sample displacement): a grid search of the robust mean distance of the strongest 20 peaks."""
    from csn_plugin.crystallography.cells import allowed_by_centring
    from csn_plugin.crystallography.extinction import _all_hkl
    from csn_plugin.physics import q_to_two_theta, two_theta_to_q

    if not len(peaks):
        return 0.0
    lo, hi = peaks.two_theta_range
    wl = peaks.wavelength
    hkl, q = _all_hkl(cell.reciprocal_metric, float(two_theta_to_q(lo, wl)), float(two_theta_to_q(hi + 1, wl)))
    centring = lattice[1] if lattice[1] != "S" else "C"
    predicted = np.unique(np.round(q_to_two_theta(q[allowed_by_centring(hkl, centring)], wl), 4))
    strongest = peaks.two_theta[np.argsort(-peaks.intensity)[:20]]
    shifts = np.arange(-max_shift, max_shift + 1e-9, 0.002)
    cost = [np.minimum(np.abs(strongest[:, None] - predicted[None, :] - z).min(axis=1), 0.05).mean() for z in shifts]
    return float(shifts[int(np.argmin(cost))])


def extinction_row(name, sg, system, peaks, true_cell, true_lattice, icsd):
    """Extinction analysis alone, with the true conventional cell, under a uniform and the ICSD
    class prior: rank and log probability of the true absence class, and whether the commonest
    ICSD group of the top class is the true group."""
    from csn_plugin.crystallography import extinction_probabilities
    from csn_plugin.symmetry import absence_class, absence_class_members

    row = {"name": name, "sg": sg, "system": system, "peaks": len(peaks)}
    k_true = absence_class(sg)
    zero = true_cell_zero(peaks, true_cell, true_lattice)
    row["zero"] = zero
    for prior in ("uniform", "icsd"):
        t0 = time.perf_counter()
        ext = extinction_probabilities(peaks, true_cell, lattice=true_lattice, zero_shift=zero, prior=prior)
        row[f"{prior}_s"] = time.perf_counter() - t0
        row[f"{prior}_rank"] = ext.classes.index(k_true) if k_true in ext.classes else -1
        row[f"{prior}_logp"] = float(np.log(max(ext[k_true], 1e-12))) if k_true in ext.classes else float(np.log(1e-12))
        row[f"{prior}_group_right"] = max(absence_class_members(ext.top_class), key=lambda n_: icsd[n_ - 1]) == sg
        if prior == "icsd":  # what a temperature scan needs: log-likelihoods, class log priors, the true class
            row["loglik"] = [float(v) for v in ext.log_likelihoods]
            row["log_prior"] = [float(np.log(sum(icsd[n_ - 1] for n_ in m))) for m in ext.members]
            row["true_index"] = ext.classes.index(k_true) if k_true in ext.classes else -1
        row["classes"] = len(ext.classes)
    return row


def by_system(rows):
    """(crystal system, its rows) for each system with rows, then ("all", every row)."""
    for system in ("cubic", "tetragonal", "hexagonal", "trigonal", "orthorhombic", "monoclinic", "triclinic", "all"):
        sel = [r for r in rows if system == "all" or r["system"] == system]
        if sel:
            yield system, sel


def summarize_extinction(rows):
    out = {}
    for system, sel in by_system(rows):
        out[system] = {"n": len(sel), "classes_median": float(np.median([r["classes"] for r in sel]))}
        for prior in ("uniform", "icsd"):
            out[system][prior] = {
                "true_class_first": float(np.mean([r[f"{prior}_rank"] == 0 for r in sel])),
                "true_class_top3": float(np.mean([0 <= r[f"{prior}_rank"] < 3 for r in sel])),
                "mean_log_p_true": float(np.mean([r[f"{prior}_logp"] for r in sel])),
                "group_right": float(np.mean([r[f"{prior}_group_right"] for r in sel])),
            }
        out[system]["seconds_median"] = float(np.median([r["icsd_s"] for r in sel]))
    return out


def summarize(rows):
    out = {}
    for system, sel in by_system(rows):
        n = len(sel)
        rel = collections.Counter(r["relation"] for r in sel)
        ranks_t = [r.get("ext_rank_true_cell", -1) for r in sel if "ext_rank_true_cell" in r]
        ranks_i = [r["ext_rank_indexed"] for r in sel if "ext_rank_indexed" in r]
        out[system] = {
            "n": n,
            "correct_first": rel["equivalent"] / n,
            "sub_or_supercell": (rel["subcell"] + rel["supercell"]) / n,
            "wrong": rel["different"] / n,
            "not_indexed_or_none": sum(1 for r in sel if not r["indexed"]) / n,
            "crystal_family_right": sum(1 for r in sel if r.get("found_system") == _family(r["system"]) and r["indexed"]) / n,
            "index_s_median": float(np.median([r["index_s"] for r in sel])),
            "peak_s_median": float(np.median([r["peak_s"] for r in sel])),
            "ext_true_class_first_true_cell": (float(np.mean([k == 0 for k in ranks_t])) if ranks_t else None),
            "ext_group_right_true_cell": (float(np.mean([r["ext_group_right_true_cell"] for r in sel if "ext_group_right_true_cell" in r]))
                                          if ranks_t else None),
            "ext_true_class_first_indexed": (float(np.mean([k == 0 for k in ranks_i])) if ranks_i else None),
            "ext_n_indexed": len(ranks_i),
        }
    return out


def run_rruff(args):
    from csn_plugin.crystallography import find_peaks, index_pattern

    labels = {}
    with open(SHARED / "rruff-dev" / "labels.csv") as handle:
        for row in csv.DictReader(handle):
            labels[row["file"]] = row
    rows = []
    for name in sorted(labels)[: args.count if args.count else None]:
        data = np.loadtxt(SHARED / "rruff-dev" / name, comments="#")
        t0 = time.perf_counter()
        peaks = find_peaks(data[:, 0], data[:, 1], "CuKa")
        result = index_pattern(peaks, time_limit=args.time_limit)
        elapsed = time.perf_counter() - t0
        top = result.candidates[0] if result.candidates else None
        true = _family(labels[name]["crystal_system"])
        rows.append({"file": name, "true": true, "found": top.crystal_system if top else None,
                     "lattice": top.lattice if top else None, "M20": top.M20 if top else 0.0,
                     "indexed": result.indexed, "seconds": elapsed, "peaks": len(peaks)})
        if args.verbose:
            print(json.dumps(rows[-1]), flush=True)
    bins = [(0, 6), (6, 10), (10, 20), (20, 1e9)]
    out = {"n": len(rows), "seconds_median": float(np.median([r["seconds"] for r in rows]))}
    for lo, hi in bins:
        sel = [r for r in rows if lo <= r["M20"] < hi]
        out[f"M20 {lo}-{hi if hi < 1e9 else 'inf'}"] = {
            "n": len(sel), "crystal_family_right": (sum(r["found"] == r["true"] for r in sel) / len(sel)) if sel else None}
    out["all"] = sum(r["found"] == r["true"] for r in rows) / max(len(rows), 1)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-system", type=int, default=20)
    parser.add_argument("--stride", type=int, default=53)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=30.0)
    parser.add_argument("--synth", default=None,
                        help="the csn_plugin.synth dev set (a devset.npz or its build directory) instead of MP/AFLOW")
    parser.add_argument("--rruff", action="store_true")
    parser.add_argument("--count", type=int, default=0, help="rruff: first N files (0 = all)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--extinction-only", action="store_true",
                        help="no indexing: extinction analysis with the true cell, uniform and ICSD class priors")
    parser.add_argument("--split", choices=("dev", "val"), default="dev",
                        help="--synth: the dev set's balanced subset (test split) or val-split structures")
    parser.add_argument("--rows", type=Path, default=None, help="write every pattern's row here (JSON)")
    parser.add_argument("--only", default=None,
                        help="comma-separated crystal systems to run from the same balanced pool (the others skipped)")
    args = parser.parse_args()
    if args.rruff:
        summary = run_rruff(args)
    else:
        rows = run_structures(args)
        summary = summarize_extinction(rows) if args.extinction_only else summarize(rows)
        if args.rows:
            args.rows.write_text(json.dumps(rows))
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
