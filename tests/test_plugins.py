"""csn's plugin manager: built-in plugin, entry points, CSN_PLUGINS, failing plugins, conformance."""

import importlib
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import csn_plugin
from csn_plugin import plugins
from csn_plugin.nets.store import BUNDLED_BASELINES
from csn_plugin.pattern import Pattern
from csn_plugin.plugins import PluginWarning
from csn_plugin.readers import BUILTIN_READERS
from csn_plugin.testing import CHECKS, check_classifier
from throwaway_sources import PROJECTION  # the throwaway classifier's source, registered by conftest.py

THROWAWAY_MODULES = {
    "csn_throwaway_broken_load": """
        raise RuntimeError("broken on purpose at import")
    """,
    "csn_throwaway_raises_in_hook": """
        from csn_plugin.hooks.specs import hookimpl

        @hookimpl
        def pxrd_register_readers(register):
            register("half-registered", object())
            raise RuntimeError("raised inside a hook on purpose")

        @hookimpl
        def pxrd_menu_items(hook):
            raise RuntimeError("menu raised on purpose")
    """,
    "csn_throwaway_duplicate": """
        from csn_plugin.hooks.specs import hookimpl
        from csn_plugin.readers import BUILTIN_READERS

        @hookimpl
        def pxrd_register_readers(register):
            register(next(iter(BUILTIN_READERS)), object())  # a name csn already uses

        @hookimpl
        def pxrd_menu_item():  # a typo: no such hook
            return []
    """,
    "csn_throwaway_good": textwrap.dedent("""
        import json
        from pathlib import Path

        import numpy as np

        from csn_plugin.inputs import to_pattern
        from csn_plugin.errors import PatternError
        from csn_plugin.grid import ModelGrid
        from csn_plugin.hooks.specs import MenuItem, hookimpl
        from csn_plugin.pattern import Pattern
        from csn_plugin.inference.result import ClassificationResult, SpaceGroupPrediction
        from csn_plugin import symmetry


        class JsonReader:
            '''Patterns stored as {"two_theta": [...], "intensity": [...], "wavelength": A}.'''
            name = "pxjson"
            extensions = (".pxjson",)
            description = "JSON pattern (throwaway test plugin)"

            def guess_can_open(self, path):
                return Path(path).suffix.lower() == ".pxjson"

            def read(self, path):
                data = json.loads(Path(path).read_text())
                return Pattern(data["two_theta"], data["intensity"], data["wavelength"], source=str(path),
                               metadata={"wavelength_source": "file"})


    """) + PROJECTION + textwrap.dedent("""


        @hookimpl
        def pxrd_register_readers(register):
            register("pxjson", JsonReader())


        @hookimpl
        def pxrd_register_classifiers(register):
            register("projection", ProjectionClassifier)


        @hookimpl
        def pxrd_menu_items():
            return [MenuItem("Count points (throwaway)", lambda data: len(to_pattern(data)), "number of points")]
    """),
}
ENTRY_POINTS = {
    "throwaway_broken_load": "csn_throwaway_broken_load",
    "throwaway_raises_in_hook": "csn_throwaway_raises_in_hook",
    "throwaway_duplicate": "csn_throwaway_duplicate",
    "throwaway_good": "csn_throwaway_good",
}


@pytest.fixture
def fresh_manager(monkeypatch):
    """csn's plugin manager rebuilt for the test and forgotten afterwards."""
    monkeypatch.delenv(plugins.ENV_VARIABLE, raising=False)
    plugins.reset_plugin_manager()
    yield
    plugins.reset_plugin_manager()


@pytest.fixture
def throwaway(tmp_path, monkeypatch, fresh_manager):
    """A real installed distribution 'csn-throwaway' with four pxrd entry points (on sys.path)."""
    for module, source in THROWAWAY_MODULES.items():
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    info = tmp_path / "csn_throwaway-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: csn-throwaway\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[pxrd]\n" + "".join(f"{name} = {module}\n" for name, module in ENTRY_POINTS.items())
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield tmp_path
    for module in THROWAWAY_MODULES:
        sys.modules.pop(module, None)


def errors_by_plugin():
    """{plugin: its last reported error}"""
    return {error.plugin: error for error in plugins.get_plugin_errors()}


def messages_of(plugin):
    return [f"{error.stage}: {error.message}" for error in plugins.get_plugin_errors() if error.plugin == plugin]


def random_csn_model(directory):
    """A real, untrained CSN network saved like the bundled one: enough to test the plumbing."""
    import torch

    from csn_plugin.grid import ModelGrid
    from csn_plugin.nets.store import save_model
    from csn_plugin.nets.csn import CSN, CSNConfig

    torch.manual_seed(0)
    path = Path(directory) / "random-csn.safetensors"
    save_model(CSN(CSNConfig(grid_size=ModelGrid().size)).eval(), path, ModelGrid(), {"note": "untrained"})
    return path


@pytest.fixture(scope="module")
def csn_options(tmp_path_factory):
    """Options for the "csn" factory: the bundled model if present, else an untrained one."""
    from csn_plugin.nets.store import bundled_model_path

    if bundled_model_path().is_file():
        return {}
    return {"model": random_csn_model(tmp_path_factory.mktemp("model"))}


# ------------------------------------------------------------------------------------ built-in
def test_builtin_plugin_alone(monkeypatch, fresh_manager):
    monkeypatch.setenv(plugins.ENV_VARIABLE, "")
    listed = plugins.list_plugins()
    assert [p["name"] for p in listed] == ["csn"]
    assert listed[0]["version"] == csn_plugin.__version__
    assert set(listed[0]["hooks"]) == {"pxrd_register_classifiers", "pxrd_register_readers", "pxrd_menu_items"}
    assert list(plugins.get_classifiers()) == ["csn", *BUNDLED_BASELINES]
    readers = plugins.get_readers()
    assert list(readers) == list(BUILTIN_READERS)
    assert all(readers[name] is BUILTIN_READERS[name] for name in readers)
    assert [item.label for item in plugins.get_menu_items()] == ["Identify space group (CSN)"]
    assert plugins.get_plugin_errors() == []


def test_plugin_manager_is_shared_and_specs_are_pxrd(fresh_manager):
    manager = plugins.get_plugin_manager()
    assert manager is plugins.get_plugin_manager()
    assert manager.project_name == "pxrd"
    assert manager.has_plugin("csn")


# --------------------------------------------------------------------------- external plugins
def test_failing_plugins_are_reported_and_skipped(throwaway):
    with pytest.warns(PluginWarning) as caught:
        readers = plugins.get_readers()
    errors = errors_by_plugin()
    assert errors["throwaway_broken_load"].stage == "load"
    assert "broken on purpose at import" in errors["throwaway_broken_load"].message
    assert errors["throwaway_raises_in_hook"].stage == "pxrd_register_readers"
    assert "raised inside a hook on purpose" in errors["throwaway_raises_in_hook"].message
    duplicate = messages_of("throwaway_duplicate")
    assert any("pxrd_register_readers" in m and "already registered" in m for m in duplicate), duplicate
    assert any("pxrd_menu_item, which is no pxrd hook" in m for m in duplicate), duplicate
    assert any("throwaway_broken_load" in str(w.message) for w in caught)
    # the host goes on: csn's readers, the good plugin's reader, nothing of the failed hook
    assert list(readers)[: len(BUILTIN_READERS)] == list(BUILTIN_READERS)
    first = next(iter(BUILTIN_READERS))
    assert readers[first] is BUILTIN_READERS[first]
    assert "pxjson" in readers and "half-registered" not in readers
    assert set(plugins.get_classifiers()) == {"csn", *BUNDLED_BASELINES, "projection"}
    names = {p["name"]: p for p in plugins.list_plugins()}
    assert "throwaway_broken_load" not in names
    assert names["throwaway_good"]["version"] == "0.1"
    assert names["csn"] == plugins.list_plugins()[0]


def test_menu_items_survive_a_raising_plugin(throwaway):
    with pytest.warns(PluginWarning):
        items = plugins.get_menu_items()
    labels = [item.label for item in items]
    assert "Identify space group (CSN)" in labels and "Count points (throwaway)" in labels
    assert errors_by_plugin()["throwaway_raises_in_hook"].stage == "pxrd_menu_items"
    count = next(item for item in items if item.label.startswith("Count"))
    assert count.callback((np.linspace(10, 80, 321), np.linspace(1, 2, 321))) == 321


@pytest.mark.parametrize("selection, loaded", [
    ("", {"csn"}),
    ("throwaway_good", {"csn", "throwaway_good"}),
    (" throwaway_good , throwaway_duplicate ", {"csn", "throwaway_good", "throwaway_duplicate"}),
    ("csn-throwaway", {"csn", "throwaway_good", "throwaway_duplicate", "throwaway_raises_in_hook"}),
])
def test_csn_plugins_selects_external_plugins(throwaway, monkeypatch, selection, loaded):
    monkeypatch.setenv(plugins.ENV_VARIABLE, selection)
    assert {p["name"] for p in plugins.list_plugins()} == loaded
    load_errors = {e.plugin for e in plugins.get_plugin_errors() if e.stage == "load"}
    assert load_errors == ({"throwaway_broken_load"} if selection == "csn-throwaway" else set())


def test_plugin_reader_is_used_by_read_pattern(throwaway, monkeypatch):
    monkeypatch.setenv(plugins.ENV_VARIABLE, "throwaway_good")
    two_theta = np.linspace(5, 40, 200)
    intensity = np.exp(-((two_theta - 12.0) / 0.2) ** 2) + 0.05
    path = throwaway / "scan.pxjson"
    path.write_text(json.dumps({"two_theta": two_theta.tolist(), "intensity": intensity.tolist(), "wavelength": 0.7093}))
    pattern = Pattern.from_file(path)
    assert pattern.wavelength == pytest.approx(0.7093)
    np.testing.assert_allclose(pattern.intensity, intensity)
    monkeypatch.setenv(plugins.ENV_VARIABLE, "")
    plugins.reset_plugin_manager()
    with pytest.raises(csn_plugin.errors.PatternError):  # without the plugin nobody reads JSON
        Pattern.from_file(path)


def test_notify_isolates_a_raising_host(fresh_manager):
    from csn_plugin.hooks.specs import hookimpl

    class Recorder:
        def __init__(self):
            self.received = []

        @hookimpl
        def pxrd_classification_done(self, source, result):
            self.received.append((source, result))

    class Raiser:
        @hookimpl
        def pxrd_classification_done(self, source, result):
            raise RuntimeError("host bug on purpose")

    manager = plugins.get_plugin_manager()
    recorder, raiser = Recorder(), Raiser()
    manager.register(recorder, name="recorder")
    manager.register(raiser, name="raiser")
    with pytest.warns(PluginWarning, match="host bug on purpose"):
        plugins.notify_classification_done("scan.xy", {"answer": 42})
    assert recorder.received == [("scan.xy", {"answer": 42})]
    assert errors_by_plugin()["raiser"].stage == "pxrd_classification_done"


# ---------------------------------------------------------------------------------- conformance
def test_every_registered_classifier_conforms(throwaway, monkeypatch, csn_options):
    monkeypatch.setenv(plugins.ENV_VARIABLE, "throwaway_good")
    classifiers = plugins.get_classifiers()
    assert set(classifiers) == {"csn", *BUNDLED_BASELINES, "projection"}
    for name, factory in classifiers.items():
        passed = check_classifier(factory, **(csn_options if name == "csn" else {}))
        assert passed == [check.__name__ for check in CHECKS], name


def _broken_variants(base):
    class IgnoresTopK(base):
        def predict_many(self, objs, top_k=5, batch_size=256, wavelength=None):
            return super().predict_many(objs, top_k=5, wavelength=wavelength)

    class Unnormalised(base):
        def result(self, source, probabilities, top_k):
            return super().result(source, probabilities * 2, top_k)

    class SwallowsBadInput(base):
        def probabilities(self, obj, wavelength=None):
            try:
                return super().probabilities(obj, wavelength)
            except ValueError:
                return "bad", np.full(230, 1 / 230)

    class IgnoresInput(base):
        def probabilities(self, obj, wavelength=None):
            source, _ = super().probabilities(obj, wavelength)
            return source, np.linspace(1, 2, 230) / np.linspace(1, 2, 230).sum()

    return {
        "check_top_k": IgnoresTopK, "check_result_shape": Unnormalised,
        "check_bad_input_raises": SwallowsBadInput, "check_predict_many_matches_predict": IgnoresInput,
    }


def test_conformance_suite_rejects_broken_classifiers(throwaway, monkeypatch):
    monkeypatch.setenv(plugins.ENV_VARIABLE, "throwaway_good")
    base = plugins.get_classifiers()["projection"].factory  # the plugin's own class
    for check_name, broken in _broken_variants(base).items():
        with pytest.raises(AssertionError, match=check_name):
            check_classifier(broken)


# ----------------------------------------------------------------------------------- baselines
@pytest.mark.parametrize("name, architecture", [("baseline-mlp", "mlp"), ("baseline-cnn", "cnn"), ("baseline-nopoolcnn", "nopoolcnn")])
def test_bundled_baselines_are_registered_real_models(fresh_manager, monkeypatch, name, architecture):
    from csn_plugin.data import EXAMPLE_PATTERN

    monkeypatch.setenv(plugins.ENV_VARIABLE, "")
    classifier = plugins.get_classifiers()[name](device="cpu")
    assert classifier.name == name and classifier.info["architecture"] == architecture
    result = classifier.predict(str(EXAMPLE_PATTERN), top_k=3)
    assert result.model == name
    # a trained network, not a constant: two different patterns get different answers
    pattern = Pattern.from_file(EXAMPLE_PATTERN)
    shifted = Pattern(pattern.two_theta, np.roll(pattern.intensity, 400), pattern.wavelength)
    assert not np.allclose(result.probabilities, classifier.predict(shifted).probabilities, atol=1e-4)
