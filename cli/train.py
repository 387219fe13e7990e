"""``csn train``: train CSN on a peak-list dataset (see docs/model-card.md for the recipe).

The options' defaults and choices come from ``TrainConfig`` (training/config.py, torch-free) and
the architecture registry (nets/registry.py); nothing is restated here.
"""

import json

import click

from ..nets.registry import ARCHITECTURE_NAMES
from ..training.config import BALANCE_MODES, default


@click.command()
@click.option("--dataset", "dataset_dir", required=True, type=click.Path(exists=True, file_okay=False), help="Peak-list dataset from `csn dataset build`.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run directory (checkpoint, log, exported model); resumes if it holds a checkpoint.")
@click.option("--steps", default=default("steps"), show_default=True)
@click.option("--batch-size", default=default("batch_size"), show_default=True)
@click.option("--lr", default=default("lr"), show_default=True)
@click.option("--rule-weight", default=default("rule_weight"), show_default=True, help="lambda in CE + lambda * BCE; 0 trains without the rule loss.")
@click.option("--balance", type=click.Choice(BALANCE_MODES), default=default("balance"), show_default=True)
@click.option("--grid-step", default=default("grid_step"), show_default=True, help="Model grid step in degrees 2theta (Cu Ka1).")
@click.option("--architecture", type=click.Choice(ARCHITECTURE_NAMES), default=default("architecture"), show_default=True, help="CSN or a baseline network.")
@click.option("--net-config", "--model", "net_config", default="{}", help='The network\'s config overrides as JSON, e.g. \'{"dim": 128}\' (--model is the old name).')
@click.option("--render", "render_overrides", default="{}", help='RenderConfig overrides as JSON, e.g. \'{"intensity_jitter": 0.3}\' (csn_plugin.synth.render).')
@click.option("--random-share", default=default("random_share"), show_default=True, help="Share of each batch drawn from the random-crystal items (negative: as many as the dataset holds).")
@click.option("--val-every", default=default("val_every"), show_default=True, help="Steps between validation log lines.")
@click.option("--seed", default=default("seed"), show_default=True)
@click.option("--device", default=default("device"), show_default=True)
@click.option("--threads", default=default("threads"), help="torch CPU threads (0: default).")
@click.option("--max-minutes", default=default("max_minutes"), help="Stop after this many minutes of training (0: no limit).")
@click.option("--measured", "measured_dir", default=default("measured_dir"), help="A labelled measured set (labels.csv + .xy) to log accuracy on; never used for training.")
def train(dataset_dir, out, steps, batch_size, lr, rule_weight, balance, grid_step, architecture, net_config, render_overrides, random_share, val_every, seed, device, threads, max_minutes, measured_dir):
    """Train (or resume) CSN; writes OUT/model.safetensors with its JSON sidecar."""
    from ..training.train import TrainConfig, train as run

    overrides, render = _json_option(net_config, "--net-config"), _json_option(render_overrides, "--render")
    from ..synth.render import RenderConfig

    unknown = sorted(set(render) - set(RenderConfig.__dataclass_fields__))
    if unknown:
        raise click.BadParameter(f"not RenderConfig fields: {', '.join(unknown)}", param_hint="--render")
    config = TrainConfig(dataset=dataset_dir, out=out, steps=steps, batch_size=batch_size, lr=lr, rule_weight=rule_weight,
                         balance=balance, grid_step=grid_step, architecture=architecture, model=overrides, render=render, random_share=random_share, val_every=val_every, seed=seed, device=device, threads=threads,
                         max_minutes=max_minutes, measured_dir=measured_dir)
    run(config)


def _json_option(text, name):
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"not JSON: {error}", param_hint=name) from None
    if not isinstance(value, dict):
        raise click.BadParameter("expected a JSON object", param_hint=name)
    return value
