"""The csn command line: classify (formats, errors, plot, progress), info, plugins, lazy imports."""

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import time
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
    from csn_plugin.nets.store import bundled_model_path

    if bundled_model_path().is_file():
        return []
    import torch

    from csn_plugin.grid import ModelGrid
    from csn_plugin.nets.store import save_model
    from csn_plugin.nets.csn import CSN, CSNConfig

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
    from csn_plugin.nets.store import bundled_model_path, sidecar_path

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


# ------------------------------------------------------------- streamed batches and bad inputs
HUGE_CELL_CIF = """data_huge
_cell_length_a 3000
_cell_length_b 3000
_cell_length_c 3000
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Na1 Na 0 0 0
Cl1 Cl 0.5 0.5 0.5
"""


@pytest.mark.parametrize("output_format", ["json", "jsonl"])
def test_a_huge_cell_in_a_batch_costs_only_its_own_answer(tmp_path, model_args, second_pattern, output_format):
    huge = tmp_path / "huge.cif"
    huge.write_text(HUGE_CELL_CIF)
    sources = [str(EXAMPLE_PATTERN), str(huge), str(second_pattern)]
    result = run("classify", *sources, "--format", output_format, "-k", 2, *model_args)
    assert result.exit_code == 1
    if output_format == "json":
        records = json.loads(result.stdout)
    else:
        records = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [record["source"] for record in records] == sources
    assert "predictions" in records[0] and "predictions" in records[2]
    assert set(records[1]) == {"source", "error"}
    assert records[1]["error"].startswith(f"{huge}: the cell (a=3000 b=3000 c=3000 A")
    assert "Traceback" not in result.stderr


def test_json_array_is_written_record_by_record_with_the_same_text():
    from csn_plugin.cli.classify import _JsonArray

    for records in ([], [{"source": "a.xy", "error": "a.xy: bad"}],
                    [{"source": "a", "predictions": [{"space_group": 1, "probability": 0.5}]}, {"source": "b", "x": [1, {"y": None}]}]):
        stream = io.StringIO()
        writer = _JsonArray(stream)
        for record in records:
            writer.write(record)
        writer.close()
        assert stream.getvalue() == json.dumps(records, indent=2) + "\n"


def test_csv_with_a_file_name_that_is_not_utf8(tmp_path, model_args):
    folder = os.fsencode(tmp_path)
    good = os.fsdecode(os.path.join(folder, b"caf\xe9.xy"))
    bad = os.fsdecode(os.path.join(folder, b"bad\xff.xy"))
    shutil.copy(EXAMPLE_PATTERN, good)
    Path(bad).write_text("not a pattern\n")
    executable = shutil.which("csn")
    if executable is None:
        pytest.skip("the csn console script is not on PATH (package not installed)")
    done = subprocess.run([executable, "classify", good, bad, "--format", "csv", "-k", "1", *map(str, model_args)],
                          capture_output=True, timeout=300, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert done.returncode == 1, done.stderr.decode(errors="replace")
    assert b"Traceback" not in done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout.decode("utf-8"))))
    assert [row["source"] for row in rows] == [f"{tmp_path}/caf\\xe9.xy", f"{tmp_path}/bad\\xff.xy"]
    assert rows[0]["space_group"] and not rows[0]["error"]
    assert rows[1]["error"].startswith(f"{tmp_path}/bad\\xff.xy: ")


def test_odd_names_become_error_entries(tmp_path, model_args):
    newline = tmp_path / "two\nlines.xy"
    newline.write_text("")
    sources = ["", str(newline), "/dev/null", str(EXAMPLE_PATTERN)]
    result = run("classify", *sources, "--format", "jsonl", "-k", 1, *model_args)
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert len(records) == 4
    assert records[0]["error"] == "'' (empty file name): no file name given"
    assert records[1]["source"] == f"{tmp_path}/two\\nlines.xy" and records[1]["error"].endswith("the file is empty")
    assert records[2]["error"] == "/dev/null: is a device or socket, not a regular file: save the data to a file and give its name"
    assert "predictions" in records[3]


def test_reader_warnings_reach_stderr_and_the_record(tmp_path, model_args):
    data = np.loadtxt(EXAMPLE_PATTERN)
    cut = tmp_path / "cut.xy"
    cut.write_text("\n".join(f"{x:.2f} {y:.1f}" for x, y in data) + "\n89.99")
    result = run("classify", str(cut), "--format", "json", "-k", 1, *model_args)
    assert result.exit_code == 0
    record = json.loads(result.stdout)[0]
    assert "predictions" in record
    assert record["warnings"] == [f"line {len(data) + 1} is cut ('89.99'): read the data up to line {len(data)}, the file may be truncated"]
    assert f"warning: {cut}: line {len(data) + 1} is cut" in result.stderr


@pytest.mark.slow
def test_jsonl_lines_appear_as_the_batch_goes(tmp_path, model_args):
    """The first file's line arrives while a later, slow file (a 2-million-point scan) is still
    being read: output is written chunk by chunk, not at the end."""
    executable = shutil.which("csn")
    if executable is None:
        pytest.skip("the csn console script is not on PATH (package not installed)")
    slow = tmp_path / "slow.xy"
    angles = np.linspace(5, 90, 2_000_000)
    with open(slow, "w") as handle:
        for start in range(0, len(angles), 200_000):
            block = angles[start:start + 200_000]
            handle.write("\n".join(f"{x:.6f} {100 + 50 * np.sin(x) ** 2:.2f}" for x in block) + "\n")
    command = [executable, "classify", str(EXAMPLE_PATTERN), str(slow), "--format", "jsonl", "--batch-size", "1",
               "-k", "1", "--network-only", *map(str, model_args)]  # streaming, not the crystallography, is tested
    started = time.perf_counter()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as child:
        first = child.stdout.readline()
        first_at = time.perf_counter() - started
        rest = child.stdout.read()
        child.wait()
    total = time.perf_counter() - started
    assert json.loads(first)["source"] == str(EXAMPLE_PATTERN)
    assert json.loads(rest)["source"] == str(slow)
    assert total - first_at > 1.0, (first_at, total)  # the slow file was read after the first line was out


def test_batches_keep_memory_flat(tmp_path, model_args):
    """Patterns and records are not kept: RSS after 600 files is close to RSS after 60."""
    executable = shutil.which("csn")
    if executable is None:
        pytest.skip("the csn console script is not on PATH (package not installed)")
    data = np.loadtxt(EXAMPLE_PATTERN)[::4]
    text = "\n".join(f"{x:.2f} {y:.0f}" for x, y in data)
    paths = []
    for index in range(600):
        path = tmp_path / f"p{index:04d}.xy"
        path.write_text(text)
        paths.append(path.name)
    code = (
        "import resource, subprocess, sys\n"
        "count = int(sys.argv[1])\n"
        "subprocess.run(['csn', 'classify', *sys.argv[2:2 + count], '--format', 'jsonl', '--batch-size', '32',"
        " '--network-only', *sys.argv[2 + count:]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    peaks = {}
    for count in (60, 600):
        done = subprocess.run([sys.executable, "-c", code, str(count), *paths[:count], *map(str, model_args)],
                              cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        peaks[count] = int(done.stdout.strip()) / 1024
    assert peaks[600] - peaks[60] < 40, peaks  # MiB: ten times the files, (almost) no more memory
