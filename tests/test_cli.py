"""The csn command line: classify (formats, errors, plot, progress), info, plugins, lazy imports."""

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from csn_plugin.cli.main import cli
from csn_plugin.data import EXAMPLE_PATTERN
from csn_plugin.symmetry import CRYSTAL_SYSTEMS

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
HEAVY = ("torch", "pymatgen", "xrayutilities")


def runner():
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        return CliRunner()


def run(*args):
    return runner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def model_args(tmp_path_factory):
    """No extra option with the bundled model; ``--model`` an untrained CSN when it is missing."""
    from csn_plugin.model_io import bundled_model_path

    if bundled_model_path().is_file():
        return []
    import torch

    from csn_plugin.grid import ModelGrid
    from csn_plugin.model_io import save_model
    from csn_plugin.network import CSN, CSNConfig

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "random-csn.safetensors"
    save_model(CSN(CSNConfig(grid_size=ModelGrid().size)).eval(), path, ModelGrid(), {"note": "untrained"})
    return ["--model", path]


@pytest.fixture(scope="module")
def second_pattern(tmp_path_factory):
    """Another measured pattern: shared examples/MnO.xy, else the example cropped."""
    shared = SHARED / "examples" / "MnO.xy"
    if shared.is_file():
        return shared
    data = np.loadtxt(EXAMPLE_PATTERN)
    path = tmp_path_factory.mktemp("patterns") / "cropped.xy"
    np.savetxt(path, data[(data[:, 0] > 20) & (data[:, 0] < 70)])
    return path


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    two_theta = np.linspace(10, 80, 300)
    intensity = np.sin(two_theta) ** 2
    files = {"empty": folder / "empty.xy", "binary": folder / "binary.xy", "nan": folder / "nan.xy",
             "one-column": folder / "one.xy", "missing": folder / "missing.xy"}
    files["empty"].write_text("")
    files["binary"].write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)))
    with_nan = intensity.copy()
    with_nan[7] = np.nan
    np.savetxt(files["nan"], np.c_[two_theta, with_nan])
    np.savetxt(files["one-column"], intensity)
    return files


# ------------------------------------------------------------------------------ lazy start-up
def test_help_imports_no_heavy_module():
    code = (
        "import sys\n"
        "from csn_plugin.cli.main import cli\n"
        "for args in (['--help'], ['classify', '--help'], ['info', '--help'], ['plugins', '--help']):\n"
        "    try:\n"
        "        cli(args)\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, args\n"
        f"print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout
    assert "classify" in done.stdout and "--top-k" in done.stdout


def test_console_script_reports_a_bad_file_in_one_line(bad_files):
    executable = shutil.which("csn")
    if executable is None:
        pytest.skip("the csn console script is not on PATH (package not installed)")
    done = subprocess.run([executable, "classify", str(bad_files["empty"])], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad_files["empty"]) in lines[0]


# ----------------------------------------------------------------------------------- classify
def test_json_contract(model_args, second_pattern, bad_files):
    sources = [str(EXAMPLE_PATTERN), str(second_pattern), str(bad_files["nan"])]
    result = run("classify", *sources, "--format", "json", "--top-k", 3, *model_args)
    assert result.exit_code == 1  # one file could not be read
    records = json.loads(result.stdout)
    assert [record["source"] for record in records] == sources
    for record in records[:2]:
        assert len(record["predictions"]) == 3
        probabilities = [p["probability"] for p in record["predictions"]]
        assert probabilities == sorted(probabilities, reverse=True)
        assert all(isinstance(p["space_group"], int) and 1 <= p["space_group"] <= 230 for p in record["predictions"])
        assert all(isinstance(p["symbol"], str) and p["symbol"] for p in record["predictions"])
        assert record["crystal_system"]["name"] in CRYSTAL_SYSTEMS
        assert 0 < record["crystal_system"]["probability"] <= 1
        assert set(record["bravais_lattice"]) >= {"name", "probability"}
        assert "error" not in record
    assert set(records[2]) == {"source", "error"}
    assert str(bad_files["nan"]) in records[2]["error"] and "NaN" in records[2]["error"]


def test_jsonl_csv_and_table_agree_with_json(model_args, second_pattern):
    sources = [str(EXAMPLE_PATTERN), str(second_pattern)]
    as_json = json.loads(run("classify", *sources, "--format", "json", "-k", 2, *model_args).stdout)
    lines = run("classify", *sources, "--format", "jsonl", "-k", 2, *model_args).stdout.strip().splitlines()
    assert [json.loads(line) for line in lines] == as_json
    rows = list(csv.DictReader(io.StringIO(run("classify", *sources, "--format", "csv", "-k", 2, *model_args).stdout)))
    assert len(rows) == 4
    for row, (record, rank) in zip(rows, [(r, k) for r in as_json for k in (0, 1)]):
        assert row["source"] == record["source"] and int(row["rank"]) == rank + 1
        assert int(row["space_group"]) == record["predictions"][rank]["space_group"]
        assert row["crystal_system"] == record["crystal_system"]["name"] and row["error"] == ""
    table = run("classify", *sources, "-k", 2, *model_args)
    assert table.exit_code == 0 and table.stderr == ""
    for record in as_json:
        assert record["source"] in table.stdout
        assert record["predictions"][0]["symbol"] in table.stdout


def test_plot_writes_one_png_per_file(tmp_path, model_args, second_pattern):
    one = tmp_path / "one.png"
    assert run("classify", EXAMPLE_PATTERN, "--plot", one, *model_args).exit_code == 0
    assert one.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and one.stat().st_size > 10_000
    many = tmp_path / "many.png"
    assert run("classify", EXAMPLE_PATTERN, second_pattern, "--plot", many, *model_args).exit_code == 0
    written = sorted(p.name for p in tmp_path.glob("many-*.png"))
    assert written == sorted([f"many-{Path(EXAMPLE_PATTERN).stem}.png", f"many-{Path(second_pattern).stem}.png"])


@pytest.mark.parametrize("kind", ["empty", "binary", "nan", "one-column", "missing"])
def test_bad_input_is_one_line(bad_files, kind):
    path = bad_files[kind]
    result = run("classify", path)
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0]
    assert "Traceback" not in result.output


def test_progress_bar_only_for_many_files(bad_files):
    few = run("classify", bad_files["empty"], bad_files["nan"])
    assert "classifying" not in few.stderr
    many = run("classify", *([bad_files["empty"]] * 25))
    assert "classifying" in many.stderr
    assert many.stderr.count(str(bad_files["empty"])) == 25


@pytest.mark.parametrize("args, code, message", [
    (["--top-k", "0"], 2, "top-k"),
    (["--wavelength", "bananas"], 2, "wavelength"),
    (["--format", "xml"], 2, "format"),
    (["--classifier", "no-such-classifier"], 1, "unknown classifier"),
])
def test_bad_options(args, code, message):
    result = run("classify", EXAMPLE_PATTERN, *args)
    assert result.exit_code == code
    assert message in result.output.lower()
    assert "Traceback" not in result.output


def test_cuda_request_without_cuda_is_one_line():
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    result = run("classify", EXAMPLE_PATTERN, "--device", "cuda")
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "cuda" in result.stderr.lower()


# ------------------------------------------------------------------------------- info, plugins
def test_plugins_command():
    listed = json.loads(run("plugins", "--json").stdout)
    assert listed[0]["name"] == "csn"
    assert "pxrd_menu_items" in listed[0]["hooks"]
    text = run("plugins").stdout
    assert text.splitlines()[0].startswith("csn ")


def test_info_command():
    result = run("info", "--json")
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert "csn" in summary["classifiers"]
    assert summary["plugins"][0]["name"] == "csn"
    assert summary["device"]["default"] in ("cpu", "cuda")
    assert summary["model"]["weights"].endswith(".safetensors")
    text = run("info").stdout
    assert "device:" in text and "classifiers: csn, baseline-mlp, baseline-cnn, baseline-nopoolcnn" in text


def test_classify_with_a_bundled_baseline():
    result = run("classify", EXAMPLE_PATTERN, "--classifier", "baseline-cnn", "--format", "json", "--top-k", "3")
    assert result.exit_code == 0, result.stderr
    [entry] = json.loads(result.stdout)
    assert entry["model"] == "baseline-cnn"
    assert len(entry["predictions"]) == 3
    assert entry["predictions"][0]["probability"] >= entry["predictions"][2]["probability"]


@pytest.fixture()
def model_with_prior_caveat(tmp_path):
    """A copy of the bundled model whose sidecar marks the uniform prior as unreliable."""
    from csn_plugin.model_io import bundled_model_path, sidecar_path

    weights = tmp_path / "caveat.safetensors"
    shutil.copyfile(bundled_model_path(), weights)
    info = json.loads(sidecar_path(bundled_model_path()).read_text())
    info["prior_warnings"] = {"uniform": "rare groups are over-scored"}
    sidecar_path(weights).write_text(json.dumps(info))
    return weights


def test_prior_caveat_is_one_warning_line_and_the_answer_still_comes(model_with_prior_caveat):
    result = run("classify", EXAMPLE_PATTERN, "--model", model_with_prior_caveat, "--prior", "uniform", "--format", "json")
    assert result.exit_code == 0
    warnings_shown = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings_shown == ["warning: csn with prior 'uniform': rare groups are over-scored"]
    assert json.loads(result.stdout)[0]["predictions"]
    quiet = run("classify", EXAMPLE_PATTERN, "--model", model_with_prior_caveat, "--prior", "icsd", "--format", "json")
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr


def test_prior_caveat_is_a_python_warning(model_with_prior_caveat):
    from csn_plugin import SpaceGroupClassifier
    from csn_plugin.errors import PriorWarning

    with pytest.warns(PriorWarning, match="rare groups are over-scored"):
        SpaceGroupClassifier(model=model_with_prior_caveat, device="cpu", prior="uniform")
