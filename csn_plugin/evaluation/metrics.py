"""Classification metrics on (N, 230) probabilities and 1-based space-group labels."""

import numpy as np


def top_k_accuracy(probabilities, labels, k):
    top = np.argsort(-probabilities, axis=1)[:, :k] + 1
    return float(np.mean((top == np.asarray(labels)[:, None]).any(axis=1)))


def macro_f1(predicted, labels):
    """Mean F1 over the classes present in ``labels`` (1-based)."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    scores = []
    for group in np.unique(labels):
        tp = np.sum((predicted == group) & (labels == group))
        fp = np.sum((predicted == group) & (labels != group))
        fn = np.sum((predicted != group) & (labels == group))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def expected_calibration_error(probabilities, labels, bins=15):
    """ECE of the top-1 confidence, equal-width bins."""
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) + 1) == np.asarray(labels)
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(ece)


def class_balanced_indices(labels, per_class=10, seed=0):
    """The paper's balanced protocol: ``per_class`` random items of every class with more than that."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(labels == g), per_class, replace=False)
              for g in np.unique(labels) if np.sum(labels == g) > per_class]
    return np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=int)


def summarize(probabilities, labels):
    """All headline metrics as a dict (fractions in 0..1)."""
    from ..symmetry import absence_classes, group_to_crystal_system

    labels = np.asarray(labels)
    predicted = probabilities.argmax(axis=1) + 1
    systems = group_to_crystal_system()
    absence = absence_classes()
    wrong = predicted != labels
    summary = {
        "count": int(len(labels)),
        "top1": top_k_accuracy(probabilities, labels, 1),
        "top2": top_k_accuracy(probabilities, labels, 2),
        "top5": top_k_accuracy(probabilities, labels, 5),
        "macro_f1": macro_f1(predicted, labels),
        "crystal_system": float(np.mean(systems[predicted - 1] == systems[labels - 1])),
        "ece": expected_calibration_error(probabilities, labels),
        "errors_in_absence_class": float(np.mean(absence[predicted[wrong] - 1] == absence[labels[wrong] - 1])) if wrong.any() else 0.0,
    }
    balanced = class_balanced_indices(labels)
    if len(balanced):
        summary["balanced_top1"] = top_k_accuracy(probabilities[balanced], labels[balanced], 1)
        summary["balanced_classes"] = int(len(balanced) // 10)
    return summary
