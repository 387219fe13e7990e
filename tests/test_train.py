"""Training: a tiny real run (dataset -> train -> export -> resume), the sampler, the learning-rate
schedule, the loss, and the ``csn train`` command."""

import json
import math
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from csn_plugin.cli.main import cli
from csn_plugin.nets.store import load_model
from csn_plugin.training.train import BatchSampler, MixedSampler, TrainConfig, learning_rate, loss_terms, rule_target_table, train

pytestmark = pytest.mark.one_thread

TINY_MODEL = {"dim": 32, "heads": 2, "gau_layers": 1, "gau_key_dim": 16, "stem_channels": [8, 16, 32]}


@pytest.fixture(scope="module")
def dataset_dir(tiny_dataset_dir):
    return tiny_dataset_dir


def tiny_config(dataset_dir, out, **changes):
    settings = dict(dataset=str(dataset_dir), out=str(out), steps=6, batch_size=8, val_every=3, checkpoint_every=3,
                    model=dict(TINY_MODEL), grid_step=0.1, val_size=8, val_fraction=0.2, warmup=2)
    return TrainConfig(**{**settings, **changes})


def read_log(run_dir):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def run_dir(dataset_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert train(tiny_config(dataset_dir, out)) == out
    return out


def test_run_writes_log_checkpoint_and_loadable_model(run_dir):
    assert {"checkpoint.pt", "log.jsonl", "model.safetensors", "model.json", "train_config.json"} <= {p.name for p in run_dir.iterdir()}
    log = read_log(run_dir)
    assert [record["step"] for record in log] == [3, 6]
    for record in log:
        assert math.isfinite(record["loss"]) and record["loss"] == pytest.approx(record["ce"] + record["bce"], rel=1e-5)
        assert 0 <= record["val_top1"] <= record["val_top5"] <= 1
    model, grid, info = load_model(run_dir / "model.safetensors")
    assert grid.step == 0.1 and grid.size == 851
    assert info["architecture"] == "csn" and info["training"]["steps"] == 6 and info["training"]["items"] == 40
    assert model.config.dim == 32 and model.config.grid_size == 851
    with torch.no_grad():
        logits, rules = model(torch.rand(2, grid.size), torch.ones(2, grid.size))
    assert logits.shape == (2, 230) and rules.shape == (2, 46, 2)
    # the exported weights are the trained ones, not a fresh initialisation
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert state["step"] == 6
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor.float(), state["model"][name].float(), msg=name)


def test_resume_continues_at_the_saved_step(run_dir, dataset_dir, tmp_path, capsys):
    resumed = tmp_path / "resumed"
    shutil.copytree(run_dir, resumed)
    before = read_log(resumed)
    checkpoint = torch.load(resumed / "checkpoint.pt", weights_only=True)
    train(tiny_config(dataset_dir, resumed, steps=9))
    assert "starting at step 6" in capsys.readouterr().out
    new_records = read_log(resumed)[len(before):]
    assert [record["step"] for record in new_records] == [9]
    state = torch.load(resumed / "checkpoint.pt", weights_only=True)
    assert state["step"] == 9
    changed = [name for name in state["model"] if not torch.equal(state["model"][name], checkpoint["model"][name])]
    assert changed  # it trained on from the checkpoint
    _, _, info = load_model(resumed / "model.safetensors")
    assert info["training"]["steps"] == 9


def test_balanced_sampler_is_uniform_over_groups():
    labels = np.array([0] * 1000 + [5] * 30 + [9] * 3 + [200] * 1)
    indices = np.arange(1, len(labels))  # item 0 is held out
    sampler = BatchSampler(labels, indices, "sampler", np.random.default_rng(0))
    drawn = sampler.sample(40_000)
    assert np.isin(drawn, indices).all()
    share = np.array([np.mean(labels[drawn] == g) for g in (0, 5, 9, 200)])
    np.testing.assert_allclose(share, 0.25, atol=0.015)
    # inside a group the items are drawn uniformly too
    small = np.bincount(drawn[labels[drawn] == 9] - 1030, minlength=3)
    np.testing.assert_allclose(small / small.sum(), 1 / 3, atol=0.03)
    assert 0 not in drawn


def test_unbalanced_sampler_follows_item_counts():
    labels = np.array([0] * 900 + [1] * 100)
    sampler = BatchSampler(labels, np.arange(1000), "none", np.random.default_rng(1))
    drawn = sampler.sample(20_000)
    assert np.mean(labels[drawn] == 0) == pytest.approx(0.9, abs=0.01)


def test_learning_rate_schedule():
    config = TrainConfig(dataset="-", out="-", lr=1e-3, warmup=10, steps=110)
    assert learning_rate(0, config) == pytest.approx(1e-4)          # linear warm-up from lr / warmup
    assert learning_rate(4, config) == pytest.approx(5e-4)
    assert learning_rate(9, config) == pytest.approx(1e-3)
    assert learning_rate(10, config) == pytest.approx(1e-3)         # cosine starts at the peak
    assert learning_rate(60, config) == pytest.approx(1e-3 * (0.02 + 0.98 * 0.5))  # halfway
    assert learning_rate(110, config) == pytest.approx(2e-5)        # ends at 2 %
    after = [learning_rate(s, config) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(after, after[1:]))
    assert learning_rate(500, config) == pytest.approx(2e-5)        # stays at the floor


def test_learning_rate_with_max_minutes():
    config = TrainConfig(dataset="-", out="-", lr=1e-3, warmup=10, steps=100_000, max_minutes=60)
    early = learning_rate(20, config, minutes=0.0)
    assert early == pytest.approx(1e-3, rel=1e-3)
    assert learning_rate(20, config, minutes=30) == pytest.approx(1e-3 * 0.51)  # time is half spent
    assert learning_rate(20, config, minutes=60) == pytest.approx(2e-5)
    assert learning_rate(20, config, minutes=90) == pytest.approx(2e-5)
    assert learning_rate(5, config, minutes=59) == pytest.approx(6e-4)          # warm-up ignores time
    # whichever runs out first: steps nearly done beats little time spent
    config.steps = 30
    assert learning_rate(29, config, minutes=1) < learning_rate(20, config, minutes=1)


def test_loss_terms_hand_values():
    table = rule_target_table()
    assert table.shape == (230, 46, 2)
    config = TrainConfig(dataset="-", out="-", label_smoothing=0.05, rule_weight=0.5)
    labels = torch.tensor([0, 224])  # P1 and Fm-3m
    logits = torch.zeros(2, 230)
    rule_logits = torch.zeros(2, 46, 2)
    total, ce, bce = loss_terms(logits, rule_logits, labels, table, config)
    assert ce.item() == pytest.approx(math.log(230))  # uniform logits, whatever the smoothing
    assert bce.item() == pytest.approx(2 * math.log(2))  # presence + direction, both at p = 1/2
    assert total.item() == pytest.approx(math.log(230) + 0.5 * 2 * math.log(2))
    total, ce, bce = loss_terms(logits, None, labels, table, config)
    assert bce.item() == 0 and total.item() == pytest.approx(ce.item())


def test_direction_loss_is_masked_where_the_rule_is_absent():
    table = rule_target_table()
    config = TrainConfig(dataset="-", out="-")
    labels = torch.tensor([224, 95, 1])  # Fm-3m, P4_3 2_1 2 (a -1 direction), P-1
    present = table[labels][..., 0].bool()
    assert present.any() and (~present).any()
    torch.manual_seed(0)
    rule_logits = torch.randn(3, 46, 2)
    logits = torch.randn(3, 230)
    _, _, base = loss_terms(logits, rule_logits, labels, table, config)

    absent_changed = rule_logits.clone()
    absent_changed[..., 1][~present] += 25.0
    _, _, same = loss_terms(logits, absent_changed, labels, table, config)
    assert same.item() == pytest.approx(base.item(), abs=1e-6)

    present_changed = rule_logits.clone()
    present_changed[..., 1][present] += 5.0
    _, _, other = loss_terms(logits, present_changed, labels, table, config)
    assert other.item() != pytest.approx(base.item(), abs=1e-3)

    # the presence logit is trained everywhere, present or not
    presence_changed = rule_logits.clone()
    presence_changed[..., 0][~present] += 5.0
    _, _, presence = loss_terms(logits, presence_changed, labels, table, config)
    assert presence.item() > base.item()


def test_log_prior_shifts_the_logits():
    table = rule_target_table()
    config = TrainConfig(dataset="-", out="-")
    torch.manual_seed(1)
    logits, labels = torch.randn(4, 230), torch.tensor([3, 13, 61, 224])
    log_prior = torch.log_softmax(torch.randn(230), dim=0)
    with_prior, _, _ = loss_terms(logits, None, labels, table, config, log_prior)
    shifted, _, _ = loss_terms(logits + log_prior, None, labels, table, config)
    assert with_prior.item() == pytest.approx(shifted.item())
    assert with_prior.item() != pytest.approx(loss_terms(logits, None, labels, table, config)[0].item())


def test_train_help():
    result = CliRunner().invoke(cli, ["train", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--dataset", "--out", "--architecture", "--balance", "--max-minutes", "--model"):
        assert option in result.output


def test_cli_trains_a_baseline(dataset_dir, tmp_path):
    out = tmp_path / "mlp-run"
    args = ["train", "--dataset", str(dataset_dir), "--out", str(out), "--steps", "2", "--batch-size", "4",
            "--grid-step", "0.1", "--architecture", "mlp", "--model", '{"hidden": 16}', "--val-every", "1"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    model, grid, info = load_model(out / "model.safetensors")
    assert info["architecture"] == "mlp" and type(model).__name__ == "MLP" and model.config.hidden == 16
    assert [record["step"] for record in read_log(out)] == [1, 2]


def test_cli_rejects_bad_model_json(dataset_dir, tmp_path):
    result = CliRunner().invoke(cli, ["train", "--dataset", str(dataset_dir), "--out", str(tmp_path / "x"), "--model", "{dim: 3"])
    assert result.exit_code != 0
    assert "not JSON" in result.output


def test_mixed_sampler_draws_the_chosen_share_of_random_items():
    labels = np.repeat(np.arange(10), 100)
    is_random = np.arange(1000) < 100                       # the first 100 items (all group 0) are random crystals
    for share in (0.0, 0.3, 1.0):
        sampler = MixedSampler(labels, np.arange(1000), is_random, share, "none", np.random.default_rng(2))
        drawn = sampler.sample(20000)
        assert abs(is_random[drawn].mean() - share) < 0.02
        expected = sampler.expected_counts()
        assert expected[0] == pytest.approx(share)                    # group 0 lives in the random part only
        assert expected.sum() == pytest.approx(1.0)
    stored = MixedSampler(labels, np.arange(1000), is_random, -1, "none", np.random.default_rng(2))
    assert abs(is_random[stored.sample(20000)].mean() - 0.1) < 0.02     # negative: as the dataset holds them
    with pytest.raises(ValueError, match="random_share 0.5"):
        MixedSampler(labels, np.arange(1000), np.zeros(1000, bool), 0.5, "none", np.random.default_rng(2))


def test_cli_render_overrides_and_random_share_reach_the_run(dataset_dir, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--dataset", str(dataset_dir), "--out", str(out), "--steps", "2", "--batch-size", "4",
            "--grid-step", "0.1", "--architecture", "mlp", "--model", '{"hidden": 16}', "--val-every", "1",
            "--render", '{"intensity_jitter": 0.3, "two_theta_start": [5, 10]}', "--random-share", "0"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["render"] == {"intensity_jitter": 0.3, "two_theta_start": [5, 10]} and saved["random_share"] == 0.0
    bad = CliRunner().invoke(cli, args[:-4] + ["--render", '{"jitter": 1}'])
    assert bad.exit_code != 0 and "not RenderConfig fields: jitter" in bad.output
