"""A minimal diffraction program ("host") that adopts the ``pxrd`` plugin specs.

It finds plugins (csn among them) only through installed ``pxrd`` entry points, lists their menu
items, reads a file with a plugin reader, runs "Identify space group (CSN)" on it and receives the
result in its own ``pxrd_classification_done`` hook.

    python docs/example_host.py [PATTERN] [--model WEIGHTS.safetensors]
"""

import argparse
import sys
from importlib.metadata import entry_points

import pluggy

from csn_plugin.hooks import specs  # the published hook specifications

hookimpl = pluggy.HookimplMarker("pxrd")


class ExampleHost:
    """Owns a PluginManager, loads ``pxrd`` entry points, implements ``pxrd_classification_done``."""

    def __init__(self):
        self.plugin_manager = pluggy.PluginManager("pxrd")
        self.plugin_manager.add_hookspecs(specs)
        for entry_point in entry_points(group="pxrd"):
            try:
                self.plugin_manager.register(entry_point.load(), name=entry_point.name)
            except Exception as error:  # a broken plugin must not take the host down
                print(f"skipping plugin {entry_point.name}: {error}", file=sys.stderr)
        self.plugin_manager.register(self, name="example-host")
        self.results = []

    def menu(self):
        """Every plugin's menu items; callbacks report back through this host's hook relay."""
        hook = self.plugin_manager.hook
        return [item for items in hook.pxrd_menu_items(hook=hook) for item in items]

    def _registered(self, hook_caller):
        found = {}
        hook_caller(register=lambda name, thing: found.setdefault(name, thing))
        return found

    def readers(self):
        return self._registered(self.plugin_manager.hook.pxrd_register_readers)

    def classifiers(self):
        return self._registered(self.plugin_manager.hook.pxrd_register_classifiers)

    def open(self, path):
        """Read a pattern with the first plugin reader that recognises the file."""
        for reader in self.readers().values():
            if reader.guess_can_open(path):
                return reader.read(path)
        raise ValueError(f"{path}: no plugin reader recognises this file")

    @hookimpl
    def pxrd_classification_done(self, source, result):
        self.results.append((source, result))
        best = result.predictions[0]
        print(f"host received {source}: {best.symbol} (No. {best.space_group}, {best.probability:.1%})")


def main(argv=None):
    from csn_plugin.data import EXAMPLE_PATTERN

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pattern", nargs="?", default=str(EXAMPLE_PATTERN))
    parser.add_argument("--model", help="CSN weights instead of the bundled model")
    args = parser.parse_args(argv)
    if args.model:
        from csn_plugin.hooks import builtin

        builtin.configure(model=args.model)

    host = ExampleHost()
    print("plugins:", ", ".join(name for name, _ in host.plugin_manager.list_name_plugin()))
    print("readers:", ", ".join(host.readers()))
    print("classifiers:", ", ".join(host.classifiers()))
    pattern = host.open(args.pattern)
    print("opened:", pattern)
    menu = host.menu()
    for item in menu:
        print(f"menu: {item.label} - {item.help}")
    identify = next(item for item in menu if item.label == "Identify space group (CSN)")
    identify.callback(args.pattern)  # the result arrives in pxrd_classification_done
    print(host.results[-1][1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
