"""``csn classify FILE...``: ranked space groups for pattern files, as a table, JSON, JSONL or CSV."""

import contextlib
import csv
import json
import sys
import warnings
from pathlib import Path

import click

from ..errors import CsnError
from ..priors import PRIOR_NAMES

FORMATS = ("table", "json", "jsonl", "csv")
PROGRESS_MIN_FILES = 20  # show a progress bar on stderr from this many files on
CSV_COLUMNS = (
    "source", "rank", "space_group", "symbol", "probability", "crystal_system",
    "crystal_system_probability", "bravais_lattice", "bravais_lattice_probability",
    "cell_lattice", "a", "b", "c", "alpha", "beta", "gamma", "M20", "extinction_symbol", "error",
)
# What bad input raises; each becomes one line naming the file, never a traceback.
INPUT_ERRORS = (CsnError, ValueError, OSError, TypeError, UnicodeError)


class _NoProgress:
    def update(self, steps):
        pass


def _check_wavelength(ctx, param, value):
    if value is None:
        return None
    from ..physics import resolve_wavelength

    try:
        return resolve_wavelength(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def _one_line(error) -> str:
    """The error's text on one printable line (names with undecodable bytes escaped)."""
    from ..errors import display_name

    text = " ".join(str(error).split())
    return display_name(text) if text else type(error).__name__


def _error_message(source, error) -> str:
    """``source: problem`` (PatternError already reads so; others get the file name prefixed, and
    an exception that is not csn's own names its type)."""
    text = _one_line(error)
    if not isinstance(error, INPUT_ERRORS) or isinstance(error, (KeyError, IndexError, AttributeError)):
        text = f"unexpected {type(error).__name__}: {text}"
    if text.startswith(f"{source}:") or (source == "" and text.startswith("'' (empty file name):")):
        return text
    return f"{source}: {text}"


def _build_classifier(name, device, prior, model, extra=None):
    from ..plugins import get_classifiers

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
    options.update(extra or {})  # only what the user asked for (--network-only, --time-limit)
    from ..errors import PriorWarning

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
        answers = classifier.predict_many(patterns, top_k=top_k, batch_size=batch_size)
        if len(answers) == len(patterns):
            return answers
    except Exception:  # noqa: BLE001 - one bad pattern must not cost the chunk its answers
        pass
    answers = []
    for pattern in patterns:  # find the culprit, keep the rest
        try:
            answers.append(classifier.predict(pattern, top_k=top_k))
        except Exception as error:  # noqa: BLE001 - becomes this file's error entry
            answers.append(error)
    return answers


def _csv_rows(record):
    if "error" in record:
        yield {"source": record["source"], "error": record["error"]}
        return
    system, lattice = record.get("crystal_system") or {}, record.get("bravais_lattice") or {}
    cell = record.get("cell") or {}
    cell_columns = {key: cell.get(key, "") for key in ("a", "b", "c", "alpha", "beta", "gamma")}
    cell_columns.update(cell_lattice=cell.get("lattice", ""), M20=(cell.get("figure_of_merit") or {}).get("M20", ""),
                        extinction_symbol=record.get("extinction_symbol") or "")
    for rank, prediction in enumerate(record["predictions"], 1):
        yield {
            **cell_columns,
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


def _mark_evidence(axes, pattern, result):
    """Indexed peaks (green), unexplained ones (red) and the allowed reflections of the top group
    in the indexed cell (ticks below the pattern)."""
    import numpy as np

    peaks, cell = result.peaks, result.cell
    if peaks is None or not len(peaks):
        return
    top = float(np.max(pattern.intensity)) if len(pattern.intensity) else 1.0
    explained = np.zeros(len(peaks), dtype=bool)
    unexplained = np.zeros(len(peaks), dtype=bool)
    if cell is not None:
        lines = np.asarray(cell.line_two_theta)
        indexed = np.asarray(cell.indexed, dtype=bool)
        for chosen, mask in ((lines[indexed], explained), (lines[~indexed], unexplained)):
            if len(chosen):
                mask |= np.min(np.abs(peaks.two_theta[:, None] - chosen[None, :]), axis=1) < 1e-6
    other = ~(explained | unexplained)
    heights = np.interp(peaks.two_theta, pattern.two_theta, pattern.intensity)
    axes.plot(peaks.two_theta[explained], heights[explained], "v", color="tab:green", ms=4, label="indexed peak")
    axes.plot(peaks.two_theta[unexplained], heights[unexplained], "v", color="tab:red", ms=4, label="unexplained peak")
    axes.plot(peaks.two_theta[other], heights[other], "v", color="0.6", ms=3, label="peak not used for indexing")
    if cell is not None and result.predictions:
        from ..crystallography.extinction import allowed_two_theta

        ticks = allowed_two_theta(cell, result.predictions[0].space_group, pattern.wavelength,
                                  (float(pattern.two_theta.min()), float(pattern.two_theta.max())))
        axes.vlines(ticks, -0.08 * top, -0.02 * top, color="tab:blue", lw=0.8,
                    label=f"allowed reflections, {result.predictions[0].symbol}")
        axes.set_ylim(bottom=-0.1 * top)
    axes.legend(fontsize=7, loc="upper right")


def plot_result(pattern, result, path):
    """Save a PNG: the pattern (top) and the top-k space-group probabilities (bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), gridspec_kw={"height_ratios": [3, 2]})
    top.plot(pattern.two_theta, pattern.intensity, lw=0.8, color="black")
    _mark_evidence(top, pattern, result)
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
@click.option("--prior", type=click.Choice(PRIOR_NAMES), default="icsd", show_default=True,
              help="Space-group prior of your samples: uniform, icsd, cod (minerals, lab samples), mp.")
@click.option("--classifier", "classifier_name", default="csn", show_default=True,
              help="A registered classifier (see `csn plugins`).")
@click.option("--model", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Weights (.safetensors with its .json sidecar) instead of the bundled model.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Save a PNG of the pattern and its top-k probabilities (one per file: NAME-<file>.png).")
@click.option("--network-only", is_flag=True, default=False,
              help="The network's answer alone (the fast path): no peak search, indexing or extinction analysis.")
@click.option("--time-limit", type=click.FloatRange(0.05, 3600), default=None,
              help="Safety limit in seconds on the indexing search of one pattern (the search itself is a fixed amount of work). [default: the classifier's, 30 s]")
def classify(files, top_k, output_format, wavelength, device, batch_size, prior, classifier_name, model, plot,
             network_only, time_limit):
    """Rank the space groups of powder patterns in FILE... (.xy, .xrdml, .rasx, .brml, pdCIF...).

    A file that cannot be read is reported on one line (in JSON as {"source", "error"}); the
    others are still classified, and the exit status is 1.
    """
    from .info import plugin_warnings_as_lines

    extra = {}
    if network_only:
        extra["network_only"] = True
    if time_limit is not None:
        extra["time_limit"] = time_limit
    with plugin_warnings_as_lines():
        _classify(files, top_k, output_format, wavelength, device, batch_size, prior, classifier_name, model, plot, extra)


def _shown(source) -> str:
    """The file name as output shows it: unchanged when it is printable UTF-8, else escaped
    (``\\xff`` for bytes that are not UTF-8, ``\\n`` for a newline), so no writer can fail on it."""
    from ..errors import display_name

    return source if source == "" else display_name(source)


def _read_one(source, wavelength):
    """(pattern or exception, [warning lines]) for one file; never raises for a bad file."""
    from ..errors import PatternWarning
    from ..inputs import to_pattern

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PatternWarning)
        try:
            pattern = to_pattern(source, wavelength=wavelength)
        except Exception as error:  # any per-file failure (MemoryError included) is that file's error entry
            pattern = error
    lines = []
    for warning in caught:
        if issubclass(warning.category, PatternWarning):
            lines.append(_one_line(warning.message))
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return pattern, lines


class _JsonArray:
    """Writes ``json.dumps(records, indent=2)`` one record at a time (same text, bounded memory)."""

    def __init__(self, stream):
        self.stream, self.count = stream, 0

    def write(self, record):
        body = json.dumps(record, indent=2).replace("\n", "\n  ")
        self.stream.write(("[\n  " if self.count == 0 else ",\n  ") + body)
        self.count += 1

    def close(self):
        self.stream.write("[]\n" if self.count == 0 else "\n]\n")
        self.stream.flush()


def _classify(files, top_k, output_format, wavelength, device, batch_size, prior, classifier_name, model, plot, extra=None):
    """Read, classify and write ``files`` in chunks of ``batch_size``: memory holds one chunk's
    patterns and results, whatever the number of files; each record is written (and flushed) as
    soon as its chunk is classified."""
    show_progress = len(files) >= PROGRESS_MIN_FILES
    stdout = click.get_text_stream("stdout")
    writer = json_array = None
    if output_format == "csv":
        writer = csv.DictWriter(stdout, fieldnames=CSV_COLUMNS, restval="", lineterminator="\n")
        writer.writeheader()
    elif output_format == "json":
        json_array = _JsonArray(stdout)
    failed = False

    def emit(record, result):
        nonlocal failed
        if "error" in record:
            failed = True
            if output_format == "table":
                click.echo(f"Error: {record['error']}", err=True)
        if output_format == "table" and result is not None:
            click.echo(str(result) + "\n")
        elif output_format == "jsonl":
            stdout.write(json.dumps(record) + "\n")
        elif output_format == "csv":
            writer.writerows(_csv_rows(record))
        elif output_format == "json":
            json_array.write(record)

    progress = (
        click.progressbar(length=len(files), label="classifying", file=sys.stderr)
        if show_progress else contextlib.nullcontext(_NoProgress())
    )
    try:
        _run_chunks(files, batch_size, wavelength, progress, emit, plot, top_k, classifier_name, device, prior, model, extra)
    except BaseException:
        if json_array is not None and json_array.count:
            json_array.close()  # the records written stay valid JSON when a fatal error stops the batch
        raise
    if json_array is not None:
        json_array.close()
    if failed:
        sys.exit(1)


def _run_chunks(files, batch_size, wavelength, progress, emit, plot, top_k, classifier_name, device, prior, model, extra=None):
    """The chunk loop of :func:`_classify`: read, classify, emit, forget."""
    classifier = None  # built when the first readable pattern needs it
    stdout = click.get_text_stream("stdout")
    with progress as bar:
        for start in range(0, len(files), batch_size):
            chunk = files[start:start + batch_size]
            outcomes, notes = [], []
            for source in chunk:
                pattern, lines = _read_one(source, wavelength)
                outcomes.append(pattern)
                notes.append(lines)
                prefix = _shown(source) + ": "
                for line in lines:
                    click.echo(f"warning: {line}", err=True)
                notes[-1] = [line[len(prefix):] if line.startswith(prefix) else line for line in lines]
            readable = [i for i, outcome in enumerate(outcomes) if not isinstance(outcome, BaseException)]
            if readable and classifier is None:
                classifier = _build_classifier(classifier_name, device, prior, model, extra)
            answers = _classify_chunk(classifier, [outcomes[i] for i in readable], top_k, batch_size) if readable else []
            patterns = dict(zip(readable, (outcomes[i] for i in readable)))
            for i, answer in zip(readable, answers):
                outcomes[i] = answer
            for i, (source, answer) in enumerate(zip(chunk, outcomes)):
                shown = _shown(source)
                if isinstance(answer, BaseException):
                    record = {"source": shown, "error": _error_message(shown, answer)}
                    if notes[i]:
                        record["warnings"] = notes[i]
                    emit(record, None)
                else:
                    answer.source = shown
                    record = answer.to_dict()
                    record["source"] = shown
                    if notes[i]:
                        record["warnings"] = notes[i]
                    emit(record, answer)
                    if plot:
                        try:
                            plot_result(patterns[i], answer, _plot_path(plot, source, len(files)))
                        except (OSError, ValueError) as error:
                            raise click.ClickException(f"{plot}: cannot save the plot: {_one_line(error)}") from None
            stdout.flush()  # jsonl/csv/table lines appear chunk by chunk
            del outcomes, answers, patterns
            bar.update(len(chunk))
