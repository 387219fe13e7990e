"""Saving and loading CSN weights: safetensors plus a JSON sidecar (config, grid, training prior,
sha256 of the weights). Loading verifies the checksum and never executes pickled code."""

import hashlib
import json
from pathlib import Path

from .grid import ModelGrid

BUNDLED_NAME = "csn"
# The baselines of the comparison in docs/benchmarks.md, trained with the same data and budget as
# the CSN ablation run; registered as classifiers by the built-in plugin.
BUNDLED_BASELINES = ("baseline-mlp", "baseline-cnn", "baseline-nopoolcnn")


def bundled_model_path(name: str = BUNDLED_NAME) -> Path:
    """``models/<name>.safetensors`` of a bundled model ("csn" or one of ``BUNDLED_BASELINES``)."""
    from .models import MODELS_DIR

    return MODELS_DIR / f"{name}.safetensors"


def resolve_model(model=None) -> Path:
    """A weights path from None (the bundled CSN), a bundled model's name or a path."""
    if model is None:
        return bundled_model_path()
    if isinstance(model, str) and model in (BUNDLED_NAME, *BUNDLED_BASELINES):
        return bundled_model_path(model)
    return Path(model)


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sidecar_path(weights_path) -> Path:
    return Path(weights_path).with_suffix(".json")


def save_model(model, weights_path, grid: ModelGrid, metadata: dict | None = None, architecture: str = "csn") -> Path:
    """Write ``weights_path`` (.safetensors) and its JSON sidecar; returns the sidecar path."""
    from safetensors.torch import save_file

    weights_path = Path(weights_path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(weights_path))
    info = {
        "format": "csn-safetensors-1",
        "architecture": architecture,
        "config": model.config.to_dict(),
        "grid": grid.to_dict(),
        "sha256": sha256_of(weights_path),
        **(metadata or {}),
    }
    sidecar = sidecar_path(weights_path)
    sidecar.write_text(json.dumps(info, indent=2) + "\n")
    return sidecar


def load_model(weights_path=None, device="cpu"):
    """Load a model (a path, a bundled model's name, or None for the bundled CSN); returns
    ``(model in eval mode, grid, sidecar info)``.

    Raises ValueError (one line) if the weights are missing, corrupt or do not match the checksum.
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .architectures import build_network

    weights_path = resolve_model(weights_path)
    sidecar = sidecar_path(weights_path)
    if not weights_path.is_file() or not sidecar.is_file():
        raise ValueError(f"{weights_path}: model weights or their sidecar {sidecar.name} are missing")
    info = json.loads(sidecar.read_text())
    actual = sha256_of(weights_path)
    if actual != info.get("sha256"):
        raise ValueError(f"{weights_path}: checksum mismatch (sha256 {actual[:12]}..., expected {str(info.get('sha256'))[:12]}...): the file is corrupt or was replaced")
    model = build_network(info.get("architecture", "csn"), info["config"])
    try:
        model.load_state_dict(load_file(str(weights_path)))
    except (SafetensorError, RuntimeError) as error:  # not safetensors, or weights that do not fit the config
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"{weights_path}: not loadable as a {info.get('architecture', 'csn')} model: {first_line}") from None
    model.to(torch.device(device)).eval()
    return model, ModelGrid(**info["grid"]), info
