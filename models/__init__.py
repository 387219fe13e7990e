"""Bundled CSN model weights (safetensors), their config and model card."""

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent
