"""Evaluation of a space-group classifier on synthetic, simulated-real and measured sets, under
every domain prior: top-1/2/5, macro-F1, crystal-system accuracy, ECE, the paper's class-balanced
protocol and how many errors stay inside the true group's absence class."""

import csv
from pathlib import Path

import numpy as np

from ..nets.chunks import in_chunks
from ..priors import PRIOR_NAMES, prior_probabilities
from .metrics import summarize


def rendered_peak_set(dataset_dir, grid, seed=12345, limit=None, sources=None, max_peaks=256):
    """Render a peak-list dataset once (fixed seed): (values, masks, labels 1-based)."""
    import torch

    from ..synth.batches import grid_axis, render_items
    from ..synth.dataset import PeakDataset

    dataset = PeakDataset(dataset_dir)
    indices = np.arange(len(dataset))
    if sources is not None:
        indices = indices[np.isin(np.asarray(dataset.sources), sources)]
    if limit:
        indices = np.random.default_rng(seed).permutation(indices)[:limit]
    indices = np.sort(indices)
    generator = torch.Generator().manual_seed(seed)
    axis = grid_axis(grid)
    values, masks = [], []
    for start in range(0, len(indices), 512):
        v, m = render_items(dataset, indices[start:start + 512], axis, generator, max_peaks=max_peaks)
        values.append(v.numpy())
        masks.append(m.numpy())
    return np.concatenate(values), np.concatenate(masks), np.asarray(dataset.space_groups)[indices]


def measured_set(directory, grid):
    """A labelled measured set in the rruff-dev layout (labels.csv: file, space_group)."""
    from ..pattern import Pattern

    directory = Path(directory)
    values, masks, labels = [], [], []
    with open(directory / "labels.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            pattern = Pattern.from_file(directory / row["file"], wavelength=1.5418)
            v, m = grid.resample(pattern.two_theta, pattern.intensity, pattern.wavelength)
            values.append(v)
            masks.append(m)
            labels.append(int(row["space_group"]))
    return np.stack(values), np.stack(masks), np.asarray(labels)


def pdcif_set(directory, grid):
    """Measured profiles of Rietveld powder CIFs; the label is the refined structure's space group."""
    import warnings

    from pymatgen.io.cif import CifParser

    from ..pattern import Pattern

    values, masks, labels = [], [], []
    for path in sorted(Path(directory).glob("*.cif")):
        try:
            pattern = Pattern.from_file(path)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                structure = CifParser(str(path)).parse_structures(primitive=False)[0]
            label = structure.get_space_group_info(symprec=0.01)[1]
        except Exception:  # a CIF without a usable profile or structure is left out of this set
            continue
        v, m = grid.resample(pattern.two_theta, pattern.intensity, pattern.wavelength)
        values.append(v)
        masks.append(m)
        labels.append(label)
    return np.stack(values), np.stack(masks), np.asarray(labels)


def uniform_posteriors(classifier, values, masks, batch=256):
    """(N, 230) posteriors under the uniform prior (the network's own estimate)."""
    probabilities, _ = in_chunks(classifier.probabilities_on_grid, values, masks, batch)
    # undo the classifier's prior, whatever it was, to get back to the uniform-prior posterior
    prior = prior_probabilities(classifier.prior_name) if classifier.prior_name != "custom" else None
    if prior is not None:
        probabilities = probabilities / prior
        probabilities /= probabilities.sum(axis=1, keepdims=True)
    return probabilities


def apply_prior(uniform_probabilities, prior):
    p = uniform_probabilities * prior_probabilities(prior)
    return p / p.sum(axis=1, keepdims=True)


def evaluate_sets(classifier, sets: dict, priors=PRIOR_NAMES) -> dict:
    """{set name: {prior: metrics}} for sets given as {name: (values, masks, labels)}."""
    report = {}
    for name, (values, masks, labels) in sets.items():
        uniform = uniform_posteriors(classifier, values, masks)
        report[name] = {prior: summarize(apply_prior(uniform, prior), labels) for prior in priors}
    return report


def markdown_table(report: dict, keys=("count", "top1", "top2", "top5", "macro_f1", "crystal_system", "ece", "balanced_top1", "errors_in_absence_class")) -> str:
    lines = ["| set | prior | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for set_name, by_prior in report.items():
        for prior, metrics in by_prior.items():
            cells = []
            for key in keys:
                value = metrics.get(key, "")
                cells.append(str(value) if key in ("count",) or value == "" else f"{100 * value:.1f}" if key != "ece" else f"{value:.3f}")
            lines.append(f"| {set_name} | {prior} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
