"""Space-group priors: bundled counts, normalisation, dict/array priors, errors."""

import csv
from pathlib import Path

import numpy as np
import pytest

from csn_plugin.priors import PRIOR_NAMES, bundled_counts, prior_probabilities

SHARED_COUNTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "priors" / "space_group_counts.csv"
# Entry totals stated in shared/data/README.md for the three collections.
TOTALS = {"icsd": 143_523, "cod": 62_099, "mp": 132_285}


def test_bundled_totals_match_the_collections():
    counts = bundled_counts()
    assert set(counts) == {"icsd", "cod", "mp"}
    for name, total in TOTALS.items():
        assert counts[name].shape == (230,)
        assert counts[name].sum() == total, name
        assert np.all(counts[name] >= 0)


@pytest.mark.skipif(not SHARED_COUNTS.is_file(), reason=f"shared data not found at {SHARED_COUNTS}")
def test_bundled_counts_equal_the_shared_csv():
    columns = {"icsd": "icsd", "cod": "cod_inorganic", "mp": "materials_project"}
    with open(SHARED_COUNTS, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(int(r["space_group"]) for r in rows) == list(range(1, 231))
    counts = bundled_counts()
    for name, column in columns.items():
        shared = np.zeros(230)
        for row in rows:
            shared[int(row["space_group"]) - 1] = float(row[column])
        np.testing.assert_array_equal(counts[name], shared)
        assert shared.sum() == TOTALS[name]


def test_well_known_frequencies():
    """Pnma and P2_1/c lead in ICSD, P2_1/c in COD; Fm-3m and P1 in Materials Project (README)."""
    p = {name: prior_probabilities(name) for name in ("icsd", "cod", "mp")}
    assert set(np.argsort(-p["icsd"])[:2] + 1) == {62, 14}
    assert np.argmax(p["cod"]) + 1 == 14
    assert set(np.argsort(-p["mp"])[:2] + 1) == {225, 1}


@pytest.mark.parametrize("name", PRIOR_NAMES)
def test_named_priors_are_distributions(name):
    p = prior_probabilities(name)
    assert p.shape == (230,)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(p > 0)  # no group ruled out by a prior alone


def test_uniform_and_case_insensitive():
    np.testing.assert_allclose(prior_probabilities("uniform"), 1 / 230)
    np.testing.assert_array_equal(prior_probabilities(" ICSD "), prior_probabilities("icsd"))
    assert prior_probabilities() is not None and np.allclose(prior_probabilities(), 1 / 230)


def test_named_prior_follows_counts():
    counts = bundled_counts()["icsd"]
    p = prior_probabilities("icsd")
    # more entries -> more probability; ratios close to count ratios for frequent groups
    order = np.argsort(counts)
    assert np.all(np.diff(p[order]) >= 0)
    assert p[61] / p[13] == pytest.approx(counts[61] / counts[13], rel=1e-3)
    assert p[0] == pytest.approx(counts[0] / counts.sum(), rel=0.01)


def test_dict_prior():
    p = prior_probabilities({225: 100, "14": 50})
    assert p.sum() == pytest.approx(1.0)
    assert np.argmax(p) == 224
    assert p[224] > p[13] > p[0] > 0
    assert p[224] / p[13] == pytest.approx(2.0, rel=0.02)
    others = np.delete(p, [224, 13])
    np.testing.assert_allclose(others, others[0])  # every unnamed group gets the same small share


def test_array_prior_equals_dict_prior():
    counts = np.zeros(230)
    counts[[0, 224]] = [3.0, 7.0]
    np.testing.assert_allclose(prior_probabilities(counts), prior_probabilities({1: 3, 225: 7}))
    np.testing.assert_allclose(prior_probabilities(list(counts)), prior_probabilities(counts))


@pytest.mark.parametrize(
    "prior, message",
    [
        ("icsd2", "unknown prior"),
        ({0: 1}, "outside 1-230"),
        ({231: 1}, "outside 1-230"),
        (np.ones(229), "230 entries"),
        (np.ones((2, 230)), "230 entries"),
        (np.full(230, -1.0), "non-negative"),
        (np.zeros(230), "not all zero"),
        (np.r_[np.ones(229), np.nan], "finite"),
        ({5: -3}, "non-negative"),
    ],
)
def test_errors(prior, message):
    with pytest.raises(ValueError, match=message):
        prior_probabilities(prior)
