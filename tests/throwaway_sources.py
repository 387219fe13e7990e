"""Source text of the throwaway plugins' cheap, real classifier (a fixed random projection of
the model-grid pattern, softmaxed), written once: tests/test_plugins.py and
tests/test_classifier_contract.py put it into the plugin modules they install, and the contract
tests also run it in-process. Registered by conftest.py (``import throwaway_sources``)."""

PROJECTION = '''
import numpy as np

from csn_plugin import symmetry
from csn_plugin.inputs import to_pattern
from csn_plugin.errors import PatternError
from csn_plugin.grid import ModelGrid
from csn_plugin.inference.result import ClassificationResult, SpaceGroupPrediction


class ProjectionClassifier:
    name = "projection"

    def __init__(self, model=None, device="auto", prior="icsd", **options):
        self.grid = ModelGrid()
        self.weights = np.random.default_rng(0).normal(size=(self.grid.size, 230))

    def probabilities(self, obj, wavelength=None):
        pattern = to_pattern(obj, wavelength)
        try:
            values, mask = self.grid.resample(pattern.two_theta, pattern.intensity, pattern.wavelength)
        except ValueError as error:
            raise PatternError(pattern.source, str(error)) from None
        logits = values @ self.weights / np.sqrt(max(mask.sum(), 1.0))
        exp = np.exp(logits - logits.max())
        return pattern.source, exp / exp.sum()

    def result(self, source, probabilities, top_k):
        order = np.argsort(-probabilities)[:top_k]
        systems = np.bincount(symmetry.group_to_crystal_system(), probabilities, len(symmetry.CRYSTAL_SYSTEMS))
        lattices = np.bincount(symmetry.group_to_bravais(), probabilities, len(symmetry.BRAVAIS_LATTICES))
        return ClassificationResult(
            source=source,
            predictions=[SpaceGroupPrediction(int(i) + 1, symmetry.space_group(int(i) + 1).symbol,
                                              float(probabilities[i])) for i in order],
            probabilities=probabilities,
            crystal_systems=dict(zip(symmetry.CRYSTAL_SYSTEMS, map(float, systems))),
            bravais_lattices=dict(zip(symmetry.BRAVAIS_LATTICES, map(float, lattices))),
            model=self.name,
        )

    def predict(self, obj, top_k=5, wavelength=None):
        return self.predict_many([obj], top_k=top_k, wavelength=wavelength)[0]

    def predict_many(self, objs, top_k=5, batch_size=256, wavelength=None):
        if not 1 <= top_k <= 230:
            raise ValueError(f"top_k must be in 1..230, got {top_k}")
        return [self.result(*self.probabilities(obj, wavelength), top_k) for obj in objs]
'''
