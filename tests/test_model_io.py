"""Saving and loading networks: safetensors + JSON sidecar with a checksum; never pickle."""

import json
import os
import pickle

import pytest
import torch

from csn_plugin.nets.registry import build_network
from csn_plugin.grid import ModelGrid
from csn_plugin.nets.store import load_model, save_model, sha256_of, sidecar_path

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


# ------------------------------------------------------------------- pinned bundled weights
from csn_plugin.nets import store as model_io  # noqa: E402
from csn_plugin.nets.store import BUNDLED_BASELINES, BUNDLED_NAME, BUNDLED_SHA256, bundled_model_path  # noqa: E402


def test_pinned_manifest_covers_every_bundled_file_and_agrees_with_the_sidecars():
    assert set(BUNDLED_SHA256) == {BUNDLED_NAME, *BUNDLED_BASELINES}
    for name, pinned in BUNDLED_SHA256.items():
        weights = bundled_model_path(name)
        if not weights.is_file():
            pytest.skip(f"{weights} is not installed")
        assert sha256_of(weights) == pinned, name
        sidecar = model_io.read_sidecar(weights)  # every field valid
        assert sidecar["sha256"] == pinned, name
        assert model_io.bundled_name_of(weights) == name
    assert model_io.bundled_name_of(sidecar_path(bundled_model_path())) is None


@pytest.fixture
def bundled_copy(tmp_path, monkeypatch):
    """A copy of the bundled baseline-mlp (weights + sidecar) in tmp_path, installed as the bundled models folder."""
    import shutil

    from csn_plugin import models

    source = bundled_model_path("baseline-mlp")
    if not source.is_file():
        pytest.skip("bundled weights not installed")
    shutil.copy(source, tmp_path / source.name)
    shutil.copy(sidecar_path(source), tmp_path / sidecar_path(source).name)
    monkeypatch.setattr(models, "MODELS_DIR", tmp_path)
    return tmp_path / source.name


def test_bundled_copy_loads(bundled_copy):
    model, grid, info = load_model("baseline-mlp")
    assert info["name"] == "baseline-mlp" and grid.size == model.config.grid_size


def test_replaced_bundled_weights_are_refused_even_with_a_rewritten_sidecar(bundled_copy):
    raw = bytearray(bundled_copy.read_bytes())
    raw[-7] ^= 0x01  # one bit of one weight
    bundled_copy.write_bytes(bytes(raw))
    info = json.loads(sidecar_path(bundled_copy).read_text())
    info["sha256"] = sha256_of(bundled_copy)  # the sidecar agrees with the replaced file...
    sidecar_path(bundled_copy).write_text(json.dumps(info))
    for model in ("baseline-mlp", str(bundled_copy)):  # ...by name and by path: the pin in code refuses it
        with pytest.raises(ValueError, match="pinned in csn_plugin.nets.store") as caught:
            load_model(model)
        assert "\n" not in str(caught.value)


# ------------------------------------------------------------------------- sidecar validation
NAN, INF = float("nan"), float("inf")


def _set(path, value):
    def change(info):
        target = info
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return info
    return change


BAD_SIDECARS = {
    "temperature-nan": (_set(["temperature"], NAN), "'temperature'"),
    "temperature-zero": (_set(["temperature"], 0.0), "'temperature'"),
    "temperature-negative": (_set(["temperature"], -0.9), "'temperature'"),
    "temperature-infinite": (_set(["temperature"], INF), "'temperature'"),
    "temperature-string": (_set(["temperature"], "0.94"), "'temperature'"),
    "temperature-bool": (_set(["temperature"], True), "'temperature'"),
    "rule-rescoring-nan": (_set(["rule_rescoring"], NAN), "'rule_rescoring'"),
    "rule-rescoring-negative": (_set(["rule_rescoring"], -1.0), "'rule_rescoring'"),
    "rule-rescoring-huge": (_set(["rule_rescoring"], 1e9), "'rule_rescoring'"),
    "grid-step-zero": (_set(["grid", "step"], 0.0), "'grid.step'"),
    "grid-step-nan": (_set(["grid", "step"], NAN), "'grid.step'"),
    "grid-stop-before-start": (_set(["grid", "stop"], 4.0), "'grid.stop'"),
    "grid-wavelength-negative": (_set(["grid", "wavelength"], -1.5406), "'grid.wavelength'"),
    "grid-missing-key": (_set(["grid", "wavelength"], KeyError), "'grid'"),
    "grid-not-whole-steps": (_set(["grid", "step"], 0.07), "whole number"),
    "grid-other-than-weights": (_set(["grid", "step"], 0.05), "'config.grid_size'"),
    "config-grid-size-other": (_set(["config", "grid_size"], 1701), "'config.grid_size'"),
    "config-grid-size-string": (_set(["config", "grid_size"], "851"), "'config.grid_size'"),
    "config-not-object": (_set(["config"], [1, 2]), "'config'"),
    "format-unknown": (_set(["format"], "pickle-1"), "'format'"),
    "architecture-unknown": (_set(["architecture"], "resnet"), "'architecture'"),
    "sha256-not-hex": (_set(["sha256"], "xyz"), "'sha256'"),
    "name-number": (_set(["name"], 5), "'name'"),
    "prior-warnings-list": (_set(["prior_warnings"], ["uniform"]), "'prior_warnings'"),
}


@pytest.fixture
def saved_mlp(tmp_path):
    weights = tmp_path / "net.safetensors"
    save_model(trained_like("mlp"), weights, GRID, metadata={"name": "tiny", "temperature": 0.9, "rule_rescoring": 0.0,
                                                           "prior_warnings": {}}, architecture="mlp")
    return weights


@pytest.mark.parametrize("case", sorted(BAD_SIDECARS))
def test_bad_sidecar_field_is_refused_with_one_line(saved_mlp, case):
    change, field = BAD_SIDECARS[case]
    sidecar = sidecar_path(saved_mlp)
    load_model(saved_mlp)  # valid before
    sidecar.write_text(json.dumps(change(json.loads(sidecar.read_text()))))  # json writes NaN / Infinity literals
    with pytest.raises(ValueError) as caught:
        load_model(saved_mlp)
    message = str(caught.value)
    assert message.startswith(f"{sidecar}: "), message
    assert field in message and "\n" not in message, message


@pytest.mark.parametrize("text", ["", "{not json", "[1, 2, 3]", "\xff\xfe garbage"])
def test_unparsable_sidecar_is_refused_with_one_line(saved_mlp, text):
    sidecar_path(saved_mlp).write_bytes(text.encode("latin-1"))
    with pytest.raises(ValueError, match="sidecar") as caught:
        load_model(saved_mlp)
    assert "\n" not in str(caught.value) and str(caught.value).startswith(str(sidecar_path(saved_mlp)))


def test_grid_disagreeing_with_the_network_is_refused(tmp_path):
    """A sidecar without config.grid_size builds the network's default size (1701), not the grid's 851."""
    weights = tmp_path / "csn.safetensors"
    save_model(trained_like("csn"), weights, GRID)
    info = json.loads(sidecar_path(weights).read_text())
    del info["config"]["grid_size"]
    sidecar_path(weights).write_text(json.dumps(info))
    with pytest.raises(ValueError, match="network takes 1701 grid points but 'grid' has 851") as caught:
        load_model(weights)
    assert "\n" not in str(caught.value)


def test_weights_holding_nan_are_refused(tmp_path):
    model = trained_like("mlp")
    with torch.no_grad():
        next(model.parameters()).view(-1)[3] = float("nan")
    weights = tmp_path / "nan.safetensors"
    save_model(model, weights, GRID, architecture="mlp")
    with pytest.raises(ValueError, match="NaN or infinite"):
        load_model(weights)


def test_cli_refuses_a_bad_sidecar_in_one_line(saved_mlp):
    from click.testing import CliRunner

    from csn_plugin.cli.main import cli
    from csn_plugin.data import EXAMPLE_PATTERN

    info = json.loads(sidecar_path(saved_mlp).read_text())
    info["temperature"] = NAN
    sidecar_path(saved_mlp).write_text(json.dumps(info))
    result = CliRunner().invoke(cli, ["classify", "--device", "cpu", "--model", str(saved_mlp), "--format", "json", str(EXAMPLE_PATTERN)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), (result.output, result.exception)
    assert "nan%" not in result.output.lower() and "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if "temperature" in line]
    assert len(lines) == 1 and "cannot load classifier 'csn'" in lines[0], result.stderr


def test_rule_rescoring_option_is_validated(saved_mlp):
    from csn_plugin.inference.classifier import SpaceGroupClassifier

    for bad in (NAN, -2.0, "strong"):
        with pytest.raises(ValueError, match="rule_rescoring"):
            SpaceGroupClassifier(model=saved_mlp, device="cpu", rule_rescoring=bad)
    assert SpaceGroupClassifier(model=saved_mlp, device="cpu", rule_rescoring=2.0).rule_rescoring == 2.0
