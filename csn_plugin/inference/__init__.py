"""Inference: patterns on the model grid -> network -> posteriors -> ``ClassificationResult``.

- ``classifier.py``: ``SpaceGroupClassifier`` (predict, predict_many, probabilities_on_grid)
- ``posterior.py``: temperature, the domain prior (``csn_plugin.priors``) and symmetry-rule re-scoring
- ``fusion.py``: the network's posterior fused with the crystallographic evidence
  (``csn_plugin.crystallography``, asked lazily by the classifier)
- ``result.py``: ``ClassificationResult`` and ``SpaceGroupPrediction``

Nothing here imports ``synth/`` or ``training/``; a structure given to ``predict`` is simulated by
``csn_plugin.inputs`` on request.
"""
