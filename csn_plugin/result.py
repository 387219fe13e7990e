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
    """

    source: str | None
    predictions: list
    probabilities: np.ndarray
    crystal_systems: dict
    bravais_lattices: dict
    rules: dict = field(default_factory=dict)
    model: str = "csn"
    prior: str = "uniform"

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
        }

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def __str__(self) -> str:
        system, system_p = self.crystal_system
        lattice, lattice_p = self.bravais_lattice
        lines = [
            f"{self.source or '<pattern>'}: {system} ({system_p:.0%}), lattice {lattice} ({lattice_p:.0%})",
            "  rank  space group        probability",
        ]
        for rank, p in enumerate(self.predictions, 1):
            lines.append(f"  {rank:>4}  {p.space_group:>3} {p.symbol:<14} {p.probability:>10.1%}")
        return "\n".join(lines)
