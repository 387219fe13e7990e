"""The ``csn`` click group. Subcommands live in their own modules and are imported only
when run (or listed), so ``csn --help`` never imports torch, pymatgen or xrayutilities."""

import importlib

import click

# name -> "module:attribute"; each module keeps its heavy imports inside the command body.
SUBCOMMANDS = {
    "classify": "csn_plugin.cli.classify:classify",
    "dataset": "csn_plugin.cli.dataset:dataset",
    "train": "csn_plugin.cli.train:train",
    "evaluate": "csn_plugin.cli.evaluate:evaluate",
    "calibrate": "csn_plugin.cli.evaluate:calibrate",
    "info": "csn_plugin.cli.info:info",
    "plugins": "csn_plugin.cli.info:plugins",
    "simulate": "csn_plugin.cli.simulate:simulate",
    "real": "csn_plugin.cli.realdata:real",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx):
        return sorted(name for name in SUBCOMMANDS if self._load(name) is not None)

    def get_command(self, ctx, name):
        return self._load(name)

    @staticmethod
    def _load(name):
        target = SUBCOMMANDS.get(name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:  # subcommand not written yet
                return None
            raise
        return getattr(module, attribute)


@click.group(cls=LazyGroup)
@click.version_option(package_name="csn-plugin")
def cli():
    """csn: space groups from powder X-ray diffraction patterns (Chemical Sight Net)."""
