"""Inference: patterns on the model grid -> network -> posteriors -> ``ClassificationResult``.

- ``classifier.py``: ``SpaceGroupClassifier`` (predict, predict_many, probabilities_on_grid)
- ``posterior.py``: temperature, the domain prior and symmetry-rule re-scoring
- ``priors.py``: the space-group priors of each domain (``PRIOR_NAMES``)
- ``result.py``: ``ClassificationResult`` and ``SpaceGroupPrediction``

Nothing here imports ``synth/`` or ``training/``; a structure given to ``predict`` is simulated by
``csn_plugin.inputs`` on request.
"""
