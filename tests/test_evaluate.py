"""Evaluation: measured/peak-list/powder-CIF sets, priors applied to posteriors, the report table and
``csn evaluate``, with a tiny model trained here."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from csn_plugin.cli.main import cli
from csn_plugin.evaluation.sets import (
    apply_prior,
    evaluate_sets,
    markdown_table,
    measured_set,
    pdcif_set,
    rendered_peak_set,
    uniform_posteriors,
)
from csn_plugin.grid import ModelGrid
from csn_plugin.priors import PRIOR_NAMES, prior_probabilities

pytestmark = pytest.mark.one_thread

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RRUFF = SHARED / "rruff-dev"
PDCIF = SHARED / "pdcif"
needs_rruff = pytest.mark.skipif(not (RRUFF / "labels.csv").is_file(), reason=f"shared data not found at {RRUFF}")
needs_pdcif = pytest.mark.skipif(not PDCIF.is_dir(), reason=f"shared data not found at {PDCIF}")
GRID = ModelGrid(step=0.1)


@pytest.fixture(scope="module")
def dataset_dir(tiny_dataset_dir):
    return tiny_dataset_dir


@pytest.fixture(scope="module")
def model_path(dataset_dir, tmp_path_factory):
    from csn_plugin.training.train import TrainConfig, train

    out = tmp_path_factory.mktemp("run")
    train(TrainConfig(dataset=str(dataset_dir), out=str(out), steps=6, batch_size=8, val_every=3, checkpoint_every=3,
                      model={"dim": 32, "heads": 2, "gau_layers": 1, "gau_key_dim": 16, "stem_channels": [8, 16, 32]},
                      grid_step=0.1, val_size=8, val_fraction=0.2, warmup=2))
    return out / "model.safetensors"


@pytest.fixture(scope="module")
def classifier(model_path):
    from csn_plugin.inference.classifier import SpaceGroupClassifier

    return SpaceGroupClassifier(model=model_path, device="cpu")


@pytest.fixture(scope="module")
def rruff(classifier):
    if not (RRUFF / "labels.csv").is_file():
        pytest.skip(f"shared data not found at {RRUFF}")
    return measured_set(RRUFF, classifier.grid)


@needs_rruff
def test_measured_set_reads_every_labelled_pattern(rruff):
    values, masks, labels = rruff
    with open(RRUFF / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 177
    assert values.shape == masks.shape == (177, GRID.size)
    np.testing.assert_array_equal(labels, [int(row["space_group"]) for row in rows])
    assert len(np.unique(labels)) == 46  # as the shared README states
    np.testing.assert_allclose(values.max(axis=1), 1.0)
    # 5-90 deg at Cu Ka (1.5418 A) covers (nearly) the whole Cu Ka1 grid of 5-90 deg
    assert masks.sum(axis=1).min() >= GRID.size - 3


def test_rendered_peak_set(dataset_dir):
    from csn_plugin.synth.dataset import PeakDataset

    values, masks, labels = rendered_peak_set(dataset_dir, GRID, limit=10)
    assert values.shape == masks.shape == (10, GRID.size)
    assert np.isin(labels, np.asarray(PeakDataset(dataset_dir).space_groups)).all()
    assert np.all(values.max(axis=1) > 0)
    again = rendered_peak_set(dataset_dir, GRID, limit=10)  # fixed seed: the same set
    np.testing.assert_array_equal(values, again[0])
    np.testing.assert_array_equal(labels, again[2])


@needs_pdcif
def test_pdcif_set_labels_from_the_refined_structures():
    values, masks, labels = pdcif_set(PDCIF, GRID)
    names = sorted(p.name for p in PDCIF.glob("*.cif"))
    assert len(labels) == len(names) == 15
    assert np.all((labels >= 1) & (labels <= 230))
    # Mg2Si and Mg2Sn are antifluorite, Fm-3m (225)
    for i, name in enumerate(names):
        if name.startswith("gw5052Mg2S"):
            assert labels[i] == 225, name
    assert np.all(masks.sum(axis=1) > 100) and np.allclose(values.max(axis=1), 1.0)


def test_apply_prior():
    rng = np.random.default_rng(0)
    posteriors = rng.random((5, 230))
    posteriors /= posteriors.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(apply_prior(posteriors, "uniform"), posteriors)  # the identity
    flat = np.full((2, 230), 1 / 230)
    np.testing.assert_allclose(apply_prior(flat, "mp"), np.tile(prior_probabilities("mp"), (2, 1)))
    cod = apply_prior(posteriors, "cod")
    np.testing.assert_allclose(cod.sum(axis=1), 1.0)
    # Bayes' rule: the odds of two groups move by the ratio of their prior probabilities
    prior = prior_probabilities("cod")
    np.testing.assert_allclose(cod[:, 13] / cod[:, 0], posteriors[:, 13] / posteriors[:, 0] * prior[13] / prior[0])


def test_uniform_posteriors_undo_the_classifier_prior(model_path, classifier, dataset_dir):
    from csn_plugin.inference.classifier import SpaceGroupClassifier

    values, masks, _ = rendered_peak_set(dataset_dir, classifier.grid, limit=6)
    uniform = uniform_posteriors(classifier, values, masks)
    with_cod = SpaceGroupClassifier(model=model_path, device="cpu", prior="cod")
    raw_cod, _ = with_cod.probabilities_on_grid(values, masks)
    assert not np.allclose(raw_cod, uniform, atol=1e-4)  # the prior does act on the classifier
    np.testing.assert_allclose(uniform_posteriors(with_cod, values, masks), uniform, rtol=1e-4, atol=1e-7)


@needs_rruff
def test_evaluate_sets_reports_every_prior(classifier, rruff, dataset_dir):
    sets = {"rruff-dev": rruff, "synthetic": rendered_peak_set(dataset_dir, classifier.grid, limit=12)}
    report = evaluate_sets(classifier, sets)
    assert set(report) == {"rruff-dev", "synthetic"}
    for name, by_prior in report.items():
        assert tuple(by_prior) == PRIOR_NAMES
        for prior, metrics in by_prior.items():
            assert metrics["count"] == len(sets[name][2])
            assert 0 <= metrics["top1"] <= metrics["top2"] <= metrics["top5"] <= 1
            assert 0 <= metrics["ece"] <= 1 and 0 <= metrics["crystal_system"] <= 1
    # rruff-dev has classes with more than 10 items: the balanced protocol applies
    assert report["rruff-dev"]["uniform"]["balanced_classes"] >= 1
    # an informative prior changes the answers of a near-chance model
    assert report["rruff-dev"]["cod"] != report["rruff-dev"]["uniform"]

    table = markdown_table(report)
    lines = table.splitlines()
    assert len(lines) == 2 + 2 * len(PRIOR_NAMES)
    assert lines[0].startswith("| set | prior | count | top1")
    for name in sets:
        for prior in PRIOR_NAMES:
            assert sum(line.startswith(f"| {name} | {prior} |") for line in lines) == 1
    rruff_uniform = next(line for line in lines if line.startswith("| rruff-dev | uniform |"))
    cells = [cell.strip() for cell in rruff_uniform.strip("|").split("|")]
    assert cells[2] == "177"
    assert float(cells[3]) == pytest.approx(100 * report["rruff-dev"]["uniform"]["top1"], abs=0.05)


def test_markdown_table_formats_by_hand():
    report = {"set-a": {"uniform": {"count": 4, "top1": 0.5, "ece": 0.1234}}}
    table = markdown_table(report, keys=("count", "top1", "ece", "balanced_top1"))
    assert table.splitlines() == [
        "| set | prior | count | top1 | ece | balanced_top1 |",
        "|---|---|---|---|---|---|",
        "| set-a | uniform | 4 | 50.0 | 0.123 |  |",
    ]


@needs_rruff
def test_cli_evaluate(model_path, dataset_dir, tmp_path):
    out = tmp_path / "report.json"
    result = CliRunner().invoke(cli, ["evaluate", "--model", str(model_path), "--measured", str(RRUFF),
                                      "--test-dataset", str(dataset_dir), "--test-limit", "8", "--json", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert set(report) == {"rruff-dev", "synthetic"}
    assert report["rruff-dev"]["uniform"]["count"] == 177 and report["synthetic"]["mp"]["count"] == 8
    assert "| rruff-dev | cod |" in result.output


def test_cli_evaluate_needs_a_set(model_path):
    result = CliRunner().invoke(cli, ["evaluate", "--model", str(model_path), "--device", "cpu"])
    assert result.exit_code != 0
    assert "at least one of" in result.output
