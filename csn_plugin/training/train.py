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
from ..nets.registry import build_network
from .config import TrainConfig
from ..nets.chunks import in_chunks
from ..nets.csn import parameter_count


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
    """Train (or resume) and return the run directory; exports ``<out>/model.safetensors``."""
    from ..synth.dataset import PeakDataset
    from ..nets.store import save_model
    from ..priors import prior_probabilities
    from ..synth.batches import grid_axis, render_items
    from ..synth.render import RenderConfig

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank = 0
    if distributed:
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank = torch.distributed.get_rank()
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    device = pick_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    grid = ModelGrid(step=config.grid_step)
    def shard_count():
        return len(list(Path(config.dataset).glob("shard-*.npz")))

    loaded_shards = shard_count()
    dataset = PeakDataset(config.dataset)
    labels = np.asarray(dataset.space_groups) - 1
    # Validation: the first items of the dataset (shards are random draws), fixed even while a
    # dataset that is still being built grows between reloads.
    n_val = min(config.val_size, int(len(labels) * config.val_fraction))
    val_idx = np.arange(n_val)

    model = build_network(config.architecture, {**config.model, "grid_size": grid.size}).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    step, elapsed_before = 0, 0.0
    checkpoint_path = out / "checkpoint.pt"
    rng = np.random.default_rng([config.seed, rank])
    generator = torch.Generator().manual_seed(config.seed * 1000 + rank)
    if checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed_before = int(state["step"]), float(state["elapsed"])
        generator.set_state(state["generator"])
        rng = np.random.default_rng([config.seed, rank, step])
    wrapped = torch.nn.parallel.DistributedDataParallel(model) if distributed else model

    def training_view():
        train_idx = np.arange(n_val, len(labels))
        counts = np.bincount(labels[train_idx], minlength=230).astype(np.float64)
        prior = None
        if config.balance == "logit-adjust":
            prior = torch.tensor(np.log(prior_probabilities(counts)), dtype=torch.float32, device=device)
        return train_idx, BatchSampler(labels, train_idx, config.balance, rng), prior

    train_idx, sampler, log_prior = training_view()
    rule_table = rule_target_table().to(device)
    render_config = RenderConfig()
    two_theta = grid_axis(grid)

    def make_batch(indices, gen):
        values, mask = render_items(dataset, indices, two_theta, gen, config=render_config, max_peaks=config.max_peaks)
        return values, mask, torch.as_tensor(labels[indices], dtype=torch.long)

    # a dataset too small for val_fraction to hold one item trains without validation
    val_values, val_masks, val_labels = make_batch(val_idx, torch.Generator().manual_seed(12345)) if n_val else (None, None, None)
    measured = None
    if config.measured_dir and Path(config.measured_dir, "labels.csv").exists():
        measured = load_measured(config.measured_dir, grid)

    if rank == 0:
        (out / "train_config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
        print(f"training {parameter_count(model):,} parameters on {device}; {len(train_idx):,} train / {len(val_idx):,} val items; "
              f"grid {grid.size} points; starting at step {step}", flush=True)
    log = open(out / "log.jsonl", "a") if rank == 0 else None
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    start_time = time.time()
    data_time = model_time = 0.0
    running = []

    def save_checkpoint():
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                    "elapsed": elapsed_before + time.time() - start_time, "generator": generator.get_state()},
                   out / "checkpoint.tmp")
        os.replace(out / "checkpoint.tmp", checkpoint_path)

    model.train()
    while step < config.steps:
        if config.reload_every and step % config.reload_every == 0 and step and shard_count() > loaded_shards:
            loaded_shards = shard_count()
            dataset = PeakDataset(config.dataset)   # the build went on: train on the new shards too
            labels = np.asarray(dataset.space_groups) - 1
            train_idx, sampler, log_prior = training_view()
            if rank == 0:
                print(f"step {step}: dataset reloaded, {len(train_idx):,} train items", flush=True)
        t0 = time.time()
        values, mask, batch_labels = make_batch(sampler.sample(config.batch_size), generator)
        values, mask, batch_labels = values.to(device), mask.to(device), batch_labels.to(device)
        t1 = time.time()
        lr = learning_rate(step, config, (elapsed_before + t1 - start_time) / 60)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with autocast:
            logits, rule_logits = wrapped(values, mask)
        loss, ce, bce = loss_terms(logits.float(), None if rule_logits is None else rule_logits.float(),
                                   batch_labels, rule_table, config, log_prior)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        data_time += t1 - t0
        model_time += time.time() - t1
        running.append((loss.item(), ce.item(), bce.item()))
        minutes = (elapsed_before + time.time() - start_time) / 60
        stop_now = bool(config.max_minutes) and minutes >= config.max_minutes
        if rank == 0 and (step % config.val_every == 0 or step == config.steps or stop_now):
            record = {"step": step, "minutes": round(minutes, 2), "lr": lr,
                      "loss": float(np.mean([r[0] for r in running])), "ce": float(np.mean([r[1] for r in running])),
                      "bce": float(np.mean([r[2] for r in running])),
                      "data_s_per_step": data_time / len(running), "model_s_per_step": model_time / len(running)}
            if n_val:
                record["val_top1"], record["val_top5"] = accuracy(model, val_values, val_masks, val_labels, device)
            if measured is not None:
                record["measured_top1"], record["measured_top5"] = accuracy(model, *measured, device)
            running, data_time, model_time = [], 0.0, 0.0
            log.write(json.dumps(record) + "\n")
            log.flush()
            print(json.dumps(record), flush=True)
        if rank == 0 and (step % config.checkpoint_every == 0 or step == config.steps or stop_now):
            save_checkpoint()
        if stop_now:
            break
    if rank == 0:
        save_checkpoint()
        save_model(model, out / "model.safetensors", grid, metadata={
            "training": {"steps": step, "minutes": round((elapsed_before + time.time() - start_time) / 60, 1),
                         "batch_size": config.batch_size, "balance": config.balance, "seed": config.seed,
                         "dataset": str(config.dataset), "items": len(labels),
                         "validation_items": int(n_val)},
            "train_prior": "uniform",
        }, architecture=config.architecture)
    if distributed:
        torch.distributed.destroy_process_group()
    return out
