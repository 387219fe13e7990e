"""``csn train``: train CSN on a peak-list dataset (see docs/model-card.md for the recipe)."""

import json

import click


@click.command()
@click.option("--dataset", "dataset_dir", required=True, type=click.Path(exists=True, file_okay=False), help="Peak-list dataset from `csn dataset build`.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run directory (checkpoint, log, exported model); resumes if it holds a checkpoint.")
@click.option("--steps", default=20000, show_default=True)
@click.option("--batch-size", default=128, show_default=True)
@click.option("--lr", default=2e-3, show_default=True)
@click.option("--rule-weight", default=1.0, show_default=True, help="lambda in CE + lambda * BCE; 0 trains without the rule loss.")
@click.option("--balance", type=click.Choice(["sampler", "logit-adjust", "none"]), default="sampler", show_default=True)
@click.option("--grid-step", default=0.05, show_default=True, help="Model grid step in degrees 2theta (Cu Ka1).")
@click.option("--architecture", type=click.Choice(["csn", "mlp", "cnn", "nopoolcnn"]), default="csn", show_default=True, help="CSN or a baseline network.")
@click.option("--model", "model_json", default="{}", help='CSNConfig overrides as JSON, e.g. \'{"dim": 128}\'.')
@click.option("--val-every", default=500, show_default=True, help="Steps between validation log lines.")
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", default=0, help="torch CPU threads (0: default).")
@click.option("--max-minutes", default=0.0, help="Stop after this many minutes of training (0: no limit).")
@click.option("--measured", "measured_dir", default="", help="A labelled measured set (labels.csv + .xy) to log accuracy on; never used for training.")
def train(dataset_dir, out, steps, batch_size, lr, rule_weight, balance, grid_step, architecture, model_json, val_every, seed, device, threads, max_minutes, measured_dir):
    """Train (or resume) CSN; writes OUT/model.safetensors with its JSON sidecar."""
    from ..training.train import TrainConfig, train as run

    try:
        model = json.loads(model_json)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"not JSON: {error}", param_hint="--model") from None
    config = TrainConfig(dataset=dataset_dir, out=out, steps=steps, batch_size=batch_size, lr=lr, rule_weight=rule_weight,
                         balance=balance, grid_step=grid_step, architecture=architecture, model=model, val_every=val_every, seed=seed, device=device, threads=threads,
                         max_minutes=max_minutes, measured_dir=measured_dir)
    run(config)
