"""Space-group priors: how often each of the 230 groups occurs in a domain.

The network is trained to estimate class-balanced (uniform-prior) posteriors; at inference the
user's domain prior is applied by Bayes' rule, p(g|x) ~ p_uniform(g|x) * prior(g). Bundled
counts (``csn_plugin/data/space_group_counts.csv``): ICSD, COD inorganic, Materials Project.
"""

import csv
from functools import lru_cache

import numpy as np

from .data import SPACE_GROUP_COUNTS

PRIOR_NAMES = ("uniform", "icsd", "cod", "mp")
_COLUMNS = {"icsd": "icsd", "cod": "cod_inorganic", "mp": "materials_project"}
SMOOTHING = 0.5  # pseudo-count per group, so that no group is ruled out by a prior alone


@lru_cache(maxsize=None)
def bundled_counts() -> dict:
    """{"icsd"|"cod"|"mp": (230,) float array of counts, index 0 = space group 1}."""
    counts = {name: np.zeros(230) for name in _COLUMNS}
    with open(SPACE_GROUP_COUNTS, newline="") as handle:
        for row in csv.DictReader(handle):
            number = int(row["space_group"])
            for name, column in _COLUMNS.items():
                counts[name][number - 1] = float(row[column])
    return counts


def prior_probabilities(prior="uniform") -> np.ndarray:
    """(230,) probabilities for a prior name, a {space_group: count} mapping or 230 counts."""
    if isinstance(prior, str):
        key = prior.strip().lower()
        if key == "uniform":
            return np.full(230, 1.0 / 230)
        if key not in _COLUMNS:
            raise ValueError(f"unknown prior {prior!r}: use one of {', '.join(PRIOR_NAMES)} or counts per space group")
        counts = bundled_counts()[key]
    elif isinstance(prior, dict):
        counts = np.zeros(230)
        for number, count in prior.items():
            number = int(number)
            if not 1 <= number <= 230:
                raise ValueError(f"prior names space group {number}, outside 1-230")
            counts[number - 1] = float(count)
    else:
        counts = np.asarray(prior, dtype=np.float64)
        if counts.shape != (230,):
            raise ValueError(f"prior counts must have 230 entries, got shape {counts.shape}")
    if not np.all(np.isfinite(counts)) or np.any(counts < 0) or counts.sum() <= 0:
        raise ValueError("prior counts must be finite, non-negative and not all zero")
    counts = counts + SMOOTHING
    return counts / counts.sum()
