"""``SpaceGroupClassifier``: a pattern (file, arrays, pymatgen or xrayutilities object) in, a ranked
and calibrated ``ClassificationResult`` out, with the bundled CSN model (GPU when present)."""

import warnings

import numpy as np

from ..errors import PriorWarning
from ..nets.chunks import in_chunks
from .posterior import posteriors
from .result import ClassificationResult, SpaceGroupPrediction


class SpaceGroupClassifier:
    """Space-group classifier in the style of pymatgen's diffraction calculators.

    >>> clf = SpaceGroupClassifier()                 # bundled weights, CUDA if available
    >>> result = clf.predict("scan.xy", top_k=5)     # or a Pattern, (two_theta, intensity), a Structure...
    >>> result.predictions[0].symbol, result.crystal_system

    ``prior`` is the space-group prior of the user's domain: "icsd" (default: experimentally
    determined inorganic structures, what measured lab patterns mostly are), "cod" (minerals and
    lab samples), "mp" (computed materials), "uniform" (no domain assumption), or counts per group.
    ``model`` is None (the bundled CSN), a bundled model's name ("csn", "baseline-mlp",
    "baseline-cnn", "baseline-nopoolcnn") or a path to ``.safetensors`` weights with their sidecar.
    ``rule_rescoring`` (default: the model's sidecar value) adds the agreement of each group's
    symmetry rules with the rule head's predictions to the scores.

    Unless ``network_only``, each pattern is also read as a crystallographer would (peak search on
    the measured points, indexing, extinction analysis of the best
    cell: ``csn_plugin.crystallography``) and that evidence is fused with the network's posterior
    (``csn_plugin.inference.fusion``; ``fusion``: a ``FusionParams``, default the bundled fit). Batches spread
    the crystallography over ``workers`` processes (default: every core). The indexing search is
    bounded by a fixed amount of work, so the answers do not depend on the machine or its load;
    ``time_limit`` (seconds per pattern) is only a safety net for pathological inputs (a search it
    cuts short is marked ``timed_out`` in the evidence). Evidence is cached per input (512 patterns).
    """

    name = "csn"

    def __init__(self, model=None, device="auto", prior="icsd", rule_rescoring=None, network_only=False,
                 time_limit=30.0, workers=None, fusion=None):
        import torch

        from ..nets.store import check_rule_rescoring, load_model
        from ..priors import prior_probabilities
        from ..symmetry import BRAVAIS_LATTICES, CRYSTAL_SYSTEMS, RULE_NAMES, group_to_bravais, group_to_crystal_system, rule_matrix, space_group

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.model, self.grid, self.info = load_model(model, device=self.device)
        self.name = str(self.info.get("name", type(self).name))
        self.prior_name = prior if isinstance(prior, str) else "custom"
        caveat = self.info.get("prior_warnings", {}).get(self.prior_name)
        if caveat:
            warnings.warn(f"{self.name} with prior {self.prior_name!r}: {caveat}", PriorWarning, stacklevel=2)
        self._log_prior = torch.tensor(np.log(prior_probabilities(prior)), dtype=torch.float32, device=self.device)
        self.temperature = float(self.info.get("temperature", 1.0))  # validated with the sidecar
        self.rule_rescoring = float(self.info.get("rule_rescoring", 0.0)) if rule_rescoring is None else check_rule_rescoring(rule_rescoring)
        self._rules = torch.tensor(rule_matrix(), dtype=torch.float32, device=self.device)   # (230, 46)
        self._system_of = group_to_crystal_system()
        self._lattice_of = group_to_bravais()
        self._system_names, self._lattice_names, self._rule_names = CRYSTAL_SYSTEMS, BRAVAIS_LATTICES, RULE_NAMES
        self._symbols = [space_group(n).symbol for n in range(1, 231)]
        # The crystallographer's evidence (peak search, indexing, extinction), fused with the network.
        from .fusion import FusionParams

        self.network_only = bool(network_only)
        if not (isinstance(time_limit, (int, float)) and 0 < float(time_limit) < 3600):
            raise ValueError(f"time_limit must be a number of seconds in (0, 3600), got {time_limit!r}")
        self.time_limit = float(time_limit)
        self.workers = workers
        self.fusion = FusionParams.bundled() if fusion is None else fusion
        self._prior = np.asarray(prior_probabilities(prior), dtype=float)
        self._pool = None
        self._evidence_cache = {}  # pattern digest -> Evidence (bounded): one input, one answer

    @property
    def card(self) -> dict:
        """The model's sidecar metadata (config, training, metrics)."""
        return dict(self.info)

    def _to_grid(self, objs, wavelength):
        """Patterns and their (values, masks) on the model grid; files that share a 2theta axis
        and wavelength are resampled together."""
        from ..inputs import to_pattern

        patterns = [to_pattern(obj, wavelength=wavelength) for obj in objs]
        values, masks = self.grid.resample_patterns(patterns)
        return patterns, values, masks

    def probabilities_on_grid(self, values, mask):
        """(B, 230) posteriors and (B, 46) rule-presence probabilities for grid arrays (numpy)."""
        import torch

        with torch.inference_mode():
            values = torch.as_tensor(values, dtype=torch.float32, device=self.device)
            mask = torch.as_tensor(mask, dtype=torch.float32, device=self.device)
            # On CPU, chunks of 64 stay in cache: ~25 % more patterns/s than one batch of 256.
            chunk = 64 if self.device.type == "cpu" else len(values)
            logits, rule_logits = in_chunks(self.model, values, mask, chunk)
            probabilities, rules = posteriors(logits, rule_logits, self.temperature, self._log_prior, self._rules, self.rule_rescoring)
        return probabilities.cpu().numpy(), None if rules is None else rules.cpu().numpy()

    def _evidence(self, patterns, probabilities):
        """Crystallographic evidence per pattern (None each in network-only mode); the network's
        crystal-system ranking orders the indexing search. Batches run on every core."""
        if self.network_only:
            return [None] * len(patterns)
        from ..crystallography.evidence import analyse

        import hashlib

        out, jobs, pending = [None] * len(patterns), [], {}
        for i, (pattern, p) in enumerate(zip(patterns, probabilities)):
            systems = np.bincount(self._system_of, weights=p, minlength=len(self._system_names))
            hint = tuple(self._system_names[j] for j in np.argsort(-systems)[:3])
            digest = hashlib.sha256(np.ascontiguousarray(pattern.two_theta, dtype=np.float64).tobytes()
                                    + np.ascontiguousarray(pattern.intensity, dtype=np.float64).tobytes()
                                    + repr((pattern.wavelength, hint, self.time_limit)).encode()).hexdigest()
            if digest in self._evidence_cache:
                out[i] = self._evidence_cache[digest]
            elif digest in pending:
                pending[digest].append(i)  # the same input twice in one batch: analysed once
            else:
                pending[digest] = [i]
                jobs.append((i, digest, pattern.two_theta, pattern.intensity, pattern.wavelength, list(hint)))
        from .fusion import cell_window

        kwargs = {"prior": self._prior_counts(), "time_limit": self.time_limit, "window": cell_window(self.fusion)}
        workers = self._worker_count(len(jobs))
        if workers <= 1:
            found = [analyse(t, y, w, lattice_hint=h, **kwargs) for _, _, t, y, w, h in jobs]
        else:
            pool = self._process_pool(workers)
            found = [f.result() for f in [pool.submit(analyse, t, y, w, lattice_hint=h, **kwargs) for _, _, t, y, w, h in jobs]]
        for (i, digest, *_), evidence in zip(jobs, found):
            for j in pending[digest]:
                out[j] = evidence
            if len(self._evidence_cache) >= 512:
                self._evidence_cache.pop(next(iter(self._evidence_cache)))
            self._evidence_cache[digest] = evidence
        return out

    def _prior_counts(self):
        return self.prior_name if self.prior_name != "custom" else self._prior

    def _worker_count(self, jobs):
        import os

        if jobs <= 1:
            return 1
        workers = self.workers if self.workers is not None else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
        return max(1, min(int(workers), jobs))

    def _process_pool(self, workers):
        if self._pool is None or self._pool[0] != workers:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.close()
            self._pool = (workers, ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")))
        return self._pool[1]

    def close(self):
        """Stop the worker processes of batch crystallography (started on first use)."""
        if self._pool is not None:
            self._pool[1].shutdown(cancel_futures=True)
            self._pool = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    def _result(self, source, probabilities, rules, top_k, evidence=None):
        from .fusion import fuse

        network = probabilities
        weight = 0.0
        if evidence is not None:
            probabilities, weight = fuse(probabilities, evidence, self._prior, self.fusion)
        order = np.argsort(-probabilities)[:top_k]
        if evidence is not None and weight > 0:  # report the cell the answer rests on (an alternative, when it won)
            evidence = evidence.supporting(self._system_names[self._system_of[order[0]]])
        systems = np.bincount(self._system_of, weights=probabilities, minlength=len(self._system_names))
        lattices = np.bincount(self._lattice_of, weights=probabilities, minlength=len(self._lattice_names))
        return ClassificationResult(
            source=source,
            predictions=[SpaceGroupPrediction(int(i) + 1, self._symbols[i], float(probabilities[i])) for i in order],
            probabilities=probabilities,
            crystal_systems={n: float(p) for n, p in zip(self._system_names, systems)},
            bravais_lattices={n: float(p) for n, p in zip(self._lattice_names, lattices)},
            rules={} if rules is None else {n: float(p) for n, p in zip(self._rule_names, rules)},
            model=self.name,
            prior=self.prior_name,
            network_probabilities=network,
            evidence=evidence,
            evidence_weight=float(weight),
            method="network" if self.network_only else ("network+crystallography" if weight > 0 else "network (fallback)"),
        )

    def predict(self, obj, top_k=5, wavelength=None) -> ClassificationResult:
        """Classify one pattern-like object; raises PatternError for input it cannot use."""
        return self.predict_many([obj], top_k=top_k, wavelength=wavelength)[0]

    def predict_many(self, objs, top_k=5, batch_size=256, wavelength=None) -> list:
        """Classify many objects in batches; same answers as ``predict`` one by one."""
        if not 1 <= int(top_k) <= 230:
            raise ValueError(f"top_k must be between 1 and 230, got {top_k}")
        results = []
        objs = list(objs)
        for start in range(0, len(objs), batch_size):
            patterns, values, masks = self._to_grid(objs[start:start + batch_size], wavelength)
            probabilities, rules = self.probabilities_on_grid(values, masks)
            evidence = self._evidence(patterns, probabilities)
            for i, pattern in enumerate(patterns):
                results.append(self._result(pattern.source, probabilities[i], None if rules is None else rules[i], int(top_k), evidence[i]))
        return results
