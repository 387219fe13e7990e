"""P(space group | pattern) from the network's posterior and the crystallographic evidence.

The evidence (:mod:`csn_plugin.crystallography.evidence`) gives, for the best indexed cell,
P(absence class | peaks, cell) over the absence classes compatible with its lattice. The network
keeps what only intensities can tell: which group of a class (Laue class, centrosymmetry), and
everything when indexing failed. With ``w`` the reliability of the cell (a logistic function of
its de Wolff M20 against a midpoint that rises with the free parameters of its family, fitted
on simulated patterns, never on the measured development sets):

    P_x(g)  = sum_k P'(k) * q(g | k),   q(g | k) ~ p_net(g)^beta * prior(g)^(1 - beta) on k
    P'(k)  ~ pi_c P(k | peaks, c) * (p_net(k) / prior(k))^gamma   (the network's own word on the class)
    pi_c   ~ exp((s_c - s_best) / tau)                    (the indexing's near-ties, below)
    P(g)   ~ (w * P_x(g) + (1 - w) * p_net(g)) ^ (1 / T)

The classes k run over the best cell's and, when ``cell_spread`` (tau) is positive, over those
of its alternatives of other crystal families (:func:`~csn_plugin.crystallography.evidence.
alternative_cells`), each cell c weighted by its indexing merit s_c (a log-likelihood): an oP
cell and an mP cell that index the lines about equally well are then told apart by the network's
crystal-system belief (through gamma) instead of by a coin-flip of the ranking.

``p_net`` already holds the domain prior. Where there is no cell (or no extinction analysis), P is
``p_net`` and the result says so.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from importlib import resources

import numpy as np


@dataclass(frozen=True)
class FusionParams:
    """The combination's parameters: reliability ``w = sigmoid(slope * (ln M20 - ln m20_mid -
    m20_per_param * (n_params - 1)))`` capped at ``max_weight`` (n_params: 1 cubic ... 6
    triclinic); ``beta``: trust in the network within a class; ``temperature``
    of the fused posterior; ``gamma``: how much the network's likelihood ratio for each absence
    class (its summed probability over the prior's) reweights the extinction's class posterior;
    ``cell_spread``: the merit scale of the alternative cells' weights; ``m20_per_param``: ln of
    the factor by which the M20 a cell needs for the same trust grows per free parameter of its
    family beyond one (six free parameters fit a measured pattern's lines at a higher M20 by
    chance than one does)."""

    m20_mid: float = 10.0
    slope: float = 3.0
    max_weight: float = 0.95
    beta: float = 0.5
    temperature: float = 1.0
    gamma: float = 0.0
    cell_spread: float = 0.0
    m20_per_param: float = 0.0

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ValueError(f"fusion parameter {name} must be a finite number, got {value!r}")
        if self.m20_mid <= 0 or self.temperature <= 0 or not 0 <= self.max_weight <= 1 or not 0 <= self.beta <= 1 \
                or not 0 <= self.gamma <= 1 or self.cell_spread < 0 or self.m20_per_param < 0:
            raise ValueError(f"fusion parameters out of range: {self}")

    @classmethod
    def bundled(cls) -> "FusionParams":
        """The parameters fitted by ``benchmarks/fit_fusion.py`` (``csn_plugin/data/fusion.json``),
        or the defaults when that file is absent."""
        try:
            text = resources.files("csn_plugin.data").joinpath("fusion.json").read_text()
        except (FileNotFoundError, ModuleNotFoundError):
            return cls()
        fields = json.loads(text)["params"]
        return cls(**{k: float(v) for k, v in fields.items() if k in cls.__dataclass_fields__})


def reliability(cell, params: FusionParams) -> float:
    """How much the cell's evidence is trusted, 0..max_weight (0 without a cell)."""
    if cell is None or not math.isfinite(cell.M20) or cell.M20 <= 0:
        return 0.0
    from ..crystallography.indexing import N_PARAMS

    mid = math.log(params.m20_mid) + params.m20_per_param * (N_PARAMS.get(getattr(cell, "crystal_system", None), 1) - 1)
    x = params.slope * (math.log(cell.M20) - mid)
    return params.max_weight / (1.0 + math.exp(-x))


def cell_window(params: FusionParams, smallest=0.01) -> float:
    """The merit gap beyond which an alternative cell's weight pi_c falls below ``smallest``
    (0 when the fusion uses the best cell alone): the evidence analyses no cell further away."""
    return params.cell_spread * math.log(1 / smallest) if params.cell_spread > 0 else 0.0


def cell_weights(cells, spread) -> np.ndarray:
    """pi_c ~ exp((s_c - s_best) / spread) of [(cell, extinction)], the best cell first; the best
    cell alone (weight 1) when ``spread`` is 0."""
    if spread <= 0 or len(cells) < 2:
        return np.array([1.0] + [0.0] * (len(cells) - 1))
    s = np.array([cell.score for cell, _ in cells], dtype=float)
    w = np.exp(np.clip((s - s[0]) / spread, -700, 50))
    return w / w.sum()


def class_posterior(p_net, extinction, prior, beta, gamma=0.0, cells=None, spread=0.0) -> np.ndarray:
    """(230,) P_x(g) = sum over classes of P'(class) * q(g | class); ``cells`` ([(cell,
    extinction)], the best first: ``Evidence.cells()``) spreads the classes over alternative cells
    with :func:`cell_weights` (``extinction`` is then ignored)."""
    p_net = np.asarray(p_net, dtype=float)
    prior = np.asarray(prior, dtype=float)
    within = np.power(np.clip(p_net, 1e-300, None), beta) * np.power(np.clip(prior, 1e-300, None), 1 - beta)
    pairs = [(None, extinction)] if cells is None else list(cells)
    pi = np.array([1.0]) if cells is None else cell_weights(pairs, spread)
    groups, class_p = [], []
    for weight, (_, ext) in zip(pi, pairs):
        if weight <= 0:
            continue
        groups += [np.asarray(members, dtype=int) - 1 for members in ext.members]
        class_p.append(weight * np.asarray(ext.probabilities, dtype=float))
    class_p = np.concatenate(class_p)
    if gamma:
        ratio = np.array([p_net[idx].sum() / max(prior[idx].sum(), 1e-300) for idx in groups])
        weighted = class_p * np.power(np.clip(ratio, 1e-300, None), gamma)
        class_p = weighted / weighted.sum() if weighted.sum() > 0 else class_p
    out = np.zeros(230)
    for probability, idx in zip(class_p, groups):
        weights = within[idx]
        total = weights.sum()
        out[idx] += probability * (weights / total if total > 0 else np.full(len(idx), 1 / len(idx)))
    return out


def fuse(p_net, evidence, prior, params: FusionParams) -> tuple:
    """(fused (230,) posterior, weight given to the evidence)."""
    p_net = np.asarray(p_net, dtype=float)
    if evidence is None or evidence.cell is None or evidence.extinction is None or not len(evidence.extinction):
        return p_net, 0.0
    weight = reliability(evidence.cell, params)
    p_x = class_posterior(p_net, evidence.extinction, prior, params.beta, params.gamma, spread=params.cell_spread,
                          cells=[(evidence.cell, evidence.extinction)] + list(getattr(evidence, "alternatives", ())))
    mixed = weight * p_x + (1 - weight) * p_net
    if params.temperature != 1.0:
        mixed = np.power(np.clip(mixed, 1e-300, None), 1.0 / params.temperature)
    total = mixed.sum()
    return (mixed / total if total > 0 else p_net), weight
