"""Baseline networks trained and evaluated in the same pipeline as CSN: an MLP, the CNN of Park et
al. (IUCrJ 2017, three strided convolutions with average pooling, then dense layers) and its
NoPoolCNN variant (the same without pooling). Same call as CSN: ``model(intensity, mask) ->
(logits (B, 230), None)``."""

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .csn import N_SPACE_GROUPS


@dataclass(frozen=True)
class BaselineConfig:
    grid_size: int = 1701
    hidden: int = 512
    channels: int = 80
    dropout: float = 0.3

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "BaselineConfig":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class MLP(nn.Module):
    """Dense layers on the (4x average-pooled) pattern and mask."""

    def __init__(self, config: BaselineConfig = BaselineConfig()):
        super().__init__()
        self.config = config
        inputs = 2 * ((config.grid_size + 3) // 4)
        self.body = nn.Sequential(
            nn.Linear(inputs, config.hidden), nn.ReLU(), nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.hidden), nn.ReLU(), nn.Dropout(config.dropout),
            nn.Linear(config.hidden, N_SPACE_GROUPS))

    def forward(self, intensity, mask):
        x = nn.functional.avg_pool1d(torch.stack([intensity, mask], 1), 4, ceil_mode=True)
        return self.body(x.flatten(1)), None


class ParkCNN(nn.Module):
    """Park et al. 2017: three strided 1D convolutions (80 filters each), average pooling after each
    (none in the NoPoolCNN variant), then dense layers with dropout."""

    pooling = True

    def __init__(self, config: BaselineConfig = BaselineConfig()):
        super().__init__()
        self.config = config
        c = config.channels
        pool = (lambda k, s: nn.AvgPool1d(k, s)) if self.pooling else (lambda k, s: nn.Identity())
        self.features = nn.Sequential(
            nn.Conv1d(2, c, 35, stride=5), nn.ReLU(), nn.Dropout(config.dropout / 2), pool(3, 2),
            nn.Conv1d(c, c, 17, stride=3), nn.ReLU(), nn.Dropout(config.dropout / 2), pool(3, 1),
            nn.Conv1d(c, c, 9, stride=2), nn.ReLU(), nn.Dropout(config.dropout / 2), pool(3, 1))
        with torch.no_grad():
            flat = self.features(torch.zeros(1, 2, config.grid_size)).numel()
        self.head = nn.Sequential(
            nn.Linear(flat, config.hidden), nn.ReLU(), nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.hidden // 4), nn.ReLU(), nn.Dropout(config.dropout),
            nn.Linear(config.hidden // 4, N_SPACE_GROUPS))

    def forward(self, intensity, mask):
        return self.head(self.features(torch.stack([intensity, mask], 1)).flatten(1)), None


class NoPoolCNN(ParkCNN):
    """Park et al.'s CNN without the pooling layers."""

    pooling = False
