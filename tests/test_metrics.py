"""Classification metrics, checked on small hand-computed cases."""

import numpy as np
import pytest

from csn_plugin.evaluation.metrics import class_balanced_indices, expected_calibration_error, macro_f1, summarize, top_k_accuracy


def probabilities_from(rows):
    """(N, 230) probabilities from {group: probability} rows; the rest spread evenly over the others."""
    out = np.zeros((len(rows), 230))
    for i, row in enumerate(rows):
        rest = (1.0 - sum(row.values())) / (230 - len(row))
        out[i] = rest
        for group, p in row.items():
            out[i, group - 1] = p
    return out


def test_top_k_accuracy():
    probabilities = probabilities_from([{5: 0.6, 7: 0.3}, {5: 0.5, 7: 0.4}, {9: 0.7, 3: 0.2, 1: 0.05}])
    labels = [5, 7, 1]
    assert top_k_accuracy(probabilities, labels, 1) == pytest.approx(1 / 3)
    assert top_k_accuracy(probabilities, labels, 2) == pytest.approx(2 / 3)
    assert top_k_accuracy(probabilities, labels, 3) == pytest.approx(1.0)
    assert top_k_accuracy(probabilities, np.array([230, 230, 230]), 5) == 0.0


def test_macro_f1_hand_computed():
    # class 1: tp 1, fp 1, fn 0 -> F1 2/3; class 2: tp 1, fp 0, fn 2 -> F1 1/2; class 3 is not a label
    assert macro_f1([1, 1, 2, 3], [1, 2, 2, 2]) == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert macro_f1([4, 4, 9], [4, 4, 9]) == 1.0
    assert macro_f1([1, 1, 1], [2, 3, 4]) == 0.0
    # every class counts the same however many items it has: one big class right, a small one wrong
    assert macro_f1([1] * 9 + [1], [1] * 9 + [2]) == pytest.approx((2 * 9 / (2 * 9 + 1)) / 2)


def test_expected_calibration_error_hand_computed():
    # 4 items at confidence 0.9, 3 right: |0.75 - 0.9| = 0.15
    probabilities = probabilities_from([{1: 0.9}] * 4)
    assert expected_calibration_error(probabilities, [1, 1, 1, 2]) == pytest.approx(0.15)
    # two bins: 0.9 (2 of 2 right: gap 0.1, weight 1/2), 0.6 (1 of 2 right: gap 0.1, weight 1/2) -> 0.1
    probabilities = probabilities_from([{1: 0.9}, {1: 0.9}, {2: 0.6}, {2: 0.6}])
    assert expected_calibration_error(probabilities, [1, 1, 2, 3]) == pytest.approx(0.1)
    # perfectly confident and right: 0
    assert expected_calibration_error(np.eye(230)[[0, 4]], [1, 5]) == pytest.approx(0.0)


def test_class_balanced_indices():
    labels = np.array([3] * 12 + [8] * 5 + [1] * 11 + [2] * 10)
    chosen = class_balanced_indices(labels, per_class=10, seed=3)
    assert len(chosen) == 20 and len(np.unique(chosen)) == 20
    assert np.all(np.diff(chosen) > 0)
    counts = {g: int(np.sum(labels[chosen] == g)) for g in (1, 2, 3, 8)}
    assert counts == {1: 10, 2: 0, 3: 10, 8: 0}  # only classes with MORE than per_class items
    np.testing.assert_array_equal(chosen, class_balanced_indices(labels, per_class=10, seed=3))
    draws = {tuple(class_balanced_indices(labels, per_class=10, seed=s)) for s in range(8)}
    assert len(draws) > 1  # the draw is random, per seed
    assert len(class_balanced_indices(np.array([1, 2, 3]), per_class=10)) == 0


def test_summarize_perfect_predictor():
    labels = np.repeat([14, 62, 225], 11)
    probabilities = np.eye(230)[labels - 1]
    summary = summarize(probabilities, labels)
    assert summary["count"] == 33
    for key in ("top1", "top2", "top5", "macro_f1", "crystal_system", "balanced_top1"):
        assert summary[key] == pytest.approx(1.0), key
    assert summary["ece"] == pytest.approx(0.0)
    assert summary["errors_in_absence_class"] == 0.0
    assert summary["balanced_classes"] == 3


def test_summarize_wrong_within_crystal_system_and_absence_class():
    # P222 (16) and Pmmm (47): both orthorhombic P without any reflection conditions, so the same
    # peak positions; P2_1/c (14) read as P2/m (10): same system, different absences.
    labels = np.array([16, 16, 14, 14])
    predicted = np.array([47, 47, 10, 10])
    probabilities = np.full((4, 230), 0.5 / 229)
    probabilities[np.arange(4), predicted - 1] = 0.5
    summary = summarize(probabilities, labels)
    assert summary["top1"] == 0.0
    assert summary["crystal_system"] == 1.0
    assert summary["errors_in_absence_class"] == pytest.approx(0.5)
    assert summary["macro_f1"] == 0.0
    assert summary["ece"] == pytest.approx(0.5)
    assert "balanced_top1" not in summary
    # the true group second everywhere: top-2 recovers all
    probabilities[np.arange(4), labels - 1] = 0.4
    assert summarize(probabilities, labels)["top2"] == 1.0
