"""The pxrd contract at csn's boundary: plugins that exit, print or parse sys.argv at import;
classifiers that return NaN, short rankings, dicts or raise; readers that claim every file or
return None. Each is a real throwaway plugin, installed as a distribution with ``pxrd`` entry
points (as in simonw/llm's tests), and each is reported by name in one line."""

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from csn_plugin import plugins
from csn_plugin.data import EXAMPLE_PATTERN
from csn_plugin.errors import PatternError
from csn_plugin.hooks import specs
from csn_plugin.plugins import PluginContractError, PluginWarning, read_pattern  # read_pattern with every registered reader
from csn_plugin.readers import BUILTIN_READERS
from csn_plugin.testing import (
    CHECKS,
    READER_CHECKS,
    check_classifier,
    check_reader,
    parametrize_with_checks,
    parametrize_with_reader_checks,
)

REPO = Path(__file__).resolve().parents[1]
SHARED_FORMATS = REPO.parent / "shared" / "data" / "formats"
DISTRIBUTION = "csn-contract-throwaway"

from throwaway_sources import PROJECTION  # noqa: E402  (the throwaway classifier's source, registered by conftest.py)

MODULES = {
    "csn_contract_exits": """
        import sys
        sys.exit(3)
    """,
    "csn_contract_prints": """
        from csn_plugin.hooks.specs import hookimpl
        print("HELLO-FROM-PLUGIN-IMPORT")

        @hookimpl
        def pxrd_register_readers(register):
            print("HELLO-FROM-PLUGIN-HOOK")
    """,
    "csn_contract_argv": """
        import argparse
        import sys

        SEEN_ARGV = list(sys.argv)
        argparse.ArgumentParser(prog="plugin").parse_args()   # at import: what breaks a CLI
        sys.argv.append("--left-behind")                       # and it even edits sys.argv
    """,
    "csn_contract_argv_required": """
        import argparse
        parser = argparse.ArgumentParser(prog="needy-plugin")
        parser.add_argument("--needed", required=True)
        parser.parse_args()
    """,
    "csn_contract_wrapper": """
        from csn_plugin.hooks.specs import hookimpl

        @hookimpl(hookwrapper=True)
        def pxrd_menu_items(hook):
            yield
    """,
    "csn_contract_classifiers": PROJECTION + """
import sys

from csn_plugin.hooks.specs import hookimpl


class NanProbabilities(ProjectionClassifier):
    def result(self, source, probabilities, top_k):
        probabilities = probabilities.copy()
        probabilities[:] = np.nan
        return super().result(source, probabilities, top_k)


class ShortRanking(ProjectionClassifier):
    def result(self, source, probabilities, top_k):
        result = super().result(source, probabilities, top_k)
        result.predictions = result.predictions[:1]
        return result


class EmptyRanking(ProjectionClassifier):
    def result(self, source, probabilities, top_k):
        result = super().result(source, probabilities, top_k)
        result.predictions = []
        return result


class WrongShape(ProjectionClassifier):
    def result(self, source, probabilities, top_k):
        result = super().result(source, probabilities, top_k)
        result.probabilities = probabilities[:229]
        return result


class DictPredictions(ProjectionClassifier):
    def result(self, source, probabilities, top_k):
        result = super().result(source, probabilities, top_k)
        result.predictions = [p.to_dict() for p in result.predictions]
        return result


class ReturnsNone(ProjectionClassifier):
    def predict_many(self, objs, top_k=5, batch_size=256, wavelength=None):
        return [None for _ in objs]


class RaisesKeyError(ProjectionClassifier):
    def predict_many(self, objs, top_k=5, batch_size=256, wavelength=None):
        return {}["probabilities"]


class ExitsInPredict(ProjectionClassifier):
    def predict_many(self, objs, top_k=5, batch_size=256, wavelength=None):
        sys.exit(4)


def factory_without_prior(device="auto"):
    return ProjectionClassifier()


@hookimpl
def pxrd_register_classifiers(register):
    register("ok-projection", ProjectionClassifier)
    register("nan-probabilities", NanProbabilities)
    register("short-ranking", ShortRanking)
    register("empty-ranking", EmptyRanking)
    register("wrong-shape", WrongShape)
    register("dict-predictions", DictPredictions)
    register("returns-none", ReturnsNone)
    register("raises-keyerror", RaisesKeyError)
    register("exits-in-predict", ExitsInPredict)
    register("factory-typeerror", factory_without_prior)
    register("factory-returns-object", lambda **options: object())
    register("csn", ProjectionClassifier)  # csn's own name: refused
""",
    "csn_contract_readers": """
        import sys
        from pathlib import Path

        import numpy as np

        from csn_plugin.hooks.specs import hookimpl
        from csn_plugin.pattern import Pattern


        class BlindReader:
            name = "blind"
            extensions = (".blind",)
            description = "claims every file, answers one made-up peak"

            def guess_can_open(self, path):
                return True

            def read(self, path):
                two_theta = np.linspace(10, 80, 700)
                bump = 1 + np.exp(-((two_theta - 30) / 0.2) ** 2)  # whatever the file holds
                return Pattern(two_theta, bump, 1.5406, metadata={"wavelength_source": "file"})


        class NoneReader:
            name = "none-reader"
            extensions = (".none",)
            description = "returns None"

            def guess_can_open(self, path):
                return Path(path).suffix == ".none"

            def read(self, path):
                return None


        class ExitingReader(NoneReader):
            name = "exiting-reader"
            extensions = (".exits",)

            def guess_can_open(self, path):
                return Path(path).suffix == ".exits"

            def read(self, path):
                sys.exit(1)


        @hookimpl
        def pxrd_register_readers(register):
            register("blind", BlindReader())
            register("none-reader", NoneReader())
            register("exiting-reader", ExitingReader())
            register("not-a-reader", object())
    """,
}


def install(directory, modules):
    """Write ``modules`` and a dist-info declaring each as a ``pxrd`` entry point of the same name."""
    for module in modules:
        (directory / f"{module}.py").write_text(textwrap.dedent(MODULES[module]))
    info = directory / "csn_contract_throwaway-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DISTRIBUTION}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[pxrd]\n" + "".join(f"{m} = {m}\n" for m in modules))
    return directory


@pytest.fixture
def use_plugins(tmp_path, monkeypatch):
    """Install the named throwaway plugins (real entry points on sys.path) and rebuild csn's manager."""
    installed = []

    def activate(*modules):
        install(tmp_path, modules)
        installed.extend(modules)
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setenv(plugins.ENV_VARIABLE, ",".join(modules))
        importlib.invalidate_caches()
        plugins.reset_plugin_manager()
        return tmp_path

    yield activate
    plugins.reset_plugin_manager()
    for module in installed:
        sys.modules.pop(module, None)


def errors_of(plugin):
    return [error for error in plugins.get_plugin_errors() if error.plugin == plugin]


def cli(*arguments):
    from click.testing import CliRunner

    from csn_plugin.cli.main import cli as command

    return CliRunner().invoke(command, list(arguments))


# ------------------------------------------------------------------------ misbehaving at import
def test_plugin_calling_sys_exit_at_import_is_skipped(use_plugins):
    use_plugins("csn_contract_exits")
    with pytest.warns(PluginWarning, match="csn_contract_exits"):
        listed = plugins.list_plugins()
    assert [p["name"] for p in listed] == ["csn"]
    (error,) = errors_of("csn_contract_exits")
    assert error.stage == "load" and error.message == "called sys.exit(3)"


def test_plugin_printing_cannot_corrupt_stdout(use_plugins, capsys):
    use_plugins("csn_contract_prints")
    plugins.get_readers()
    captured = capsys.readouterr()
    assert "HELLO" not in captured.out
    assert "HELLO-FROM-PLUGIN-IMPORT" in captured.err and "HELLO-FROM-PLUGIN-HOOK" in captured.err
    assert errors_of("csn_contract_prints") == []


def test_plugin_sees_a_neutral_argv_and_cannot_change_the_hosts(use_plugins, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["csn", "classify", "--format", "json", "scan.xy"])
    use_plugins("csn_contract_argv", "csn_contract_argv_required")
    with pytest.warns(PluginWarning, match="csn_contract_argv_required"):
        names = {p["name"] for p in plugins.list_plugins()}
    assert "csn_contract_argv" in names and "csn_contract_argv_required" not in names
    assert sys.modules["csn_contract_argv"].SEEN_ARGV == ["csn"]
    assert sys.argv == ["csn", "classify", "--format", "json", "scan.xy"]
    assert errors_of("csn_contract_argv") == []
    assert errors_of("csn_contract_argv_required")[0].message == "called sys.exit(2)"


def test_hook_wrapper_is_reported_not_silently_dropped(use_plugins):
    use_plugins("csn_contract_wrapper")
    with pytest.warns(PluginWarning, match="hook wrapper"):
        items = plugins.get_menu_items()
    assert [item.label for item in items] == ["Identify space group (CSN)"]
    assert errors_of("csn_contract_wrapper")[0].stage == "register"


def test_cli_with_misbehaving_plugins_in_a_real_process(tmp_path):
    """The real `csn` in its own process: JSON on stdout stays JSON, exit 0, one line per bad plugin."""
    install(tmp_path, ["csn_contract_exits", "csn_contract_prints", "csn_contract_argv_required"])
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    environment.pop(plugins.ENV_VARIABLE, None)
    command = [sys.executable, "-c", "import sys; sys.argv[0] = 'csn'; from csn_plugin.cli.main import cli; cli()"]
    done = subprocess.run(command + ["plugins", "--json"], env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    listed = {p["name"] for p in json.loads(done.stdout)}
    assert "csn" in listed and "csn_contract_prints" in listed and "csn_contract_exits" not in listed
    assert "HELLO-FROM-PLUGIN-IMPORT" in done.stderr and "Traceback" not in done.stderr
    for bad in ("csn_contract_exits", "csn_contract_argv_required"):
        assert len([line for line in done.stderr.splitlines() if f"plugin '{bad}'" in line]) == 1, done.stderr

    done = subprocess.run(command + ["classify", "--device", "cpu", "--format", "json", str(EXAMPLE_PATTERN)],
                          env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (record,) = json.loads(done.stdout)
    assert record["predictions"] and "error" not in record


# -------------------------------------------------------------------------- classifier contract
BROKEN_CLASSIFIERS = {
    "nan-probabilities": "NaN or infinite",
    "short-ranking": "gave 1 predictions for top_k=5",
    "empty-ranking": "gave 0 predictions for top_k=5",
    "wrong-shape": "shape (229,)",
    "dict-predictions": "space_group None",
    "returns-none": "returned NoneType",
    "raises-keyerror": "raised KeyError",
    "exits-in-predict": "raised called sys.exit(4)",
    "factory-typeerror": "could not be built with (device='cpu', prior='icsd'): TypeError",
    "factory-returns-object": "its factory returned object, which lacks predict, predict_many, name",
}


@pytest.mark.parametrize("name", sorted(BROKEN_CLASSIFIERS))
def test_broken_classifier_is_named_in_one_line(use_plugins, name):
    use_plugins("csn_contract_classifiers")
    classifiers = plugins.get_classifiers()
    with pytest.raises(PluginContractError) as caught:
        classifiers[name](device="cpu", prior="icsd").predict(str(EXAMPLE_PATTERN), top_k=5)
    message = str(caught.value)
    assert message.startswith(f"plugin 'csn_contract_classifiers': classifier {name!r} "), message
    assert BROKEN_CLASSIFIERS[name] in message and "\n" not in message, message
    assert caught.value.plugin == "csn_contract_classifiers"


def test_broken_predict_many_is_caught_too(use_plugins):
    use_plugins("csn_contract_classifiers")
    classifier = plugins.get_classifiers()["short-ranking"](device="cpu", prior="icsd")
    with pytest.raises(PluginContractError, match="gave 1 predictions for top_k=3"):
        classifier.predict_many([str(EXAMPLE_PATTERN)] * 2, top_k=3)


def test_good_plugin_classifier_passes_and_keeps_its_attributes(use_plugins):
    use_plugins("csn_contract_classifiers")
    classifiers = plugins.get_classifiers()
    assert "csn" in classifiers and classifiers["csn"].plugin == "csn"  # the plugin cannot take csn's name
    assert any("'csn' is already registered" in e.message for e in errors_of("csn_contract_classifiers"))
    classifier = classifiers["ok-projection"](device="cpu", prior="icsd")
    assert isinstance(classifier, specs.Classifier) and classifier.grid.size == 1701  # attributes pass through
    assert check_classifier(classifiers["ok-projection"]) == [check.__name__ for check in CHECKS]
    bad_input = (np.linspace(10, 80, 500), np.zeros(500))
    with pytest.raises(PatternError):  # contract errors of the input pass through unchanged
        classifier.predict(bad_input)


@pytest.mark.parametrize("output_format", ["json", "table"])
def test_cli_reports_a_broken_classifier_by_name(use_plugins, output_format):
    use_plugins("csn_contract_classifiers")
    result = cli("classify", "--classifier", "nan-probabilities", "--format", output_format, str(EXAMPLE_PATTERN))
    assert result.exit_code == 1
    text = result.stdout + result.stderr
    assert "nan%" not in text.lower() and "Traceback" not in text
    lines = [line for line in text.splitlines() if "nan-probabilities" in line]
    assert len(lines) == 1 and "NaN or infinite" in lines[0], text
    if output_format == "json":
        (record,) = json.loads(result.stdout)
        assert set(record) == {"source", "error"} and "nan-probabilities" in record["error"]


def test_cli_reports_a_factory_that_raises_typeerror(use_plugins):
    use_plugins("csn_contract_classifiers")
    result = cli("classify", "--classifier", "factory-typeerror", str(EXAMPLE_PATTERN))
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = [line for line in result.stderr.splitlines() if "factory-typeerror" in line]
    assert "cannot load classifier 'factory-typeerror'" in line and "plugin 'csn_contract_classifiers'" in line


@pytest.mark.parametrize("bad, problem", [
    ({"probabilities": np.full(230, 1 / 230), "top": 3}, None),
    ({"probabilities": np.full(230, 1 / 229)}, "sum to"),
    ({"probabilities": np.r_[-0.1, np.full(229, 1.1 / 229)]}, "negative"),
    ({"probabilities": [{"p": 1}] * 230}, "not 230 numbers"),
    ({"probabilities": np.full(230, 1 / 230), "group": True}, "not an int"),
    ({"probabilities": np.full(230, 1 / 230), "group": 231}, "not an int in 1..230"),
    ({"probabilities": np.full(230, 1 / 230), "unsorted": True}, "not sorted"),
    ({"probabilities": np.full(230, 1 / 230), "system": ("cubic", float("nan"))}, "crystal_system probability"),
    ({"probabilities": np.full(230, 1 / 230), "rules": {"glide": float("nan")}}, "rules must map names to finite numbers"),
    ({"probabilities": np.full(230, 1 / 230), "rules": {"glide": "0.5"}}, "rules must map names to finite numbers"),
])
def test_validate_result_cases(bad, problem):
    from csn_plugin.inference.result import ClassificationResult, SpaceGroupPrediction

    probabilities = bad["probabilities"]
    top = bad.get("top", 3)
    first = bad.get("group", 1)
    listed = [0.3, 0.2, 0.1] if bad.get("unsorted") else [1 / 230] * 3
    if not bad.get("unsorted"):
        listed = [float(probabilities[0]) if isinstance(probabilities, np.ndarray) else 0.0] * 3
    result = ClassificationResult(
        source="x",
        predictions=[SpaceGroupPrediction(first, "P1", listed[0]), SpaceGroupPrediction(2, "P-1", listed[1]),
                     SpaceGroupPrediction(3, "P2", listed[2])],
        probabilities=probabilities, crystal_systems={"cubic": 1.0}, bravais_lattices={"cP": 1.0})
    if bad.get("unsorted"):
        result.probabilities = np.r_[0.2, 0.3, 0.1, np.full(227, 0.4 / 227)]
        result.predictions = [SpaceGroupPrediction(1, "P1", 0.2), SpaceGroupPrediction(2, "P-1", 0.3),
                              SpaceGroupPrediction(3, "P2", 0.1)]
    if "system" in bad:
        result.crystal_systems = {"cubic": bad["system"][1]}
    if "rules" in bad:
        result.rules = bad["rules"]
    if problem is None:
        assert plugins.validate_result(result, top) is result
    else:
        with pytest.raises(ValueError, match=problem):
            plugins.validate_result(result, top)


# ------------------------------------------------------------------------------------ readers
def number_columns(path):
    two_theta = np.linspace(10, 80, 701)
    intensity = 100 + 1000 * np.exp(-((two_theta - 25.3) / 0.1) ** 2)
    path.write_text("".join(f"{x:.3f} {y:.2f}\n" for x, y in zip(two_theta, intensity)))
    return path


def test_builtin_reader_wins_over_a_blind_claim(use_plugins):
    directory = use_plugins("csn_contract_readers")
    with pytest.warns(PluginWarning, match="not-a-reader"):
        readers = plugins.get_readers()
    assert "not-a-reader" not in readers and "blind" in readers
    assert isinstance(readers["blind"], specs.PatternReader)
    assert read_pattern(EXAMPLE_PATTERN).metadata["format"] == "text"          # .xy: csn's text reader
    unknown = number_columns(directory / "scan.scan")                            # no extension csn knows,
    assert read_pattern(unknown).metadata["format"] == "text"                    # but number columns: csn's
    own = number_columns(directory / "scan.blind")                               # the plugin's own extension
    assert read_pattern(own).metadata["format"] == "blind"


@pytest.mark.parametrize("suffix, problem", [
    (".none", "reader 'none-reader' of plugin 'csn_contract_readers' returned NoneType, not a Pattern"),
    (".exits", "reader 'exiting-reader' of plugin 'csn_contract_readers' called sys.exit(1)"),
])
def test_reader_breaking_the_contract_is_a_pattern_error(use_plugins, suffix, problem):
    directory = use_plugins("csn_contract_readers")
    path = directory / f"scan{suffix}"
    path.write_text("anything\n")
    with pytest.raises(PatternError) as caught:
        read_pattern(path)
    assert str(caught.value) == f"{path}: {problem}"


def test_cli_batch_survives_a_reader_returning_none(use_plugins):
    directory = use_plugins("csn_contract_readers")
    bad = directory / "scan.none"
    bad.write_text("anything\n")
    result = cli("classify", "--device", "cpu", "--format", "json", str(bad), str(EXAMPLE_PATTERN))
    assert result.exit_code == 1, result.output
    first, second = json.loads(result.stdout)
    assert "returned NoneType" in first["error"] and "none-reader" in first["error"]
    assert second["predictions"] and "error" not in second


def test_check_reader_rejects_the_broken_readers(use_plugins):
    directory = use_plugins("csn_contract_readers")
    readers = plugins.get_readers()
    sample = directory / "scan.none"
    sample.write_text("anything\n")
    with pytest.raises(AssertionError, match="check_reader_reads_samples failed for reader 'none-reader'"):
        check_reader(readers["none-reader"].reader, [sample])  # the plugin's own object
    with pytest.raises(AssertionError, match="read.*raised PatternError.*returned NoneType"):
        check_reader(readers["none-reader"], [sample])  # behind csn's boundary
    with pytest.raises(AssertionError, match="check_reader_rejects_garbage failed for reader 'blind'"):
        check_reader(readers["blind"].reader, [number_columns(directory / "x.blind")])


# ---------------------------------------------------------------------------- call order
def test_call_order_is_pluggys():
    """tryfirst, then last-registered-first, then trylast: the order pluggy itself calls."""
    import pluggy

    manager = pluggy.PluginManager(specs.PROJECT_NAME)
    manager.add_hookspecs(specs)

    def plugin(label, **marks):
        namespace = {}

        @specs.hookimpl(**marks)
        def pxrd_menu_items(hook):
            return [label]

        namespace["pxrd_menu_items"] = pxrd_menu_items
        return type(label, (), {"pxrd_menu_items": staticmethod(pxrd_menu_items)})

    for label, marks in [("a", {}), ("first", {"tryfirst": True}), ("last", {"trylast": True}), ("b", {}), ("c", {})]:
        manager.register(plugin(label, **marks), name=label)
    isolated = [answer for _, answer in plugins.call_hook_safely(manager.hook.pxrd_menu_items, hook=None)]
    assert isolated == manager.hook.pxrd_menu_items(hook=None) == [["first"], ["c"], ["b"], ["a"], ["last"]]


# ------------------------------------------------------------------ the helpers, à la scikit-learn
def _projection_factory():
    namespace = {}
    exec(PROJECTION, namespace)  # the same class the throwaway plugin ships
    return namespace["ProjectionClassifier"]


@parametrize_with_checks({"projection": _projection_factory()})
def test_parametrize_with_checks(classifier, check):
    check(classifier)


def _reader_samples():
    samples = {"text": (BUILTIN_READERS["text"], [EXAMPLE_PATTERN])}
    if SHARED_FORMATS.is_dir():  # measured files of ../shared, absent on users' machines
        for path in sorted(SHARED_FORMATS.iterdir()):
            reader = next((r for r in BUILTIN_READERS.values() if path.suffix.lower() in r.extensions), None)
            if reader is not None:
                samples.setdefault(reader.name, (reader, []))[1].append(path)
    return samples


@parametrize_with_reader_checks(_reader_samples())
def test_builtin_readers_conform(reader, check):
    check(reader)


def test_parametrize_helpers_cover_every_check():
    marks = test_parametrize_with_checks.pytestmark[0]
    assert [param[1].__name__ for param in marks.args[1]] == [check.__name__ for check in CHECKS]
    reader_marks = test_builtin_readers_conform.pytestmark[0]
    assert {param[1].__name__ for param in reader_marks.args[1]} == {check.__name__ for check in READER_CHECKS}


def test_validate_result_checks_to_dict_of_other_result_classes():
    """A plugin's own result class: its to_dict() must be a dict that JSON can write (no NaN)."""
    from csn_plugin.inference.result import SpaceGroupPrediction

    class OwnResult:
        source = "x"
        predictions = [SpaceGroupPrediction(1, "P1", 1.0)]
        probabilities = np.eye(230)[0]
        crystal_system = ("triclinic", 1.0)
        bravais_lattice = ("aP", 1.0)

        def __init__(self, record):
            self.record = record

        def to_dict(self):
            return self.record

    assert plugins.validate_result(OwnResult({"predictions": [], "score": 1.0}), 1)
    with pytest.raises(ValueError, match="to_dict\\(\\) is not JSON"):
        plugins.validate_result(OwnResult({"score": float("nan")}), 1)
    with pytest.raises(ValueError, match="to_dict\\(\\) is not JSON"):
        plugins.validate_result(OwnResult({"score": np.float32(0.5)}), 1)
    with pytest.raises(ValueError, match="returned list, not a dict"):
        plugins.validate_result(OwnResult([1]), 1)
