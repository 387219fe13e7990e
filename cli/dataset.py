"""``csn dataset build|info``: build the peak-list training set, or count what a build holds."""

import json

import click

from ..synth.dataset import DISTRIBUTIONS, SHARD_SIZE


class _OneLineCommand(click.Command):
    """Bad arguments become a one-line ``Error: ...`` (no usage block)."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as error:
            raise click.ClickException(f"{info_name}: {error.format_message()}") from None


def _fail(error):
    message = " ".join(str(error).split()) or type(error).__name__
    raise click.ClickException(message) from None


@click.group()
def dataset():
    """Build and inspect peak-list training sets."""


@dataset.command(cls=_OneLineCommand)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Directory for the shards and manifest.json.")
@click.option("--count", required=True, type=click.IntRange(min=1), help="Number of structures (items).")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed (shard i uses [seed, i]).")
@click.option("--distribution", default=DISTRIBUTIONS[0], show_default=True, type=click.Choice(DISTRIBUTIONS),
              help="natural: Materials Project space-group frequencies; balanced: all 230 equally.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1), help="Worker processes.")
@click.option("--shard-size", default=SHARD_SIZE, show_default=True, type=click.IntRange(min=1), help="Items per shard file.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def build(out_dir, count, seed, distribution, workers, shard_size, quiet):
    """Generate structures, label them with spglib and store their simulated peak lists.

    Rerunning the same command finishes an interrupted build (finished shards are kept).
    """
    from ..errors import CsnError
    from ..synth.dataset import build_dataset

    try:
        manifest = build_dataset(out_dir, count, seed=seed, distribution=distribution, workers=workers,
                                 progress=not quiet, shard_size=shard_size)
    except (CsnError, OSError, ValueError) as error:
        _fail(error)
    skipped = sum(manifest["skipped"].values())
    click.echo(f"{out_dir}: {manifest['count']} items, {skipped} structures skipped "
               f"{manifest['skipped']}, {manifest['elapsed_seconds']} s", err=True)


@dataset.command(cls=_OneLineCommand)
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print {\"count\": N, \"space_groups\": {...}} as JSON.")
def info(directory, as_json):
    """Count the items of a dataset and of each space group."""
    from ..errors import CsnError
    from ..synth.dataset import dataset_info

    try:
        summary = dataset_info(directory)
    except (CsnError, OSError, ValueError) as error:
        _fail(error)
    if as_json:
        click.echo(json.dumps(summary))
        return
    groups = summary["space_groups"]
    click.echo(f"{directory}: {summary['count']} items in {len(groups)} space groups")
    top = sorted(groups.items(), key=lambda item: -item[1])[:10]
    click.echo("most frequent: " + ", ".join(f"{group} ({count})" for group, count in top))
