"""The networks csn can train and load, by name: CSN and the baselines of the comparison."""


def _registry():
    from .baselines import MLP, BaselineConfig, NoPoolCNN, ParkCNN
    from .csn import CSN, CSNConfig

    return {
        "csn": (CSN, CSNConfig),
        "mlp": (MLP, BaselineConfig),
        "cnn": (ParkCNN, BaselineConfig),
        "nopoolcnn": (NoPoolCNN, BaselineConfig),
    }


ARCHITECTURE_NAMES = ("csn", "mlp", "cnn", "nopoolcnn")


def build_network(architecture: str, config: dict):
    """A fresh network of ``architecture`` from a config dict (unknown keys ignored)."""
    registry = _registry()
    if architecture not in registry:
        raise ValueError(f"unknown architecture {architecture!r}: use one of {', '.join(ARCHITECTURE_NAMES)}")
    network, config_class = registry[architecture]
    return network(config_class.from_dict(config))
