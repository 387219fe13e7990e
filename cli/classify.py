"""``csn classify FILE...``: ranked space groups for pattern files, as a table, JSON, JSONL or CSV."""

import contextlib
import csv
import json
import sys
import warnings
from pathlib import Path

import click

from csn_plugin.errors import CsnError

FORMATS = ("table", "json", "jsonl", "csv")
PRIORS = ("uniform", "icsd", "cod", "mp")
PROGRESS_MIN_FILES = 20  # show a progress bar on stderr from this many files on
CSV_COLUMNS = (
    "source", "rank", "space_group", "symbol", "probability", "crystal_system",
    "crystal_system_probability", "bravais_lattice", "bravais_lattice_probability", "error",
)
# What bad input raises; each becomes one line naming the file, never a traceback.
INPUT_ERRORS = (CsnError, ValueError, OSError, TypeError, UnicodeError)


class _NoProgress:
    def update(self, steps):
        pass


def _check_wavelength(ctx, param, value):
    if value is None:
        return None
    from csn_plugin.wavelengths import resolve_wavelength

    try:
        return resolve_wavelength(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def _one_line(error) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _error_message(source, error) -> str:
    """``source: problem`` (PatternError already reads so; others get the file name prefixed)."""
    text = _one_line(error)
    return text if text.startswith(f"{source}:") else f"{source}: {text}"


def _build_classifier(name, device, prior, model):
    from csn_plugin.plugins import get_classifiers

    factories = get_classifiers()
    if name not in factories:
        known = ", ".join(sorted(factories)) or "none"
        raise click.ClickException(f"unknown classifier {name!r}; registered: {known}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise click.ClickException("--device cuda: no CUDA device is available here; use --device cpu or auto")
    options = {"device": device, "prior": prior}
    if model is not None:
        options["model"] = model
    from csn_plugin.errors import PriorWarning

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PriorWarning)
            classifier = factories[name](**options)
    except (ValueError, OSError, RuntimeError, ImportError, KeyError) as error:
        raise click.ClickException(f"cannot load classifier {name!r}: {_one_line(error)}") from None
    for warning in caught:  # the model card's caveat about this prior: one line, the answer still comes
        if issubclass(warning.category, PriorWarning):
            click.echo(f"warning: {_one_line(warning.message)}", err=True)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return classifier


def _classify_chunk(classifier, patterns, top_k, batch_size):
    """Results for a list of patterns; a pattern the classifier rejects becomes an exception."""
    try:
        return classifier.predict_many(patterns, top_k=top_k, batch_size=batch_size)
    except INPUT_ERRORS:
        answers = []
        for pattern in patterns:  # find the culprit, keep the rest
            try:
                answers.append(classifier.predict(pattern, top_k=top_k))
            except INPUT_ERRORS as error:
                answers.append(error)
        return answers


def _csv_rows(record):
    if "error" in record:
        yield {"source": record["source"], "error": record["error"]}
        return
    system, lattice = record.get("crystal_system") or {}, record.get("bravais_lattice") or {}
    for rank, prediction in enumerate(record["predictions"], 1):
        yield {
            "source": record["source"], "rank": rank, "space_group": prediction["space_group"],
            "symbol": prediction["symbol"], "probability": prediction["probability"],
            "crystal_system": system.get("name"), "crystal_system_probability": system.get("probability"),
            "bravais_lattice": lattice.get("name"), "bravais_lattice_probability": lattice.get("probability"),
            "error": "",
        }


def _plot_path(plot, source, count):
    plot = Path(plot)
    if count == 1:
        return plot
    return plot.with_name(f"{plot.stem}-{Path(source).stem}{plot.suffix or '.png'}")


def plot_result(pattern, result, path):
    """Save a PNG: the pattern (top) and the top-k space-group probabilities (bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), gridspec_kw={"height_ratios": [3, 2]})
    top.plot(pattern.two_theta, pattern.intensity, lw=0.8, color="black")
    top.set_xlabel(f"2θ (degrees, λ = {pattern.wavelength:.4g} Å)")
    top.set_ylabel("intensity")
    top.set_title(str(result.source or "pattern"), fontsize=10)
    labels = [f"{p.symbol} ({p.space_group})" for p in result.predictions]
    values = [p.probability for p in result.predictions]
    bars = bottom.barh(range(len(values))[::-1], values, color="tab:blue")
    bottom.bar_label(bars, labels=[f"{value:.1%}" for value in values], padding=3, fontsize=8)
    bottom.set_yticks(range(len(values))[::-1], labels)
    bottom.set_xlim(0, 1)
    bottom.set_xlabel("probability")
    system, system_p = result.crystal_system
    bottom.set_title(f"{system} ({system_p:.0%})", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


@click.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--top-k", "-k", type=click.IntRange(1, 230), default=5, show_default=True,
              help="How many space groups to list per file.")
@click.option("--format", "output_format", type=click.Choice(FORMATS), default="table", show_default=True,
              help="table for people; json (an array), jsonl (one object per line) or csv for programs.")
@click.option("--wavelength", "-w", callback=_check_wavelength, default=None,
              help="Angstrom or a name (CuKa1, MoKa...) for files that record none. [default: 1.5406]")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=256, show_default=True)
@click.option("--prior", type=click.Choice(PRIORS), default="icsd", show_default=True,
              help="Space-group prior of your samples: uniform, icsd, cod (minerals, lab samples), mp.")
@click.option("--classifier", "classifier_name", default="csn", show_default=True,
              help="A registered classifier (see `csn plugins`).")
@click.option("--model", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Weights (.safetensors with its .json sidecar) instead of the bundled model.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Save a PNG of the pattern and its top-k probabilities (one per file: NAME-<file>.png).")
def classify(files, top_k, output_format, wavelength, device, batch_size, prior, classifier_name, model, plot):
    """Rank the space groups of powder patterns in FILE... (.xy, .xrdml, .rasx, .brml, pdCIF...).

    A file that cannot be read is reported on one line (in JSON as {"source", "error"}); the
    others are still classified, and the exit status is 1.
    """
    from csn_plugin.cli.info import plugin_warnings_as_lines

    with plugin_warnings_as_lines():
        _classify(files, top_k, output_format, wavelength, device, batch_size, prior, classifier_name, model, plot)


def _classify(files, top_k, output_format, wavelength, device, batch_size, prior, classifier_name, model, plot):
    from csn_plugin.adapters import to_pattern

    classifier = None  # built when the first readable pattern needs it
    records, patterns_of = [], {}
    show_progress = len(files) >= PROGRESS_MIN_FILES
    stdout = click.get_text_stream("stdout")
    writer = None
    if output_format == "csv":
        writer = csv.DictWriter(stdout, fieldnames=CSV_COLUMNS, restval="", lineterminator="\n")
        writer.writeheader()
    failed = False

    def emit(index, record, result):
        nonlocal failed
        if "error" in record:
            failed = True
            if output_format == "table":
                click.echo(f"Error: {record['error']}", err=True)
        if output_format == "table" and result is not None:
            click.echo(str(result) + "\n")
        elif output_format == "jsonl":
            click.echo(json.dumps(record))
        elif output_format == "csv":
            writer.writerows(_csv_rows(record))
        records.append(record)

    progress = (
        click.progressbar(length=len(files), label="classifying", file=sys.stderr)
        if show_progress else contextlib.nullcontext(_NoProgress())
    )
    with progress as bar:
        for start in range(0, len(files), batch_size):
            chunk = list(enumerate(files))[start:start + batch_size]
            readable, outcomes = [], {}
            for index, source in chunk:
                try:
                    pattern = to_pattern(source, wavelength=wavelength)
                except INPUT_ERRORS as error:
                    outcomes[index] = error
                else:
                    readable.append((index, pattern))
            if readable and classifier is None:
                classifier = _build_classifier(classifier_name, device, prior, model)
            answers = _classify_chunk(classifier, [p for _, p in readable], top_k, batch_size) if readable else []
            for (index, pattern), answer in zip(readable, answers):
                outcomes[index] = answer
                patterns_of[index] = pattern
            for index, source in chunk:
                answer = outcomes[index]
                if isinstance(answer, BaseException):
                    emit(index, {"source": source, "error": _error_message(source, answer)}, None)
                else:
                    record = answer.to_dict()
                    record["source"] = source
                    emit(index, record, answer)
                    if plot:
                        try:
                            plot_result(patterns_of[index], answer, _plot_path(plot, source, len(files)))
                        except (OSError, ValueError) as error:
                            raise click.ClickException(f"{plot}: cannot save the plot: {_one_line(error)}") from None
                bar.update(1)
    if output_format == "json":
        click.echo(json.dumps(records, indent=2))
    if failed:
        sys.exit(1)
