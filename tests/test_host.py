"""A reference host: finds csn only through installed ``pxrd`` entry points, builds its own
PluginManager from the specs, lists menu items, runs csn's item and receives the result."""

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pluggy
import pytest

from csn_plugin import plugins
from csn_plugin.hooks import builtin, specs
from csn_plugin.pattern import Pattern

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
host_hookimpl = pluggy.HookimplMarker("pxrd")


def measured_example():
    """A measured lab pattern: shared examples/TiO2.xy, else csn's bundled copy of it."""
    shared = SHARED / "examples" / "TiO2.xy"
    if shared.is_file():
        return shared
    from csn_plugin.data import EXAMPLE_PATTERN

    return EXAMPLE_PATTERN


class ReferenceHost:
    def __init__(self, fail_on_result=False):
        self.pm = pluggy.PluginManager("pxrd")
        self.pm.add_hookspecs(specs)
        found = [ep for ep in entry_points(group="pxrd") if ep.name == "csn"]
        assert found, "csn is not installed as a pxrd entry point"
        for entry_point in found:
            self.pm.register(entry_point.load(), name=entry_point.name)
        self.pm.register(self, name="reference-host")
        self.fail_on_result = fail_on_result
        self.received = []

    @host_hookimpl
    def pxrd_classification_done(self, source, result):
        if self.fail_on_result:
            raise RuntimeError("host display crashed on purpose")
        self.received.append((source, result))

    def menu(self):
        return [item for items in self.pm.hook.pxrd_menu_items(hook=self.pm.hook) for item in items]

    def registered(self, hook_caller):
        found = {}
        hook_caller(register=lambda name, thing: found.__setitem__(name, thing))
        return found


@pytest.fixture(scope="module")
def menu_model(tmp_path_factory):
    """The menu item's classifier: the bundled model, else an untrained CSN of the same shape."""
    from csn_plugin.nets.store import bundled_model_path

    path = None
    if not bundled_model_path().is_file():
        import torch

        from csn_plugin.grid import ModelGrid
        from csn_plugin.nets.store import save_model
        from csn_plugin.nets.csn import CSN, CSNConfig

        torch.manual_seed(0)
        path = tmp_path_factory.mktemp("model") / "random-csn.safetensors"
        save_model(CSN(CSNConfig(grid_size=ModelGrid().size)).eval(), path, ModelGrid(), {"note": "untrained"})
        builtin.configure(model=str(path))
    yield path
    builtin.configure()


def test_csn_entry_point_is_installed():
    values = {ep.name: ep.value for ep in entry_points(group="pxrd")}
    assert values.get("csn") == "csn_plugin.hooks.builtin"


def test_host_plugin_manager_accepts_csn():
    host = ReferenceHost()
    host.pm.check_pending()  # every csn hookimpl matches a spec
    hooks = {caller.name for caller in host.pm.get_hookcallers(host.pm.get_plugin("csn"))}
    assert hooks == {"pxrd_register_classifiers", "pxrd_register_readers", "pxrd_menu_items"}


def test_host_reads_with_csn_readers():
    host = ReferenceHost()
    readers = host.registered(host.pm.hook.pxrd_register_readers)
    path = measured_example()
    reader = next(reader for reader in readers.values() if reader.guess_can_open(path))
    pattern = reader.read(path)
    data = np.loadtxt(path)
    np.testing.assert_allclose(pattern.two_theta, data[:, 0])
    np.testing.assert_allclose(pattern.intensity, data[:, 1])
    assert callable(host.registered(host.pm.hook.pxrd_register_classifiers)["csn"])


def test_host_runs_csn_menu_item_and_receives_the_result(menu_model):
    host = ReferenceHost()
    labels = [item.label for item in host.menu()]
    assert labels == ["Identify space group (CSN)"]
    item = host.menu()[0]
    path = str(measured_example())
    returned = item.callback(path)
    assert len(host.received) == 1
    source, result = host.received[0]
    assert source == path and result is returned
    assert len(result.predictions) == 5
    assert abs(float(np.sum(result.probabilities)) - 1) < 1e-4
    # the same item on arrays and a Pattern: each result reaches the host
    pattern = Pattern.from_file(path)
    item.callback(pattern)
    item.callback((pattern.two_theta, pattern.intensity))
    assert len(host.received) == 3
    np.testing.assert_allclose(host.received[1][1].probabilities, result.probabilities, atol=1e-5)


def test_a_crashing_host_hook_does_not_break_the_menu_item(menu_model):
    plugins.reset_plugin_manager()
    host = ReferenceHost(fail_on_result=True)
    item = host.menu()[0]
    with pytest.warns(plugins.PluginWarning, match="crashed on purpose"):
        result = item.callback(str(measured_example()))
    assert len(result.predictions) == 5
    assert any(error.plugin == "reference-host" for error in plugins.get_plugin_errors())
    plugins.reset_plugin_manager()


def test_bad_data_in_the_menu_item_raises_pattern_error(menu_model):
    from csn_plugin.errors import PatternError

    host = ReferenceHost()
    with pytest.raises(PatternError):
        host.menu()[0].callback((np.linspace(5, 50, 100), np.full(100, np.nan)))
    assert host.received == []


def test_example_host_runs(menu_model):
    command = [sys.executable, str(REPO / "docs" / "example_host.py"), str(measured_example())]
    if menu_model is not None:
        command += ["--model", str(menu_model)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "menu: Identify space group (CSN)" in done.stdout
    assert "host received" in done.stdout
    assert "Traceback" not in done.stderr
