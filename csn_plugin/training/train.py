"""Training CSN on peak-list datasets, rendering every batch afresh (new artifacts every epoch).

Loss = cross-entropy over 230 groups + ``rule_weight`` x BCE over the 46 (presence, direction)
symmetry-rule targets. The long tail is handled by class-balanced sampling (``balance="sampler"``)
or logit adjustment (``balance="logit-adjust"``); either way the network's logits estimate
uniform-prior posteriors and the user's domain prior is applied at inference (csn_plugin.priors).
AdamW, linear warm-up then cosine decay; checkpoints every ``checkpoint_every`` steps and resume from
``<out>/checkpoint.pt``; a JSON-lines log in ``<out>/log.jsonl``. The same code runs on CPU and CUDA
(bf16 autocast there); under torchrun it trains data-parallel (DDP).
"""

import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..grid import ModelGrid
from ..nets.chunks import in_chunks
from ..nets.csn import parameter_count
from ..nets.registry import build_network
from .config import TrainConfig


def pick_device(name="auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def learning_rate(step, config: TrainConfig, minutes=0.0) -> float:
    """Linear warm-up, then cosine decay to 2 % over the steps or, with ``max_minutes``, over
    whichever of steps and wall time runs out first."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = min(1.0, (step - config.warmup) / max(1, config.steps - config.warmup))
    if config.max_minutes:
        progress = max(progress, min(1.0, minutes / config.max_minutes))
    return config.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))


class BatchSampler:
    """Indices of training items: uniform over items, or class-balanced (a group first)."""

    def __init__(self, labels, indices, balance, rng):
        self.indices = np.asarray(indices)
        self.labels = np.asarray(labels)[self.indices]
        self.balance = balance
        self.rng = rng
        self.groups = np.unique(self.labels)
        order = np.argsort(self.labels, kind="stable")
        self.sorted_indices = self.indices[order]
        starts = np.searchsorted(self.labels[order], self.groups)
        ends = np.searchsorted(self.labels[order], self.groups, side="right")
        self.starts, self.counts = starts, ends - starts

    def sample(self, n):
        if self.balance != "sampler":
            return self.rng.choice(self.indices, size=n)
        which = self.rng.integers(0, len(self.groups), size=n)
        offsets = (self.rng.random(n) * self.counts[which]).astype(np.int64)
        return self.sorted_indices[self.starts[which] + offsets]


class MixedSampler:
    """Batches with a chosen share of random-crystal items (``share`` in [0, 1]; negative: items
    drawn over the whole training set, as stored), each part drawn by a :class:`BatchSampler`."""

    def __init__(self, labels, indices, is_random, share, balance, rng):
        indices, is_random = np.asarray(indices), np.asarray(is_random, dtype=bool)
        self.labels = np.asarray(labels)
        if share >= 0 and (share > 0 and not is_random.any() or share < 1 and is_random.all()):
            raise ValueError(f"random_share {share:g}: the dataset has {int(is_random.sum())} random and "
                             f"{int((~is_random).sum())} other training items")
        self.share, self.rng = min(float(share), 1.0), rng
        self.parts = ([(1.0, BatchSampler(labels, indices, balance, rng))] if share < 0 else
                      [(w, BatchSampler(labels, indices[mask], balance, rng))
                       for w, mask in ((self.share, is_random), (1 - self.share, ~is_random)) if w > 0])

    def sample(self, n):
        if len(self.parts) == 1:
            return self.parts[0][1].sample(n)
        first = int(self.rng.binomial(n, self.parts[0][0]))
        return np.concatenate([self.parts[0][1].sample(first), self.parts[1][1].sample(n - first)])

    def expected_counts(self):
        """(230,) the space-group frequencies the batches follow (for logit adjustment)."""
        total = np.zeros(230)
        for weight, part in self.parts:
            counts = np.bincount(part.labels, minlength=230).astype(np.float64)
            total += weight * counts / max(counts.sum(), 1.0)
        return total


def rule_target_table() -> torch.Tensor:
    from ..symmetry import rule_targets

    return torch.tensor(np.stack([rule_targets(n) for n in range(1, 231)]), dtype=torch.float32)


def loss_terms(logits, rule_logits, labels, rule_table, config: TrainConfig, log_prior=None):
    """(total, cross-entropy, BCE) for a batch; labels are 0-based group indices."""
    adjusted = logits + log_prior if log_prior is not None else logits
    ce = F.cross_entropy(adjusted, labels, label_smoothing=config.label_smoothing)
    if rule_logits is None:
        return ce, ce, torch.zeros((), device=logits.device)
    targets = rule_table[labels]                       # (B, 46, 2)
    presence = F.binary_cross_entropy_with_logits(rule_logits[..., 0], targets[..., 0])
    direction_terms = F.binary_cross_entropy_with_logits(rule_logits[..., 1], targets[..., 1], reduction="none")
    weight = targets[..., 0]
    direction = (direction_terms * weight).sum() / weight.sum().clamp_min(1)
    bce = presence + direction
    return ce + config.rule_weight * bce, ce, bce


def load_measured(directory, grid: ModelGrid):
    """Labelled measured patterns (rruff-dev layout) as tensors, labels 0-based (monitoring only)."""
    from ..evaluation.sets import measured_set

    values, masks, labels = measured_set(directory, grid)
    return torch.tensor(values), torch.tensor(masks), torch.tensor(labels - 1)


@torch.no_grad()
def accuracy(model, values, masks, labels, device, batch=256, log_prior=None):
    """(top-1, top-5) accuracy of ``model`` on grid tensors; labels 0-based."""
    model.eval()
    logits, _ = in_chunks(lambda v, m: model(v.to(device), m.to(device)), values, masks, batch)
    logits = logits.float() + (log_prior if log_prior is not None else 0)
    top = logits.topk(5, dim=1).indices.cpu()
    truth = labels[:, None]
    top1 = (top[:, :1] == truth).any(1).sum().item()
    top5 = (top == truth).any(1).sum().item()
    model.train()
    return top1 / len(labels), top5 / len(labels)


def train(config: TrainConfig):
    """Train (or resume) and return the run directory; exports ``<out>/model.safetensors``.

    The stages, top to bottom: set up (processes, device, run directory), open the dataset, build
    the network and optimiser, resume from the checkpoint, prepare the validation and measured
    monitoring sets, then step until done (reloading a dataset that is still growing, logging,
    checkpointing) and export."""
    run = _Run(config)
    run.open_dataset()
    run.build_network()
    run.resume()
    run.prepare_monitoring()
    run.announce()
    while run.step < config.steps:
        run.reload_if_grown()
        stop_now = run.train_step()
        run.log_if_due(stop_now)
        run.checkpoint_if_due(stop_now)
        if stop_now:
            break
    run.finish()
    return run.out


class _Run:
    """One training run's state, advanced by ``train`` stage by stage."""

    def __init__(self, config: TrainConfig):
        self.config = config
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        self.rank = 0
        if self.distributed:
            torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
            self.rank = torch.distributed.get_rank()
            if torch.cuda.is_available():
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        self.device = pick_device(config.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.out = Path(config.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.grid = ModelGrid(step=config.grid_step)
        self.checkpoint_path = self.out / "checkpoint.pt"

    # ------------------------------------------------------------------------------- dataset
    def _shard_count(self):
        return len(list(Path(self.config.dataset).glob("shard-*.npz")))

    def open_dataset(self):
        from ..synth.dataset import PeakDataset

        self.loaded_shards = self._shard_count()
        self.dataset = PeakDataset(self.config.dataset)
        self.labels = np.asarray(self.dataset.space_groups) - 1
        # Validation: the first items of the dataset (shards are random draws), fixed even while a
        # dataset that is still being built grows between reloads. A real-structure dataset says
        # its first shard holds the val-split structures (unseen types): exactly those.
        self.n_val = min(self.config.val_size, int(len(self.labels) * self.config.val_fraction))
        first = Path(self.config.dataset) / "shard-00000.npz"
        if (Path(self.config.dataset) / "real_manifest.json").is_file() and first.is_file():
            with np.load(first, allow_pickle=False) as shard:
                self.n_val = len(shard["space_group"])
        self.val_idx = np.arange(self.n_val)

    def _training_view(self):
        """(train indices, sampler, log prior for logit adjustment or None) of the current dataset."""
        from ..priors import prior_probabilities

        train_idx = np.arange(self.n_val, len(self.labels))
        sampler = MixedSampler(self.labels, train_idx, np.asarray(self.dataset.sources)[train_idx] == 0,
                               self.config.random_share, self.config.balance, self.rng)
        prior = None
        if self.config.balance == "logit-adjust":
            prior = torch.tensor(np.log(prior_probabilities(sampler.expected_counts())), dtype=torch.float32, device=self.device)
        return train_idx, sampler, prior

    def reload_if_grown(self):
        """Re-open a dataset that is still being built when it gained shards (every ``reload_every`` steps)."""
        from ..synth.dataset import PeakDataset

        config, step = self.config, self.step
        if config.reload_every and step % config.reload_every == 0 and step and self._shard_count() > self.loaded_shards:
            self.loaded_shards = self._shard_count()
            self.dataset = PeakDataset(config.dataset)   # the build went on: train on the new shards too
            self.labels = np.asarray(self.dataset.space_groups) - 1
            self.train_idx, self.sampler, self.log_prior = self._training_view()
            if self.rank == 0:
                print(f"step {step}: dataset reloaded, {len(self.train_idx):,} train items", flush=True)

    def _make_batch(self, indices, generator):
        from ..synth.batches import render_items

        values, mask = render_items(self.dataset, indices, self.two_theta, generator, config=self.render_config,
                                    max_peaks=self.config.max_peaks)
        return values, mask, torch.as_tensor(self.labels[indices], dtype=torch.long)

    # ------------------------------------------------------------------------ network, resume
    def build_network(self):
        config = self.config
        self.model = build_network(config.architecture, {**config.model, "grid_size": self.grid.size}).to(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.step, self.elapsed_before = 0, 0.0
        self.rng = np.random.default_rng([config.seed, self.rank])
        self.generator = torch.Generator().manual_seed(config.seed * 1000 + self.rank)

    def resume(self):
        """Continue from ``<out>/checkpoint.pt`` when there is one."""
        if self.checkpoint_path.exists():
            state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=True)
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.step, self.elapsed_before = int(state["step"]), float(state["elapsed"])
            self.generator.set_state(state["generator"])
            self.rng = np.random.default_rng([self.config.seed, self.rank, self.step])
        self.wrapped = torch.nn.parallel.DistributedDataParallel(self.model) if self.distributed else self.model

    # ---------------------------------------------------------------------------- monitoring
    def prepare_monitoring(self):
        """The sampler, the loss's rule targets, and the fixed validation and measured sets."""
        from ..synth.batches import grid_axis
        from ..synth.render import RenderConfig

        config = self.config
        self.train_idx, self.sampler, self.log_prior = self._training_view()
        self.rule_table = rule_target_table().to(self.device)
        self.render_config = RenderConfig().replace(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.render.items()})
        self.two_theta = grid_axis(self.grid)
        # a dataset too small for val_fraction to hold one item trains without validation
        self.val_values, self.val_masks, self.val_labels = (
            self._make_batch(self.val_idx, torch.Generator().manual_seed(12345)) if self.n_val else (None, None, None))
        self.measured = None
        if config.measured_dir and Path(config.measured_dir, "labels.csv").exists():
            self.measured = load_measured(config.measured_dir, self.grid)

    def announce(self):
        """Write the config, say what is trained, open the log and start the clocks."""
        if self.rank == 0:
            (self.out / "train_config.json").write_text(json.dumps(asdict(self.config), indent=2) + "\n")
            print(f"training {parameter_count(self.model):,} parameters on {self.device}; {len(self.train_idx):,} train / "
                  f"{len(self.val_idx):,} val items; grid {self.grid.size} points; starting at step {self.step}", flush=True)
        self.log = open(self.out / "log.jsonl", "a") if self.rank == 0 else None
        self.autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda"
                         else torch.autocast("cpu", enabled=False))
        self.start_time = time.time()
        self.data_time = self.model_time = 0.0
        self.running = []
        self.model.train()

    def _minutes(self):
        return (self.elapsed_before + time.time() - self.start_time) / 60

    # ---------------------------------------------------------------------------------- step
    def train_step(self) -> bool:
        """One optimiser step on a freshly rendered batch; True when the time limit is reached."""
        config, device = self.config, self.device
        t0 = time.time()
        values, mask, batch_labels = self._make_batch(self.sampler.sample(config.batch_size), self.generator)
        values, mask, batch_labels = values.to(device), mask.to(device), batch_labels.to(device)
        t1 = time.time()
        self.lr = learning_rate(self.step, config, (self.elapsed_before + t1 - self.start_time) / 60)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        with self.autocast:
            logits, rule_logits = self.wrapped(values, mask)
        loss, ce, bce = loss_terms(logits.float(), None if rule_logits is None else rule_logits.float(),
                                   batch_labels, self.rule_table, config, self.log_prior)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.step += 1
        self.data_time += t1 - t0
        self.model_time += time.time() - t1
        self.running.append((loss.item(), ce.item(), bce.item()))
        self.minutes = self._minutes()
        return bool(config.max_minutes) and self.minutes >= config.max_minutes

    def _due(self, every, stop_now):
        return self.rank == 0 and (self.step % every == 0 or self.step == self.config.steps or stop_now)

    def log_if_due(self, stop_now):
        """Every ``val_every`` steps (and at the end): mean losses, timings, validation and measured accuracy."""
        if not self._due(self.config.val_every, stop_now):
            return
        running = self.running
        record = {"step": self.step, "minutes": round(self.minutes, 2), "lr": self.lr,
                  "loss": float(np.mean([r[0] for r in running])), "ce": float(np.mean([r[1] for r in running])),
                  "bce": float(np.mean([r[2] for r in running])),
                  "data_s_per_step": self.data_time / len(running), "model_s_per_step": self.model_time / len(running)}
        if self.n_val:
            record["val_top1"], record["val_top5"] = accuracy(self.model, self.val_values, self.val_masks, self.val_labels, self.device)
        if self.measured is not None:
            record["measured_top1"], record["measured_top5"] = accuracy(self.model, *self.measured, self.device)
        self.running, self.data_time, self.model_time = [], 0.0, 0.0
        self.log.write(json.dumps(record) + "\n")
        self.log.flush()
        print(json.dumps(record), flush=True)

    def checkpoint_if_due(self, stop_now):
        if self._due(self.config.checkpoint_every, stop_now):
            self._save_checkpoint()

    def _save_checkpoint(self):
        torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "step": self.step,
                    "elapsed": self.elapsed_before + time.time() - self.start_time, "generator": self.generator.get_state()},
                   self.out / "checkpoint.tmp")
        os.replace(self.out / "checkpoint.tmp", self.checkpoint_path)

    # -------------------------------------------------------------------------------- export
    def finish(self):
        """Last checkpoint, the exported model with its sidecar, and the process group's end."""
        from ..nets.store import save_model

        config = self.config
        if self.rank == 0:
            self._save_checkpoint()
            save_model(self.model, self.out / "model.safetensors", self.grid, metadata={
                "training": {"steps": self.step, "minutes": round(self._minutes(), 1),
                             "batch_size": config.batch_size, "balance": config.balance, "seed": config.seed,
                             "dataset": str(config.dataset), "items": len(self.labels),
                             "validation_items": int(self.n_val)},
                "train_prior": "uniform",
            }, architecture=config.architecture)
        if self.distributed:
            torch.distributed.destroy_process_group()
