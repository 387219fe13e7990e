"""The Chemical Sight Net (CSN, Wu et al.) in PyTorch.

pattern (B, 2, G: intensity scaled to max 1, measured-mask)
  -> PXRD embedding: 1D-convolution stem (local shapes such as Ka doublets; shortens the sequence)
     + intensity-aware self-attention: softmax(Q K^T / sqrt(d) * s) V with a per-token scale
     s = softplus(w * log-intensity + b) learned on log-preprocessed intensities, so weak peaks are
     not drowned by strong ones (in place of pooling)
  -> Flash-Transformer blocks: Gated Attention Units (Hua et al. 2022)
  -> head 1: FFN + pooling -> 230 space-group logits
  -> head 2: deconvolution into 46 sub-sequences, one FFN per symmetry rule -> (46, 2) logits
     (presence, direction), trained with BCE against ``symmetry.rule_targets``.
Attention runs through ``torch.nn.functional.scaled_dot_product_attention`` (fused kernels on CUDA).
"""

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

N_SPACE_GROUPS = 230
N_RULES = 46


@dataclass(frozen=True)
class CSNConfig:
    grid_size: int = 1701          # points of the model grid (see csn_plugin.grid.ModelGrid)
    stem_channels: tuple = (32, 64, 96)
    stem_strides: tuple = (2, 2, 4)  # total downsampling; tokens = grid_size / prod(strides)
    dim: int = 96                  # token width
    heads: int = 4                 # heads of the intensity-aware attention
    gau_layers: int = 3
    gau_expansion: int = 2         # GAU value/gate width = expansion * dim
    gau_key_dim: int = 48          # GAU shared query/key width (s in the paper)
    rule_dim: int = 8              # features per symmetry-rule sub-sequence
    dropout: float = 0.1
    use_embedding_attention: bool = True   # ablation switch: "CSN without the PXRD embedding"
    use_rule_head: bool = True             # ablation switch: "CSN without the symmetry-rule head"

    @property
    def tokens(self) -> int:
        n = self.grid_size
        for stride in self.stem_strides:
            n = (n + stride - 1) // stride
        return n

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "CSNConfig":
        known = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class ConvStem(nn.Module):
    """Strided 1D convolutions: local peak shapes, and a sequence short enough for attention."""

    def __init__(self, channels, strides, dim):
        super().__init__()
        layers, previous = [], 3  # intensity, log-intensity, mask
        for width, stride in zip(channels, strides):
            layers += [nn.Conv1d(previous, width, kernel_size=2 * stride + 3, stride=stride, padding=stride + 1),
                       nn.BatchNorm1d(width), nn.GELU()]
            previous = width
        layers += [nn.Conv1d(previous, dim, kernel_size=1)]
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)


def log_intensity(intensity):
    """Log preprocessing that lifts weak peaks: maps [0, 1] to [0, 1], 1 % of max to ~0.33."""
    return torch.log1p(1000.0 * intensity.clamp_min(0)) / math.log1p(1000.0)


class IntensityAwareAttention(nn.Module):
    """Multi-head self-attention whose logits are scaled per query token by a learned function of
    that token's log intensity: softmax(Q K^T / sqrt(d) * s_i) V."""

    def __init__(self, dim, heads, dropout):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.scale_weight = nn.Parameter(torch.ones(heads))   # W_log
        self.scale_bias = nn.Parameter(torch.full((heads,), 0.5))
        self.dropout = dropout

    def forward(self, x, token_log_intensity):
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        # s (B, H, N, 1); scaling Q row-wise scales the logits row-wise, so SDPA stays usable.
        s = F.softplus(self.scale_weight[None, :, None] * token_log_intensity[:, None, :] + self.scale_bias[None, :, None])
        attended = F.scaled_dot_product_attention(q * s.unsqueeze(-1), k, v)
        return x + self.out(attended.transpose(1, 2).reshape(b, n, d))


def single_head_attention(q, k, v):
    """softmax(q k^T / sqrt(d)) v for (B, N, d) tensors: SDPA's fused kernels on CUDA; on CPU the
    plain product, which runs ~1.8x faster than SDPA's CPU kernel for one head over ~100 tokens
    (same result to float rounding)."""
    if q.is_cuda:
        return F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)).squeeze(1)
    return torch.softmax((q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5, dim=-1) @ v


class GatedAttentionUnit(nn.Module):
    """GAU (Hua et al. 2022): one shared low-dimensional q/k, a gated value path, single head."""

    def __init__(self, dim, expansion, key_dim, dropout):
        super().__init__()
        hidden = expansion * dim
        self.norm = nn.LayerNorm(dim)
        self.to_uv = nn.Linear(dim, 2 * hidden)
        self.to_z = nn.Linear(dim, key_dim)
        self.gamma = nn.Parameter(torch.randn(2, key_dim) * 0.02 + 1.0)
        self.beta = nn.Parameter(torch.zeros(2, key_dim))
        self.out = nn.Linear(hidden, dim)
        self.dropout = dropout

    def forward(self, x):
        h = self.norm(x)
        u, v = F.silu(self.to_uv(h)).chunk(2, dim=-1)
        z = F.silu(self.to_z(h))
        q = z * self.gamma[0] + self.beta[0]
        k = z * self.gamma[1] + self.beta[1]
        attended = single_head_attention(q, k, v)
        return x + F.dropout(self.out(u * attended), self.dropout, self.training)


class RuleHead(nn.Module):
    """Deconvolution into 46 sub-sequences, one per symmetry rule, each pooled and read by its own
    FFN into (presence, direction) logits."""

    def __init__(self, dim, rule_dim, dropout):
        super().__init__()
        self.rule_dim = rule_dim
        self.deconv = nn.ConvTranspose1d(dim, N_RULES * rule_dim, kernel_size=2, stride=2)
        self.w1 = nn.Parameter(torch.randn(N_RULES, 2 * rule_dim, 4 * rule_dim) / math.sqrt(2 * rule_dim))
        self.b1 = nn.Parameter(torch.zeros(N_RULES, 4 * rule_dim))
        self.w2 = nn.Parameter(torch.randn(N_RULES, 4 * rule_dim, 2) / math.sqrt(4 * rule_dim))
        self.b2 = nn.Parameter(torch.zeros(N_RULES, 2))
        self.dropout = dropout

    def forward(self, tokens):  # tokens (B, N, D)
        b = tokens.shape[0]
        coarse = F.avg_pool1d(tokens.transpose(1, 2), kernel_size=4, ceil_mode=True)  # keeps the head cheap
        sub = F.gelu(self.deconv(coarse)).view(b, N_RULES, self.rule_dim, -1)
        pooled = torch.cat([sub.mean(-1), sub.amax(-1)], dim=-1)           # (B, 46, 2r)
        hidden = F.gelu(torch.einsum("brf,rfh->brh", pooled, self.w1) + self.b1)
        hidden = F.dropout(hidden, self.dropout, self.training)
        return torch.einsum("brh,rho->bro", hidden, self.w2) + self.b2   # (B, 46, 2)


class CSN(nn.Module):
    def __init__(self, config: CSNConfig = CSNConfig()):
        super().__init__()
        self.config = config
        c = config
        self.stem = ConvStem(c.stem_channels, c.stem_strides, c.dim)
        self.position = nn.Parameter(torch.zeros(1, c.tokens, c.dim))
        nn.init.normal_(self.position, std=0.02)
        self.embedding_attention = IntensityAwareAttention(c.dim, c.heads, c.dropout) if c.use_embedding_attention else None
        self.blocks = nn.ModuleList(GatedAttentionUnit(c.dim, c.gau_expansion, c.gau_key_dim, c.dropout) for _ in range(c.gau_layers))
        self.norm = nn.LayerNorm(c.dim)
        self.classifier = nn.Sequential(nn.Linear(2 * c.dim, 2 * c.dim), nn.GELU(), nn.Dropout(c.dropout),
                                        nn.Linear(2 * c.dim, N_SPACE_GROUPS))
        self.rule_head = RuleHead(c.dim, c.rule_dim, c.dropout) if c.use_rule_head else None

    def forward(self, intensity, mask):
        """intensity, mask: (B, G) on the model grid. Returns (space-group logits (B, 230),
        rule logits (B, 46, 2) or None)."""
        logs = log_intensity(intensity)
        x = self.stem(torch.stack([intensity, logs, mask], dim=1)).transpose(1, 2)  # (B, N, D)
        x = x + self.position[:, : x.shape[1]]
        if self.embedding_attention is not None:
            stride = intensity.shape[1] // x.shape[1]
            pad = x.shape[1] * math.prod(self.config.stem_strides) - intensity.shape[1]
            token_logs = F.max_pool1d(F.pad(logs, (0, max(pad, 0))).unsqueeze(1), math.prod(self.config.stem_strides)).squeeze(1)
            x = self.embedding_attention(x, token_logs[:, : x.shape[1]])
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        pooled = torch.cat([x.mean(1), x.amax(1)], dim=-1)
        logits = self.classifier(pooled)
        rule_logits = self.rule_head(x) if self.rule_head is not None else None
        return logits, rule_logits


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
