"""Saving and loading CSN weights: safetensors plus a JSON sidecar (config, grid, training prior,
sha256 of the weights). Loading verifies the checksum and never executes pickled code.

The sha256 of each bundled weight file is also pinned here, in code (``BUNDLED_SHA256``): the
JSON sidecar is editable data, so a replaced bundled file with a rewritten sidecar is still
refused. Every sidecar field is validated (``validate_sidecar``) before the weights are used; a
bad one is refused with one line naming the file and the field.
"""

import hashlib
import json
import math
import numbers
import re
from pathlib import Path

from ..grid import ModelGrid

BUNDLED_NAME = "csn"
# The baselines of the comparison in docs/benchmarks.md, trained with the same data and budget as
# the CSN ablation run; registered as classifiers by the built-in plugin.
BUNDLED_BASELINES = ("baseline-mlp", "baseline-cnn", "baseline-nopoolcnn")

# sha256 of every bundled weight file (models/<name>.safetensors), signed off with the code.
# Re-bundling a model (benchmarks/ablation.py --bundle, a retrained CSN) means updating this table;
# tests/test_model_io.py checks it against the files and their sidecars.
BUNDLED_SHA256 = {
    "csn": "91384080b7a6716a57a5dcaf7a4b0e0d2d326e25cd5cb9b148e6ada331a7b218",
    "baseline-mlp": "8c4cef91dd840a4b4a8ac5b2365c24f25ec973e2377f6d835d7968ce4e4595b3",
    "baseline-cnn": "e20bbd3c3a8f752e19df208be6e98b6033d41836ef78d31dad0edd6f8bb72c55",
    "baseline-nopoolcnn": "8c35a28c4090489961c172f9f42f4e7648730c470598d1a14adf8c236a2c0074",
}

SIDECAR_FORMAT = "csn-safetensors-1"
TEMPERATURE_RANGE = (1e-3, 1e3)  # softmax temperature of the calibration (exclusive of 0)
RULE_RESCORING_RANGE = (0.0, 10.0)  # weight of the rule-agreement term (see SpaceGroupClassifier)
MAX_GRID_POINTS = 100_000
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def bundled_model_path(name: str = BUNDLED_NAME) -> Path:
    """``models/<name>.safetensors`` of a bundled model ("csn" or one of ``BUNDLED_BASELINES``)."""
    from ..models import MODELS_DIR

    return MODELS_DIR / f"{name}.safetensors"


def bundled_name_of(weights_path):
    """The bundled model's name if ``weights_path`` is one of the bundled weight files, else None."""
    try:
        resolved = Path(weights_path).resolve()
    except (OSError, RuntimeError):
        return None
    for name in (BUNDLED_NAME, *BUNDLED_BASELINES):
        try:
            if bundled_model_path(name).resolve() == resolved:
                return name
        except (OSError, RuntimeError):
            continue
    return None


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


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _finite_in(value, field, low, high, low_open=False):
    """``value`` as a float when it is a finite real in [low, high] ((low, high] with low_open)."""
    if not _is_number(value) or not math.isfinite(float(value)):
        raise ValueError(f"{field} must be a finite number, not {value!r:.40}")
    value = float(value)
    if value > high or value < low or (low_open and value == low):
        bracket = "(" if low_open else "["
        raise ValueError(f"{field} is {value:g}, outside {bracket}{low:g}, {high:g}]")
    return value


def check_rule_rescoring(value, field="the rule_rescoring option"):
    """The rule re-scoring weight as a float in ``RULE_RESCORING_RANGE``, else ValueError."""
    return _finite_in(value, field, *RULE_RESCORING_RANGE)


def validate_sidecar(info) -> dict:
    """Check every field of a sidecar (the parsed JSON); returns it, or raises ValueError naming
    the first bad field. Weights-dependent checks (the grid against the network) are in load_model."""
    from .registry import ARCHITECTURE_NAMES

    if not isinstance(info, dict):
        raise ValueError(f"the sidecar holds a JSON {type(info).__name__}, not an object")
    if info.get("format") != SIDECAR_FORMAT:
        raise ValueError(f"sidecar field 'format' is {info.get('format')!r:.40}, not {SIDECAR_FORMAT!r}")
    architecture = info.get("architecture")
    if architecture not in ARCHITECTURE_NAMES:
        raise ValueError(f"sidecar field 'architecture' is {architecture!r:.40}, not one of {', '.join(ARCHITECTURE_NAMES)}")
    config = info.get("config")
    if not isinstance(config, dict):
        raise ValueError(f"sidecar field 'config' must be an object, not {type(config).__name__}")
    if "grid_size" in config and (not isinstance(config["grid_size"], int) or isinstance(config["grid_size"], bool)
                                  or not 2 <= config["grid_size"] <= MAX_GRID_POINTS):
        raise ValueError(f"sidecar field 'config.grid_size' is {config['grid_size']!r:.40}, not an int in 2..{MAX_GRID_POINTS}")
    grid = info.get("grid")
    if not isinstance(grid, dict) or set(grid) != {"start", "stop", "step", "wavelength"}:
        shown = sorted(grid) if isinstance(grid, dict) else type(grid).__name__
        raise ValueError(f"sidecar field 'grid' must hold start, stop, step and wavelength, not {shown}")
    start = _finite_in(grid["start"], "sidecar field 'grid.start'", 0.0, 180.0, low_open=True)
    stop = _finite_in(grid["stop"], "sidecar field 'grid.stop'", start, 180.0, low_open=True)
    step = _finite_in(grid["step"], "sidecar field 'grid.step'", 0.0, stop - start, low_open=True)
    _finite_in(grid["wavelength"], "sidecar field 'grid.wavelength'", 0.0, 10.0, low_open=True)
    intervals = (stop - start) / step
    if abs(intervals - round(intervals)) > 1e-6 * max(1.0, intervals) or round(intervals) + 1 > MAX_GRID_POINTS:
        raise ValueError(f"sidecar field 'grid': {start:g}..{stop:g} is not a whole number of {step:g} steps "
                         f"(at most {MAX_GRID_POINTS} points)")
    size = ModelGrid(**grid).size
    if "grid_size" in config and config["grid_size"] != size:
        raise ValueError(f"sidecar field 'config.grid_size' ({config['grid_size']}) disagrees with 'grid' ({size} points)")
    sha = info.get("sha256")
    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise ValueError(f"sidecar field 'sha256' is {sha!r:.20}, not 64 lower-case hex digits")
    if "temperature" in info:
        _finite_in(info["temperature"], "sidecar field 'temperature'", *TEMPERATURE_RANGE)
    if "rule_rescoring" in info:
        check_rule_rescoring(info["rule_rescoring"], "sidecar field 'rule_rescoring'")
    for field in ("name", "train_prior", "model_card"):
        if field in info and (not isinstance(info[field], str) or not info[field]):
            raise ValueError(f"sidecar field {field!r} must be a non-empty string, not {info[field]!r:.40}")
    warnings_table = info.get("prior_warnings", {})
    if not isinstance(warnings_table, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in warnings_table.items()):
        raise ValueError("sidecar field 'prior_warnings' must map prior names to strings")
    if "training" in info and not isinstance(info["training"], dict):
        raise ValueError(f"sidecar field 'training' must be an object, not {type(info['training']).__name__}")
    return info


def read_sidecar(weights_path) -> dict:
    """The validated sidecar of ``weights_path``; ValueError (one line naming the file) if it is
    missing, not JSON or has a bad field."""
    sidecar = sidecar_path(weights_path)
    try:
        info = json.loads(sidecar.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"{sidecar}: cannot read the sidecar: {error.strerror or error}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{sidecar}: the sidecar is not valid JSON ({' '.join(str(error).split())})") from None
    try:
        return validate_sidecar(info)
    except ValueError as error:
        raise ValueError(f"{sidecar}: bad sidecar: {error}") from None


def load_model(weights_path=None, device="cpu"):
    """Load a model (a path, a bundled model's name, or None for the bundled CSN); returns
    ``(model in eval mode, grid, sidecar info)``.

    Raises ValueError (one line) if the weights are missing, corrupt, not the bundled ones pinned
    in ``BUNDLED_SHA256``, do not match the checksum, hold NaN, or the sidecar is invalid.
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .registry import build_network

    weights_path = resolve_model(weights_path)
    sidecar = sidecar_path(weights_path)
    if not weights_path.is_file() or not sidecar.is_file():
        raise ValueError(f"{weights_path}: model weights or their sidecar {sidecar.name} are missing")
    info = read_sidecar(weights_path)
    actual = sha256_of(weights_path)
    bundled = bundled_name_of(weights_path)
    if bundled is not None and actual != BUNDLED_SHA256[bundled]:
        raise ValueError(f"{weights_path}: not the bundled {bundled} weights (sha256 {actual[:12]}..., pinned in csn_plugin.nets.store: "
                         f"{BUNDLED_SHA256[bundled][:12]}...): the file is corrupt or was replaced; reinstall csn-plugin")
    if actual != info["sha256"]:
        raise ValueError(f"{weights_path}: checksum mismatch (sha256 {actual[:12]}..., expected {info['sha256'][:12]}...): the file is corrupt or was replaced")
    try:
        model = build_network(info["architecture"], info["config"])
    except (TypeError, ValueError, KeyError, ZeroDivisionError, RuntimeError) as error:
        raise ValueError(f"{sidecar}: bad sidecar: 'config' does not make a {info['architecture']} network: "
                         f"{' '.join(str(error).split()) or type(error).__name__}") from None
    grid = ModelGrid(**info["grid"])
    if getattr(model.config, "grid_size", grid.size) != grid.size:
        raise ValueError(f"{sidecar}: bad sidecar: the network takes {model.config.grid_size} grid points but 'grid' has {grid.size}")
    try:
        state = load_file(str(weights_path))
        model.load_state_dict(state)
    except (SafetensorError, RuntimeError) as error:  # not safetensors, or weights that do not fit the config
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"{weights_path}: not loadable as a {info['architecture']} model: {first_line}") from None
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{weights_path}: the weights hold NaN or infinite values (tensor {name})")
    model.to(torch.device(device)).eval()
    return model, grid, info
