"""Saving and loading networks: safetensors + JSON sidecar with a checksum; never pickle."""

import json
import os
import pickle

import pytest
import torch

from csn_plugin.architectures import build_network
from csn_plugin.grid import ModelGrid
from csn_plugin.model_io import load_model, save_model, sha256_of, sidecar_path

pytestmark = pytest.mark.one_thread

GRID = ModelGrid(step=0.1)  # 851 points
TINY_CSN = {"stem_channels": [8, 16, 32], "dim": 32, "heads": 2, "gau_layers": 1, "gau_key_dim": 16, "rule_dim": 4}
CONFIGS = {
    "csn": TINY_CSN,
    "mlp": {"hidden": 16},
    "cnn": {"hidden": 16, "channels": 4},
    "nopoolcnn": {"hidden": 16, "channels": 4},
}


def trained_like(architecture):
    """A network with non-default weights (and BatchNorm statistics) so a round trip is meaningful."""
    torch.manual_seed(7)
    model = build_network(architecture, {**CONFIGS[architecture], "grid_size": GRID.size})
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    model.train()
    model(*inputs(4, seed=3))  # updates BatchNorm running statistics (CSN)
    return model.eval()


def inputs(batch=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    values = torch.rand(batch, GRID.size, generator=generator) ** 8
    return values / values.amax(1, keepdim=True), torch.ones(batch, GRID.size)


@pytest.mark.parametrize("architecture", ["csn", "mlp", "cnn", "nopoolcnn"])
def test_round_trip_gives_identical_outputs(tmp_path, architecture):
    model = trained_like(architecture)
    weights = tmp_path / "net.safetensors"
    sidecar = save_model(model, weights, GRID, metadata={"note": "unit test"}, architecture=architecture)
    assert sidecar == sidecar_path(weights) == tmp_path / "net.json"

    loaded, grid, info = load_model(weights)
    assert type(loaded) is type(model)
    assert not loaded.training
    assert grid == GRID
    assert info["architecture"] == architecture and info["note"] == "unit test"
    assert info["sha256"] == sha256_of(weights)
    assert loaded.config == model.config
    values, mask = inputs()
    with torch.no_grad():
        expected, expected_rules = model(values, mask)
        actual, actual_rules = loaded(values, mask)
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)
    if expected_rules is not None:
        torch.testing.assert_close(actual_rules, expected_rules, rtol=0, atol=0)
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name].float(), tensor.float(), rtol=0, atol=0, msg=name)


def test_file_is_safetensors_not_pickle(tmp_path):
    from safetensors import safe_open

    weights = tmp_path / "net.safetensors"
    model = trained_like("csn")
    save_model(model, weights, GRID)
    raw = weights.read_bytes()
    header_length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + header_length])
    assert set(header) - {"__metadata__"} == set(model.state_dict())
    assert raw[:2] != b"PK" and raw[:1] != b"\x80"  # neither torch's zip nor a bare pickle
    with safe_open(str(weights), framework="pt") as handle:
        assert set(handle.keys()) == set(model.state_dict())
    info = json.loads(sidecar_path(weights).read_text())
    assert info["format"] == "csn-safetensors-1" and info["config"]["dim"] == 32
    assert info["grid"] == GRID.to_dict()


def test_tampered_weights_fail_the_checksum(tmp_path):
    weights = tmp_path / "net.safetensors"
    save_model(trained_like("csn"), weights, GRID)
    raw = bytearray(weights.read_bytes())
    raw[-5] ^= 0xFF  # one byte of one weight
    weights.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="checksum") as caught:
        load_model(weights)
    assert "\n" not in str(caught.value)


def test_missing_files(tmp_path):
    weights = tmp_path / "net.safetensors"
    save_model(trained_like("mlp"), weights, GRID, architecture="mlp")
    sidecar_path(weights).unlink()
    with pytest.raises(ValueError, match="missing"):
        load_model(weights)
    with pytest.raises(ValueError, match="missing"):
        load_model(tmp_path / "absent.safetensors")


class _Payload:
    """Unpickling this would create a marker file: proof that code was executed."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def test_pickle_with_a_matching_checksum_is_not_executed(tmp_path):
    weights = tmp_path / "net.safetensors"
    save_model(trained_like("csn"), weights, GRID)
    marker = tmp_path / "code-was-executed"
    weights.write_bytes(pickle.dumps({"model": _Payload(marker)}))
    info = json.loads(sidecar_path(weights).read_text())
    info["sha256"] = sha256_of(weights)  # an attacker can rewrite the sidecar too
    sidecar_path(weights).write_text(json.dumps(info))
    with pytest.raises(ValueError, match="not loadable"):
        load_model(weights)
    assert not marker.exists()


def test_weights_that_do_not_fit_the_config(tmp_path):
    weights = tmp_path / "net.safetensors"
    save_model(trained_like("csn"), weights, GRID)
    info = json.loads(sidecar_path(weights).read_text())
    info["config"]["dim"] = 48  # a sidecar from another model
    sidecar_path(weights).write_text(json.dumps(info))
    with pytest.raises(ValueError, match="not loadable") as caught:
        load_model(weights)
    assert "\n" not in str(caught.value)
