"""Temperature scaling (Guo et al. 2017): one scalar T fitted on held-out synthetic patterns so
that softmax(logits / T) is calibrated; stored in the model's sidecar and applied at inference."""

import json

import numpy as np


def fit_temperature(logits, labels, log_prior=None):
    """T minimising the negative log-likelihood of 0-based ``labels`` under softmax(logits/T + log_prior)."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    bias = 0.0 if log_prior is None else np.asarray(log_prior, dtype=np.float64)

    def nll(temperature):
        z = logits / temperature + bias
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(labels)), labels]))

    candidates = np.exp(np.linspace(np.log(0.25), np.log(8.0), 121))
    best = min(candidates, key=nll)
    fine = best * np.exp(np.linspace(-0.03, 0.03, 31))
    return float(min(fine, key=nll))


def calibrate_model(weights_path, dataset_dir, items=2048, seed=777):
    """Fit T on the validation items of a training dataset (the first ``items``, which ``csn
    train`` holds out) rendered once, under that dataset's prior; write it into the sidecar."""
    import torch

    from ..nets.chunks import in_chunks
    from ..nets.store import load_model, sidecar_path
    from ..priors import prior_probabilities
    from ..synth.batches import render_items
    from ..synth.dataset import PeakDataset

    model, grid, info = load_model(weights_path)
    dataset = PeakDataset(dataset_dir)
    held_out = int(info.get("training", {}).get("validation_items", items))
    indices = np.arange(min(items, held_out, len(dataset)))
    values, masks = render_items(dataset, indices, grid, torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        logits = in_chunks(model, values, masks, 256)[0].numpy()
    labels = np.asarray(dataset.space_groups)[indices] - 1
    log_prior = np.log(prior_probabilities(np.bincount(dataset.space_groups - 1, minlength=230)))
    temperature = fit_temperature(logits, labels, log_prior)
    sidecar = sidecar_path(weights_path)
    data = json.loads(sidecar.read_text())
    data["temperature"] = temperature
    sidecar.write_text(json.dumps(data, indent=2) + "\n")
    return temperature
