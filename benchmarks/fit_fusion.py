"""Fit the fusion of crystallographic evidence with the network on simulated real structures, and
report network-only beside fused on held-out simulated structures and the measured sets.

Patterns: dev-set structures (test split of ``csn dataset real build``: structure types and minerals
never trained on) rendered like measured data (``csn_plugin.synth.render``, Ka1+Ka2, backgrounds, noise,
impurities) on a 0.01-deg grid from 5 to 90 deg, the measured points the crystallography reads.
The fit set (grid search on the negative log-likelihood) is what a user measures: structures drawn
at random from the val split (the natural distribution of structure types never trained on: a
user's sample is not capped per group) and, for ``--known-share`` of it (default one half, set a
priori: a lab's sample is as likely a known phase as a new one), structures of the train split
(types the network has seen). The test split (a natural sample, and the dev set, which caps each
group) reports, with rruff-dev, the lab examples and the pdCIF profiles (nothing is fitted to
them). Until session 6 the fit used half of the dev set, in session 7 the val split alone: both
left measured patterns underconfident (rruff-dev ECE 0.148, 0.156: mean confidence 0.30 at 44 %
top-1), since the measured minerals are mostly known types.

    python benchmarks/fit_fusion.py --devset /work/datasets/real --count 300 --cache fusion_cache.pkl \
        --write csn_plugin/data/fusion.json --json docs/fusion.json

``--cache`` keeps every set's network posteriors and evidence (about 25 minutes to compute on the
2 cores): a refit with other options then takes 2-3 minutes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import SHARED  # noqa: E402

STEP = 0.01
FINE = np.round(np.arange(5.0, 90.0 + STEP / 2, STEP), 4)


def rendered_devset(devset, count, seed=7):
    """[(two_theta, intensity, label)] of ``count`` dev structures rendered on the fine grid."""
    from csn_plugin.synth.devset import load_devset

    items = load_devset(devset)
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(items), size=min(count, len(items)), replace=False))
    return rendered_items([items[i] for i in chosen], seed)


def rendered_split(data, count, which, seed=7):
    """[(two_theta, intensity, label)] of ``count`` structures drawn at random from the ``which``
    split ("val" or "test": the natural distribution of unseen structure types)."""
    from evaluate_real import split_sample

    return rendered_items(split_sample(data, count, which, seed), seed)


def rendered_items(items, seed):
    """Dev-set-like items rendered like measured data on the fine grid (items without peaks or
    with under 200 measured points are left out)."""
    import torch

    from csn_plugin.synth.render import render
    from csn_plugin.synth.devset import devset_peaks

    (d, f2m, cos2), labels = devset_peaks(items, seed)
    grid = torch.tensor(FINE, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, len(items), 64):
        part = slice(start, start + 64)
        values, masks = render(torch.from_numpy(d[part]), torch.from_numpy(f2m[part]), grid, generator, cos2=torch.from_numpy(cos2[part]))
        for v, m, label, row in zip(values.numpy(), masks.numpy(), labels[part], f2m[part]):
            keep = m > 0
            if keep.sum() < 200 or not row.any():
                continue
            out.append((FINE[keep], 1000 * v[keep], int(label)))
    return out


def measured_sets(data):
    """{name: [(two_theta, intensity, wavelength, label)]} of the measured development sets."""
    import csv

    from csn_plugin.pattern import Pattern

    data = Path(data)
    sets = {}
    if not (data / "rruff-dev").is_dir():
        return sets
    rows = list(csv.DictReader(open(data / "rruff-dev" / "labels.csv", newline="")))
    sets["rruff-dev"] = []
    for row in rows:
        p = Pattern.from_file(data / "rruff-dev" / row["file"], wavelength=1.5418)
        sets["rruff-dev"].append((p.two_theta, p.intensity, p.wavelength, int(row["space_group"])))
    examples = {"MnO": (225,), "Mn2O3": (206,), "TiO2": (141,), "MnO2": (136,), "LiMnO2": (59, 141)}
    sets["examples"] = []
    for name, labels in examples.items():
        p = Pattern.from_file(data / "examples" / f"{name}.xy")
        sets["examples"].append((p.two_theta, p.intensity, p.wavelength, labels))
    import warnings

    from pymatgen.io.cif import CifParser

    sets["pdcif"] = []
    for path in sorted((data / "pdcif").glob("*.cif")):
        try:
            p = Pattern.from_file(path)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                label = CifParser(str(path)).parse_structures(primitive=False)[0].get_space_group_info(symprec=0.01)[1]
        except Exception:  # a CIF without a usable profile or structure is left out of the set
            continue
        sets["pdcif"].append((p.two_theta, p.intensity, p.wavelength, (label,)))
    return sets


def network_and_evidence(classifier, items):
    """Network posteriors (N, 230) and evidence per item [(two_theta, intensity, wavelength, label)]."""
    from csn_plugin.pattern import Pattern

    patterns = [Pattern(t, y, wavelength=w, source=f"item-{i}") for i, (t, y, w, _) in enumerate(items)]
    probabilities = []
    evidence = []
    for start in range(0, len(patterns), 64):
        chunk = patterns[start:start + 64]
        _, values, masks = classifier._to_grid(chunk, None)
        p, _ = classifier.probabilities_on_grid(values, masks)
        probabilities.append(p)
        evidence.extend(classifier._evidence(chunk, p))
    return np.concatenate(probabilities), evidence


def labels_of(items):
    return [item[3] if isinstance(item[3], tuple) else (item[3],) for item in items]


def scores(probabilities, labels):
    """top-1, top-5, crystal system, NLL and ECE (15 bins) for label tuples (any counts)."""
    from csn_plugin.symmetry import group_to_crystal_system

    system_of = group_to_crystal_system()
    order = np.argsort(-probabilities, axis=1)
    top1 = np.array([order[i, 0] + 1 in lab for i, lab in enumerate(labels)])
    top5 = np.array([bool(set(order[i, :5] + 1) & set(lab)) for i, lab in enumerate(labels)])
    system = np.array([system_of[order[i, 0]] == system_of[lab[0] - 1] for i, lab in enumerate(labels)])
    p_true = np.array([probabilities[i, np.array(lab) - 1].sum() for i, lab in enumerate(labels)])
    confidence = probabilities.max(axis=1)
    bins = np.minimum((confidence * 15).astype(int), 14)
    ece = sum(abs(top1[bins == b].mean() - confidence[bins == b].mean()) * (bins == b).mean() for b in range(15) if (bins == b).any())
    return {"count": len(labels), "top1": float(top1.mean()), "top5": float(top5.mean()), "crystal_system": float(system.mean()),
            "nll": float(-np.log(np.clip(p_true, 1e-12, None)).mean()), "ece": float(ece)}


def fused_all(p_net, evidence, prior, params):
    from csn_plugin.inference.fusion import fuse

    return np.stack([fuse(p, e, prior, params)[0] for p, e in zip(p_net, evidence)])


def fit(p_net, evidence, labels, prior):
    from csn_plugin.inference.fusion import FusionParams

    best = None
    for mid, slope, cap, beta, gamma in itertools.product((4, 6, 8, 12, 20, 40), (1.0, 2.0, 4.0, 8.0), (0.8, 0.9, 0.97, 0.995),
                                                          (0.0, 0.25, 0.5, 0.75, 1.0), (0.0, 0.5, 1.0)):
        params = FusionParams(m20_mid=mid, slope=slope, max_weight=cap, beta=beta, gamma=gamma)
        nll = scores(fused_all(p_net, evidence, prior, params), labels)["nll"]
        if best is None or nll < best[0]:
            best = (nll, params)
    params = best[1]
    best_s = None
    for spread in (0.0, 1.0, 2.0, 4.0, 8.0, 16.0):  # alternative cells of other families (0: the best cell alone)
        candidate = FusionParams(**{**params.__dict__, "cell_spread": spread})
        nll = scores(fused_all(p_net, evidence, prior, candidate), labels)["nll"]
        if best_s is None or nll < best_s[0] - 1e-4:
            best_s = (nll, candidate)
    params = best_s[1]
    best_k = None
    for per_param in (0.0, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8):  # the M20 a cell needs grows with its free parameters
        candidate = FusionParams(**{**params.__dict__, "m20_per_param": per_param})
        nll = scores(fused_all(p_net, evidence, prior, candidate), labels)["nll"]
        if best_k is None or nll < best_k[0] - 1e-4:
            best_k = (nll, candidate)
    params = best_k[1]
    best_t = None
    for temperature in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.15, 1.3, 1.5, 1.75, 2.0, 2.5, 3.0):
        candidate = FusionParams(**{**params.__dict__, "temperature": temperature})
        nll = scores(fused_all(p_net, evidence, prior, candidate), labels)["nll"]
        if best_t is None or nll < best_t[0]:
            best_t = (nll, candidate)
    return best_t[1]


SIMULATED = {  # name: how its structures are drawn (a function of the build folder and the count)
    "simulated-val-fit": lambda data, count: rendered_split(data, count, "val"),
    "simulated-train-known": lambda data, count: rendered_split(data, count, "train", seed=11),
    "simulated-test-natural": lambda data, count: rendered_split(data, count, "test"),
    "simulated-devset": lambda data, count: rendered_devset(data, count),
}


def all_sets(classifier, args, sets=None):
    """{name: (network posteriors, evidence, labels)} of the fit sets, the simulated report sets and
    the measured sets (only those missing from ``sets``); and the seconds per pattern (network +
    crystallography) of the last simulated set computed."""
    sets = dict(sets or {})
    elapsed_per = None
    for name, draw in SIMULATED.items():
        if name in sets:
            continue
        t0 = time.perf_counter()
        items = [(t, y, 1.5406, label) for t, y, label in draw(args.devset, args.count)]
        p, ev = network_and_evidence(classifier, items)
        elapsed_per = (time.perf_counter() - t0) / max(len(items), 1)
        sets[name] = (p, ev, labels_of(items))
    measured = [name for name in ("rruff-dev", "examples", "pdcif") if name not in sets]
    if measured:
        for name, items in measured_sets(args.shared).items():
            p, ev = network_and_evidence(classifier, items)
            sets[name] = (p, ev, labels_of(items))
    return sets, elapsed_per


def fit_set(sets, known_share, seed=0):
    """The fit set: val-split structures (unseen types) and, for ``known_share`` of it, train-split
    structures (a user's sample is often a known phase: a mineral lab measures known minerals)."""
    p_new, ev_new, lab_new = sets["simulated-val-fit"]
    p_known, ev_known, lab_known = sets["simulated-train-known"]
    n = len(lab_new)
    n_known = min(int(round(n * known_share / max(1 - known_share, 1e-9))), len(lab_known)) if known_share < 1 else len(lab_known)
    n_new = n if known_share < 1 else 0
    take = np.random.default_rng(seed).permutation(len(lab_known))[:n_known]
    p = np.concatenate([p_new[:n_new], p_known[take]])
    return p, list(ev_new[:n_new]) + [ev_known[i] for i in take], list(lab_new[:n_new]) + [lab_known[i] for i in take]


def with_alternatives(evidence, prior):
    """The evidence with its alternative cells analysed (caches written before session 8 hold the
    best cell's extinction analysis only)."""
    import dataclasses

    from csn_plugin.crystallography.evidence import analyse_alternatives

    if evidence is None or evidence.cell is None or evidence.extinction is None or evidence.alternatives:
        return evidence
    return dataclasses.replace(evidence, alternatives=analyse_alternatives(evidence.peaks, evidence.indexing, prior=prior))


def with_temperature(evidence, temperature, prior):
    """The evidence with its extinction analyses (best cell and alternatives) redone at another
    likelihood temperature."""
    import dataclasses

    from csn_plugin.crystallography import extinction_probabilities

    if evidence is None or evidence.cell is None or evidence.extinction is None:
        return evidence

    def again(cell):
        return extinction_probabilities(evidence.peaks, cell, prior=prior, temperature=temperature)

    return dataclasses.replace(evidence, extinction=again(evidence.cell),
                               alternatives=tuple((cell, again(cell)) for cell, _ in evidence.alternatives))


def with_family_prior(evidence, strength, prior):
    """The evidence as the indexing would give it with the Occam term at ``strength``
    (``indexing.rerank``; the extinction analyses redone where the best cell changed, the
    alternatives within the default window, as :func:`with_alternatives`): the cache is computed
    once, the strength varied after."""
    import dataclasses

    from csn_plugin.crystallography import extinction_probabilities
    from csn_plugin.crystallography.evidence import analyse_alternatives
    from csn_plugin.crystallography.indexing import rerank

    if evidence is None or evidence.indexing is None or not evidence.indexing.candidates:
        return evidence
    indexing = rerank(evidence.indexing, prior, strength)
    best = indexing.best
    if best is None:
        return dataclasses.replace(evidence, indexing=indexing, cell=None, extinction=None, alternatives=())
    old = evidence.cell
    same = old is not None and (old.lattice, old.volume, old.evidence) == (best.lattice, best.volume, best.evidence)
    extinction = evidence.extinction if same else extinction_probabilities(evidence.peaks, best, prior=prior)
    return dataclasses.replace(evidence, indexing=indexing, cell=best, extinction=extinction,
                               alternatives=analyse_alternatives(evidence.peaks, indexing, prior=prior))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devset", required=True, help="a csn dataset real build directory (devset.npz)")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--model", default=None)
    parser.add_argument("--time-limit", type=float, default=30.0)
    parser.add_argument("--shared", default=str(SHARED), help="the shared data folder (default ../shared/data)")
    parser.add_argument("--write", default=None, help="write the fitted parameters here (csn_plugin/data/fusion.json)")
    parser.add_argument("--json", default=None, help="write the full report here")
    parser.add_argument("--cache", default=None,
                        help="a pickle of the network posteriors and evidence of every set: written when absent, "
                             "read when present (fits of other settings then take seconds)")
    parser.add_argument("--known-share", type=float, default=0.5,
                        help="share of train-split structures (known types) in the fit set, the rest val split")
    parser.add_argument("--extinction-temperature", type=float, default=None,
                        help="recompute the extinction of every indexed cell at this likelihood temperature "
                             "(default: as the evidence was computed, the package's LIKELIHOOD_TEMPERATURE)")
    parser.add_argument("--family-prior-strength", type=float, default=None,
                        help="re-rank every cached indexing with the crystal-family Occam term at this strength "
                             "(default: as the evidence was computed, indexing.FAMILY_PRIOR_STRENGTH)")
    parser.add_argument("--params", default=None,
                        help="score the parameters of this fusion.json on every set instead of fitting (before/after tables)")
    args = parser.parse_args()

    from csn_plugin.inference.classifier import SpaceGroupClassifier
    from csn_plugin.inference.fusion import FusionParams

    classifier = SpaceGroupClassifier(model=args.model, device="cpu", time_limit=args.time_limit, fusion=FusionParams())
    prior = classifier._prior
    cached, elapsed_per = {}, None
    if args.cache and Path(args.cache).exists():
        with open(args.cache, "rb") as handle:
            cached, elapsed_per = pickle.load(handle)
    sets, elapsed_new = all_sets(classifier, args, cached)
    elapsed_per = elapsed_per if elapsed_new is None else elapsed_new
    counts = classifier._prior_counts()
    filled = {name: (p, [with_alternatives(e, counts) for e in ev], lab) for name, (p, ev, lab) in sets.items()}
    # (an evidence with no alternative within the window comes back as a new object with none:
    # not a change, and rewriting the cache then would break a second run reading it)
    changed = any(a is not b and bool(b.alternatives) for name in sets for a, b in zip(sets[name][1], filled[name][1]))
    sets = filled
    if args.cache and (set(sets) != set(cached) or changed):
        with open(args.cache, "wb") as handle:
            pickle.dump((sets, elapsed_per), handle)
    if args.extinction_temperature is not None:
        sets = {name: (p, [with_temperature(e, args.extinction_temperature, counts) for e in ev], lab)
                for name, (p, ev, lab) in sets.items()}
    if args.family_prior_strength is not None:
        sets = {name: (p, [with_family_prior(e, args.family_prior_strength, counts) for e in ev], lab)
                for name, (p, ev, lab) in sets.items()}
    p_fit, ev_fit, lab_fit = fit_set(sets, args.known_share)
    if args.params:
        fields = json.loads(Path(args.params).read_text())["params"]
        params = FusionParams(**{k: float(v) for k, v in fields.items() if k in FusionParams.__dataclass_fields__})
    else:
        params = fit(p_fit, ev_fit, lab_fit, prior)
    fitted_on = (f"{len(lab_fit)} rendered structures: val split (unseen structure types, natural distribution) "
                 f"with a {args.known_share:.0%} share of train-split structures (known types)")
    if args.params:
        fitted_on = f"not fitted: the parameters of {args.params}, scored"
    if args.extinction_temperature is not None:
        fitted_on += f", extinction temperature {args.extinction_temperature:g}"
    if args.family_prior_strength is not None:
        fitted_on += f", family prior strength {args.family_prior_strength:g}"
    print(f"fitted on {fitted_on}: {params}")
    report = {"params": params.__dict__, "fitted_on": fitted_on, "seconds_per_pattern_simulated": elapsed_per,
              "fit_set_nll": scores(fused_all(p_fit, ev_fit, prior, params), lab_fit)["nll"], "sets": {}}
    for name, (p, ev, lab) in sets.items():
        network = scores(p, lab)
        fused = scores(fused_all(p, ev, prior, params), lab)
        indexed = float(np.mean([e is not None and e.cell is not None for e in ev]))
        report["sets"][name] = {"network_only": network, "fused": fused, "indexed_fraction": indexed}
        print(f"{name}: n={network['count']} indexed {indexed:.0%} | network top1 {network['top1']:.1%} top5 {network['top5']:.1%} "
              f"system {network['crystal_system']:.1%} ECE {network['ece']:.3f} | fused top1 {fused['top1']:.1%} "
              f"top5 {fused['top5']:.1%} system {fused['crystal_system']:.1%} ECE {fused['ece']:.3f}")
    if args.write:
        Path(args.write).write_text(json.dumps({"params": params.__dict__, "fitted_on": report["fitted_on"],
                                                "command": "python " + " ".join(sys.argv)}, indent=2) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    classifier.close()


if __name__ == "__main__":
    main()
