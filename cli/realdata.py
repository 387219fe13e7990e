"""``csn dataset real build|shards|info``: the real-structure store (csn_plugin.synth)."""

import json

import click


def _fail(error):
    message = " ".join(str(error).split()) or type(error).__name__
    raise click.ClickException(message) from None


@click.group()
def real():
    """Real crystal structures (AMCSD, OQMD-ICSD, Materials Project, BGMN, CoRE MOF, wheels)."""


@real.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Build directory.")
@click.option("--mp-tar", type=click.Path(dir_okay=False), default=None,
              help="Materials Project CIF archive (.tar.xz), e.g. ../shared/data/structures/materials-project-144861-cifs.tar.xz.")
@click.option("--sources", default="", help="Comma-separated source names (default: all available).")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--shards/--no-shards", default=False, help="Also write the training peak shards (OUT/peaks).")
@click.option("--variants", default=4, show_default=True, type=click.IntRange(min=1), help="Rounds over the train split (round 0 unchanged).")
@click.option("--quiet", is_flag=True)
def build(out_dir, mp_tar, sources, workers, shards, variants, quiet):
    """Read, label (spglib, symprec 0.1 and 1e-3) and store every source; split; dev set.

    Resumable: rerun the same command after an interruption (finished slices are kept).
    """
    from ..synth.store import build_store, write_peak_shards

    names = [name.strip() for name in sources.split(",") if name.strip()] or None
    try:
        manifest = build_store(out_dir, mp_tar=mp_tar, sources=names, workers=workers, progress=not quiet)
        if shards:
            write_peak_shards(out_dir, variants=variants, workers=workers, progress=not quiet)
    except (KeyError, ValueError, OSError, RuntimeError) as error:
        _fail(error)
    total = sum(entry["labelled"] for entry in manifest["sources"].values())
    click.echo(f"{out_dir}: {total} structures labelled, {manifest['elapsed_seconds']} s; "
               f"missing sources: {manifest['missing_sources'] or 'none'}", err=True)


@real.command()
@click.option("--store", "store_dir", required=True, type=click.Path(file_okay=False, exists=True), help="Build directory of `real build`.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False), help="Shard directory (default STORE/peaks).")
@click.option("--variants", default=4, show_default=True, type=click.IntRange(min=1))
@click.option("--shard-size", default=2000, show_default=True, type=click.IntRange(min=1))
@click.option("--max-atoms", default=400, show_default=True, type=click.IntRange(min=1), help="Structures with more sites are left out.")
@click.option("--random-every", default=10, show_default=True, type=click.IntRange(min=0), help="One random-crystal shard after every N real shards (0: none).")
@click.option("--val-items", default=1024, show_default=True, type=click.IntRange(min=0),
              help="Val-split structures in shard-00000 (csn train validates on the first 0.02 x items, <= 2,048).")
@click.option("--seed", default=0, show_default=True)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--limit", "limit_shards", default=0, show_default=True, help="Stop after this many shards (0: all).")
@click.option("--quiet", is_flag=True)
def shards(store_dir, out_dir, variants, shard_size, max_atoms, random_every, val_items, seed, workers, limit_shards, quiet):
    """Write PeakDataset shards (for `csn train --dataset`) from the train split, with augmented variants."""
    from ..synth.store import write_peak_shards

    try:
        manifest = write_peak_shards(store_dir, out_dir, variants=variants, shard_size=shard_size, max_atoms=max_atoms,
                                     seed=seed, random_every=random_every, workers=workers, progress=not quiet,
                                     limit_shards=limit_shards, val_items=val_items)
    except (KeyError, ValueError, OSError, RuntimeError) as error:
        _fail(error)
    click.echo(json.dumps(manifest), err=True)


@real.command()
@click.argument("directory", type=click.Path(file_okay=False, exists=True))
def info(directory):
    """Print the store manifest and split summary as JSON."""
    from pathlib import Path

    path = Path(directory)
    out = {}
    for name in ("store.json", "splits.json"):
        if (path / name).exists():
            out[name] = json.loads((path / name).read_text())
    if not out:
        _fail(f"{directory}: no store.json (run csn dataset real build)")
    click.echo(json.dumps(out, indent=2))
