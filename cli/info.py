"""``csn info`` (model card summary, device, plugins) and ``csn plugins`` (installed pxrd plugins)."""

import contextlib
import json
import warnings

import click

# Sidecar keys not worth showing people.
_HIDDEN_KEYS = {"sha256", "config", "grid", "format"}


@contextlib.contextmanager
def plugin_warnings_as_lines():
    """Show plugin failures as one ``warning: ...`` line each on stderr, not as Python warnings."""
    from ..plugins import PluginWarning, get_plugin_errors

    before = len(get_plugin_errors())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)
        try:
            yield
        finally:
            for error in get_plugin_errors()[before:]:
                click.echo(f"warning: {error}", err=True)


def _model_summary() -> dict:
    """What the bundled model's JSON sidecar says, without loading torch or the weights."""
    from ..nets.store import bundled_model_path, sidecar_path

    weights = bundled_model_path()
    sidecar = sidecar_path(weights)
    summary = {"weights": str(weights), "present": weights.is_file() and sidecar.is_file()}
    if sidecar.is_file():
        try:
            card = json.loads(sidecar.read_text())
        except (OSError, ValueError) as error:
            summary["error"] = f"{sidecar}: unreadable sidecar ({error})"
            return summary
        summary["size_mb"] = round(weights.stat().st_size / 1e6, 2) if weights.is_file() else None
        summary["grid"] = card.get("grid")
        summary["config"] = card.get("config")
        summary.update({key: value for key, value in card.items() if key not in _HIDDEN_KEYS})
    card_md = weights.with_suffix(".md")
    if card_md.is_file():
        summary["model_card"] = str(card_md)
    return summary


def _device_summary() -> dict:
    import torch

    summary = {"torch": torch.__version__, "cuda": torch.cuda.is_available(), "default": "cpu"}
    if summary["cuda"]:
        summary["default"] = "cuda"
        summary["gpu"] = torch.cuda.get_device_name(0)
    summary["threads"] = torch.get_num_threads()
    return summary


def _plugin_summary() -> dict:
    from ..plugins import get_classifiers, get_plugin_errors, get_readers, list_plugins

    return {
        "plugins": list_plugins(),
        "classifiers": list(get_classifiers()),
        "readers": list(get_readers()),
        "errors": [str(error) for error in get_plugin_errors()],
    }


def _short(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_short(v)}" for k, v in value.items() if not isinstance(v, (dict, list)))
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def info(as_json):
    """Show the bundled model's card, the compute device and the installed plugins."""
    from .. import __version__

    with plugin_warnings_as_lines():
        summary = {"csn": __version__, "model": _model_summary(), "device": _device_summary(), **_plugin_summary()}
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
        return
    model, device = summary["model"], summary["device"]
    click.echo(f"csn {__version__}")
    state = "present" if model["present"] else "MISSING (csn classify will not work)"
    click.echo(f"model: {model['weights']} ({state})")
    for key, value in model.items():
        if key in ("weights", "present") or value in (None, {}, []):
            continue
        click.echo(f"  {key}: {_short(value)}")
    gpu = f" ({device['gpu']})" if device.get("gpu") else ""
    click.echo(f"device: {device['default']}{gpu}; torch {device['torch']}, {device['threads']} CPU threads")
    click.echo("plugins: " + ", ".join(f"{p['name']} {p['version'] or ''}".strip() for p in summary["plugins"]))
    click.echo("classifiers: " + (", ".join(summary["classifiers"]) or "none"))
    click.echo("readers: " + (", ".join(summary["readers"]) or "none"))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON: [{name, hooks, version}].")
def plugins(as_json):
    """List the installed pxrd plugins (csn's own first) and the hooks each implements."""
    from ..plugins import list_plugins

    with plugin_warnings_as_lines():
        listed = list_plugins()
    if as_json:
        click.echo(json.dumps(listed, indent=2))
    else:
        for plugin in listed:
            version = f" {plugin['version']}" if plugin["version"] else ""
            click.echo(f"{plugin['name']}{version}: {', '.join(plugin['hooks']) or 'no hooks'}")
