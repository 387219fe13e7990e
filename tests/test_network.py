"""CSN and the baseline networks: shapes, ablation switches, intensity-aware attention, GAU
residual, gradients, and that a tiny CSN can fit a handful of patterns."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from csn_plugin.nets.registry import ARCHITECTURE_NAMES, build_network
from csn_plugin.nets.baselines import MLP, BaselineConfig, NoPoolCNN, ParkCNN
from csn_plugin.nets.csn import (
    CSN,
    N_RULES,
    N_SPACE_GROUPS,
    CSNConfig,
    GatedAttentionUnit,
    IntensityAwareAttention,
    log_intensity,
    parameter_count,
    single_head_attention,
)

pytestmark = pytest.mark.one_thread

GRID = 256
TINY = dict(grid_size=GRID, stem_channels=(8, 16, 32), dim=32, heads=2, gau_layers=1, gau_key_dim=16, rule_dim=4, dropout=0.0)


def patterns(batch, seed=0, grid=GRID):
    """Random stick-like patterns (a few peaks, max 1) and full masks."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.arange(grid, dtype=torch.float32)
    values = torch.zeros(batch, grid)
    for i in range(batch):
        centres = torch.randint(5, grid - 5, (6,), generator=generator).float()
        heights = torch.rand(6, generator=generator) ** 3 + 0.01
        values[i] = (heights[:, None] * torch.exp(-0.5 * ((x[None] - centres[:, None]) / 1.5) ** 2)).sum(0)
    values /= values.amax(1, keepdim=True)
    return values, torch.ones(batch, grid)


def tiny_csn(**changes):
    torch.manual_seed(0)
    return CSN(CSNConfig(**{**TINY, **changes}))


def test_csn_output_shapes():
    model = tiny_csn().eval()
    values, mask = patterns(3)
    logits, rule_logits = model(values, mask)
    assert logits.shape == (3, N_SPACE_GROUPS) == (3, 230)
    assert rule_logits.shape == (3, N_RULES, 2) == (3, 46, 2)
    assert torch.isfinite(logits).all() and torch.isfinite(rule_logits).all()
    assert model.config.tokens == math.ceil(GRID / 16)
    assert model.stem(torch.zeros(1, 3, GRID)).shape[-1] == model.config.tokens


def test_default_config_runs_on_the_default_grid():
    model = CSN().eval()
    with torch.no_grad():
        logits, rules = model(*patterns(1, grid=1701))
    assert logits.shape == (1, 230) and rules.shape == (1, 46, 2)
    assert model.config.tokens == 107


@pytest.mark.parametrize("network", [MLP, ParkCNN, NoPoolCNN])
def test_baseline_shapes(network):
    torch.manual_seed(0)
    model = network(BaselineConfig(grid_size=851, hidden=32, channels=8)).eval()
    logits, rules = model(*patterns(2, grid=851))
    assert logits.shape == (2, 230) and rules is None
    assert torch.isfinite(logits).all()


def test_nopool_cnn_differs_from_park_cnn_by_pooling_only():
    config = BaselineConfig(grid_size=851, hidden=32, channels=8)
    pooled, unpooled = ParkCNN(config), NoPoolCNN(config)
    assert sum(isinstance(m, torch.nn.AvgPool1d) for m in pooled.modules()) == 3
    assert sum(isinstance(m, torch.nn.AvgPool1d) for m in unpooled.modules()) == 0
    assert parameter_count(unpooled) > parameter_count(pooled)  # a longer flattened feature map


def test_build_network_registry():
    assert set(ARCHITECTURE_NAMES) == {"csn", "mlp", "cnn", "nopoolcnn"}
    assert isinstance(build_network("csn", {**TINY, "unknown_key": 1}), CSN)
    assert type(build_network("cnn", {"grid_size": 851, "channels": 8, "hidden": 32})) is ParkCNN
    assert type(build_network("nopoolcnn", {"grid_size": 851, "channels": 8, "hidden": 32})) is NoPoolCNN
    mlp = build_network("mlp", {"grid_size": 851, "hidden": 16})
    assert mlp.config.hidden == 16 and mlp.config.grid_size == 851
    with pytest.raises(ValueError, match="unknown architecture"):
        build_network("resnet", {})


def test_config_dict_round_trip():
    config = CSNConfig(**TINY)
    data = config.to_dict()
    assert data["stem_channels"] == [8, 16, 32]  # JSON-friendly
    assert CSNConfig.from_dict(data) == config
    assert BaselineConfig.from_dict(BaselineConfig(hidden=7).to_dict()).hidden == 7


def test_ablation_switches():
    values, mask = patterns(2)
    without_embedding = tiny_csn(use_embedding_attention=False).eval()
    assert without_embedding.embedding_attention is None
    assert not any(isinstance(m, IntensityAwareAttention) for m in without_embedding.modules())
    logits, rules = without_embedding(values, mask)
    assert logits.shape == (2, 230) and rules.shape == (2, 46, 2)

    without_rules = tiny_csn(use_rule_head=False).eval()
    logits, rules = without_rules(values, mask)
    assert logits.shape == (2, 230) and rules is None
    assert parameter_count(without_rules) < parameter_count(tiny_csn())


def test_log_intensity_lifts_weak_peaks():
    x = torch.tensor([0.0, 0.01, 0.1, 1.0, -0.5])
    y = log_intensity(x)
    assert y[0] == 0 and y[3] == pytest.approx(1.0) and y[4] == 0
    assert y[1] == pytest.approx(math.log1p(10) / math.log1p(1000))  # 1 % of max -> about 0.35
    assert torch.all(torch.diff(y[:4]) > 0)


def test_intensity_aware_attention_matches_its_formula():
    """softmax(Q K^T / sqrt(d_head) * s_i) V with s_i = softplus(w * log I_i + b), per head."""
    torch.manual_seed(1)
    attention = IntensityAwareAttention(dim=8, heads=2, dropout=0.0)
    with torch.no_grad():
        attention.scale_weight.copy_(torch.tensor([2.0, -1.0]))
        attention.scale_bias.copy_(torch.tensor([0.3, 0.1]))
    x = torch.randn(2, 5, 8)
    token_logs = torch.rand(2, 5)
    out = attention(x, token_logs)

    q, k, v = attention.qkv(attention.norm(x)).split(8, dim=-1)
    heads = []
    for h in range(2):
        cols = slice(4 * h, 4 * h + 4)
        scale = F.softplus(attention.scale_weight[h] * token_logs + attention.scale_bias[h])  # (B, N)
        scores = q[..., cols] @ k[..., cols].transpose(1, 2) / math.sqrt(4) * scale[..., None]
        heads.append(torch.softmax(scores, dim=-1) @ v[..., cols])
    expected = x + attention.out(torch.cat(heads, dim=-1))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_intensity_aware_attention_depends_on_log_intensity():
    torch.manual_seed(2)
    attention = IntensityAwareAttention(dim=8, heads=2, dropout=0.0)
    x = torch.randn(1, 6, 8)
    weak, strong = torch.full((1, 6), 0.1), torch.linspace(0, 1, 6)[None]
    assert not torch.allclose(attention(x, weak), attention(x, strong))
    with torch.no_grad():
        attention.scale_weight.zero_()  # no intensity term: the scale is a constant
    torch.testing.assert_close(attention(x, weak), attention(x, strong))


def test_scale_parameters_change_the_csn_output():
    model = tiny_csn().eval()
    values, mask = patterns(2)
    with torch.no_grad():
        before, _ = model(values, mask)
        model.embedding_attention.scale_weight.mul_(4.0)
        after_weight, _ = model(values, mask)
        model.embedding_attention.scale_bias.add_(2.0)
        after_bias, _ = model(values, mask)
    assert not torch.allclose(before, after_weight, atol=1e-6)
    assert not torch.allclose(after_weight, after_bias, atol=1e-6)


def test_gau_block_is_residual():
    torch.manual_seed(3)
    block = GatedAttentionUnit(dim=16, expansion=2, key_dim=8, dropout=0.0)
    x = torch.randn(2, 7, 16)
    assert not torch.allclose(block(x), x)
    with torch.no_grad():
        block.out.weight.zero_()
        block.out.bias.zero_()
    torch.testing.assert_close(block(x), x)  # the branch adds nothing: x passes through unchanged
    attention = IntensityAwareAttention(dim=16, heads=2, dropout=0.0)
    with torch.no_grad():
        attention.out.weight.zero_()
        attention.out.bias.zero_()
    torch.testing.assert_close(attention(x, torch.rand(2, 7)), x)


def test_mask_is_an_input_and_gradients_flow():
    model = tiny_csn()
    model.train()
    values, mask = patterns(4)
    values.requires_grad_(True)
    logits, rule_logits = model(values, mask)
    loss = F.cross_entropy(logits, torch.tensor([0, 1, 2, 3])) + rule_logits.square().mean()
    loss.backward()
    assert values.grad is not None and values.grad.abs().sum() > 0
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name

    model.eval()
    with torch.no_grad():
        full, _ = model(values, mask)
        half_mask = mask.clone()
        half_mask[:, GRID // 2:] = 0
        partial, _ = model(values * half_mask, half_mask)
        only_mask_changed, _ = model(values, half_mask)
    assert not torch.allclose(full, only_mask_changed, atol=1e-6)  # the mask channel is read
    assert not torch.allclose(full, partial, atol=1e-6)


def test_eval_mode_is_deterministic_and_batch_independent():
    model = tiny_csn(dropout=0.3).eval()
    values, mask = patterns(3)
    with torch.no_grad():
        together, _ = model(values, mask)
        alone, _ = model(values[1:2], mask[1:2])
    torch.testing.assert_close(together[1:2], alone, rtol=1e-4, atol=1e-5)


def test_tiny_csn_overfits_a_few_patterns():
    torch.manual_seed(0)
    model = tiny_csn()
    values, mask = patterns(8, seed=5)
    labels = torch.tensor([0, 13, 61, 224, 1, 14, 11, 193])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    model.train()
    losses = []
    for _ in range(50):
        logits, _ = model(values, mask)
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(math.log(230), rel=0.15)  # starts near chance
    assert np.mean(losses[-5:]) < 0.1 * losses[0]
    model.eval()
    with torch.no_grad():
        predicted = model(values, mask)[0].argmax(1)
    assert (predicted == labels).float().mean() >= 0.875


def test_single_head_attention_matches_sdpa():
    """The CPU path of the GAU attention is the plain product; it must equal SDPA's result."""
    torch.manual_seed(0)
    q, k = torch.randn(3, 11, 6), torch.randn(3, 11, 6)
    v = torch.randn(3, 11, 10)
    expected = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)).squeeze(1)
    assert torch.allclose(single_head_attention(q, k, v), expected, atol=1e-5)
    # and it is attention: a query aligned with one key picks that key's value
    k = torch.eye(6)[None] * 50
    q = torch.eye(6)[None, 2:3]
    v = torch.arange(6.0)[None, :, None]
    assert torch.allclose(single_head_attention(q, k, v), torch.tensor([[[2.0]]]), atol=1e-3)
