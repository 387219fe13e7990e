"""``TrainConfig``: every setting of a training run, with its default (torch-free, so that the CLI
reads its options and defaults from here without importing torch)."""

from dataclasses import dataclass, field, fields

BALANCE_MODES = ("sampler", "logit-adjust", "none")


@dataclass
class TrainConfig:
    dataset: str
    out: str
    steps: int = 20000
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: int = 500
    rule_weight: float = 1.0
    label_smoothing: float = 0.05
    balance: str = "sampler"         # one of BALANCE_MODES
    val_fraction: float = 0.02
    val_size: int = 2048
    val_every: int = 500
    checkpoint_every: int = 250
    seed: int = 0
    max_peaks: int = 256
    grid_step: float = 0.05
    architecture: str = "csn"        # a name of nets.registry.ARCHITECTURE_NAMES: "csn" or a baseline
    model: dict = field(default_factory=dict)  # the network's config overrides (CSNConfig / BaselineConfig): `--net-config`
    render: dict = field(default_factory=dict)  # RenderConfig overrides of the training batches: `--render`
    random_share: float = -1.0       # share of each batch from random-crystal items (negative: as stored)
    device: str = "auto"
    threads: int = 0                 # 0: torch default
    max_minutes: float = 0.0         # stop (and export) after this wall time; 0 = no limit
    measured_dir: str = ""           # optional labelled measured set, logged for monitoring only
    reload_every: int = 1000         # re-open the dataset every N steps if it gained shards (0: never)


def default(name):
    """The default of TrainConfig field ``name``."""
    for item in fields(TrainConfig):
        if item.name == name:
            return item.default
    raise KeyError(name)
