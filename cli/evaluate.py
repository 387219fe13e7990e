"""``csn evaluate``: metrics of a model on synthetic, simulated-real and measured sets."""

import json

import click


@click.command()
@click.option("--model", "model_path", default=None, help="Weights (.safetensors); default: the bundled model.")
@click.option("--test-dataset", default=None, type=click.Path(exists=True, file_okay=False), help="Peak-list dataset disjoint from training (rendered once, fixed seed).")
@click.option("--test-limit", default=5000, show_default=True)
@click.option("--measured", "measured_dirs", multiple=True, type=click.Path(exists=True, file_okay=False), help="Labelled measured set(s) (labels.csv + files).")
@click.option("--pdcif", "pdcif_dir", default=None, type=click.Path(exists=True, file_okay=False), help="Folder of Rietveld powder CIFs with measured profiles.")
@click.option("--json", "json_out", default=None, type=click.Path(dir_okay=False), help="Write the full report as JSON here.")
@click.option("--device", default="auto", show_default=True)
def evaluate(model_path, test_dataset, test_limit, measured_dirs, pdcif_dir, json_out, device):
    """Print a markdown table of top-1/2/5, macro-F1, crystal system, ECE per set and prior."""
    from pathlib import Path

    from ..evaluation.sets import evaluate_sets, markdown_table, measured_set, pdcif_set, rendered_peak_set
    from ..inference.classifier import SpaceGroupClassifier

    classifier = SpaceGroupClassifier(model=model_path, device=device)
    sets = {}
    if test_dataset:
        sets["synthetic"] = rendered_peak_set(test_dataset, classifier.grid, limit=test_limit)
    for directory in measured_dirs:
        sets[Path(directory).name] = measured_set(directory, classifier.grid)
    if pdcif_dir:
        sets["pdcif"] = pdcif_set(pdcif_dir, classifier.grid)
    if not sets:
        raise click.UsageError("give at least one of --test-dataset, --measured, --pdcif")
    report = evaluate_sets(classifier, sets)
    if json_out:
        Path(json_out).write_text(json.dumps(report, indent=2) + "\n")
    click.echo(markdown_table(report))


@click.command()
@click.option("--model", "model_path", required=True, type=click.Path(exists=True, dir_okay=False), help="Weights (.safetensors) whose sidecar gets the temperature.")
@click.option("--dataset", "dataset_dir", required=True, type=click.Path(exists=True, file_okay=False), help="The training dataset (its held-out validation items are used).")
@click.option("--items", default=2048, show_default=True, help="Use at most this many held-out items (the first items of the dataset).")
def calibrate(model_path, dataset_dir, items):
    """Fit the softmax temperature on held-out synthetic patterns and store it in the sidecar."""
    from ..training.calibration import calibrate_model

    click.echo(f"temperature {calibrate_model(model_path, dataset_dir, items=items):.3f} written to the sidecar of {model_path}")
