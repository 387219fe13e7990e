"""What a classification returns: ranked space groups with crystal system, lattice and rules."""

import json
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SpaceGroupPrediction:
    space_group: int
    symbol: str
    probability: float

    def to_dict(self) -> dict:
        return {"space_group": self.space_group, "symbol": self.symbol, "probability": round(self.probability, 6)}


@dataclass
class ClassificationResult:
    """The answer for one pattern.

    ``predictions`` holds the top-k space groups, most probable first; ``probabilities`` all 230
    (index 0 = group 1). Crystal-system and Bravais-lattice probabilities are sums over the 230;
    ``rules`` holds the symmetry-rule head's probability that each of the 46 rules is present.

    The crystallographer's evidence (``None`` in network-only mode or when a stage failed):
    ``cell`` (the indexed :class:`~csn_plugin.crystallography.indexing.CellCandidate`), ``peaks``
    (the :class:`~csn_plugin.crystallography.peaks.PeakSet` found on the measured points),
    ``extinction`` (:class:`~csn_plugin.crystallography.extinction.ExtinctionResult`: P(absence class
    | peaks, cell)); ``evidence_weight``: the share the evidence got in the fused posterior (0: the
    network alone); ``method`` says which; ``network_probabilities``: the network's own posterior.
    """

    source: str | None
    predictions: list
    probabilities: np.ndarray
    crystal_systems: dict
    bravais_lattices: dict
    rules: dict = field(default_factory=dict)
    model: str = "csn"
    prior: str = "uniform"
    network_probabilities: np.ndarray = None
    evidence: object = None
    evidence_weight: float = 0.0
    method: str = "network"

    @property
    def cell(self):
        return None if self.evidence is None else self.evidence.cell

    @property
    def peaks(self):
        return None if self.evidence is None else self.evidence.peaks

    @property
    def extinction(self):
        return None if self.evidence is None else self.evidence.extinction

    @property
    def extinction_symbol(self):
        extinction = self.extinction
        return None if extinction is None or not len(extinction) else extinction.top_symbol

    @property
    def crystal_system(self) -> tuple:
        name = max(self.crystal_systems, key=self.crystal_systems.get)
        return name, self.crystal_systems[name]

    @property
    def bravais_lattice(self) -> tuple:
        name = max(self.bravais_lattices, key=self.bravais_lattices.get)
        return name, self.bravais_lattices[name]

    @property
    def space_group(self) -> int:
        return self.predictions[0].space_group

    def to_dict(self) -> dict:
        """The JSON contract of ``csn classify --format json`` (one object per file)."""
        system, system_p = self.crystal_system
        lattice, lattice_p = self.bravais_lattice
        return {
            "source": self.source,
            "predictions": [p.to_dict() for p in self.predictions],
            "crystal_system": {"name": system, "probability": round(system_p, 6)},
            "bravais_lattice": {"name": lattice, "probability": round(lattice_p, 6)},
            "crystal_systems": {k: round(v, 6) for k, v in self.crystal_systems.items()},
            "bravais_lattices": {k: round(v, 6) for k, v in self.bravais_lattices.items()},
            "rules": {k: round(v, 6) for k, v in self.rules.items()},
            "model": self.model,
            "prior": self.prior,
            "cell": None if self.cell is None else self.cell.to_dict(),
            "extinction_symbol": self.extinction_symbol,
            "evidence": {
                "method": self.method,
                "weight": round(self.evidence_weight, 6),
                "note": None if self.evidence is None else self.evidence.note,
                "peaks_found": None if self.peaks is None else len(self.peaks),
                "absence_classes": None if self.extinction is None else [
                    {"symbol": symbol, "probability": round(float(p), 6)}
                    for symbol, p in list(zip(self.extinction.symbols, self.extinction.probabilities))[:5]],
                "alternative_cells": [] if self.evidence is None else [
                    {**cell.to_dict(), "extinction_symbol": extinction.top_symbol}
                    for cell, extinction in getattr(self.evidence, "alternatives", ())],
            },
        }

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def __str__(self) -> str:
        system, system_p = self.crystal_system
        lattice, lattice_p = self.bravais_lattice
        lines = [
            f"{self.source or '<pattern>'}: {system} ({system_p:.0%}), lattice {lattice} ({lattice_p:.0%})",
        ]
        cell = self.cell
        if cell is not None:
            lines.append(f"  cell {cell.lattice}: a={cell.a:.4f} b={cell.b:.4f} c={cell.c:.4f} A, "
                         f"alpha={cell.alpha:.2f} beta={cell.beta:.2f} gamma={cell.gamma:.2f}, V={cell.volume:.1f} A^3, "
                         f"M20={cell.M20:.1f}, {cell.peaks_indexed}/{cell.peaks_used} lines indexed")
            if self.extinction_symbol:
                lines.append(f"  extinction symbol {self.extinction_symbol} (evidence weight {self.evidence_weight:.0%})")
        elif self.evidence is not None:
            lines.append(f"  network only: {self.evidence.note}")
        lines.append("  rank  space group        probability")
        for rank, p in enumerate(self.predictions, 1):
            lines.append(f"  {rank:>4}  {p.space_group:>3} {p.symbol:<14} {p.probability:>10.1%}")
        return "\n".join(lines)
