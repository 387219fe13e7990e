"""README.md's set-up commands are what `.ci/run` runs, in a brand-new virtual environment, and every
import of the package and its tests comes from a declared dependency."""

import ast
import functools
import os
import re
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
CI_RUN = REPO / ".ci" / "run"


def readme_setup_commands():
    """The bash code blocks of README.md's "Set up" section, in order."""
    text = README.read_text()
    section = re.search(r"^## Set up\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert section, "README.md has no '## Set up' section"
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section.group(1), re.S)]


def ci_assignments():
    """NAME='value' assignments at the top level of .ci/run, as bash would read them."""
    values = {}
    for line in CI_RUN.read_text().splitlines():
        match = re.match(r"^([A-Z_]+)=('.*')$", line)
        if match:
            values[match.group(1)] = shlex.split(match.group(2))[0]
    return values


def test_readme_has_the_two_setup_commands():
    classify, test = readme_setup_commands()
    assert classify.startswith("pip install torch==2.13.0 && ") and "csn classify" in classify
    assert test.startswith("pip install torch==2.13.0 && ") and test.endswith("pytest")
    assert '".[test]"' in test


def test_ci_runs_exactly_the_readme_commands():
    classify, test = readme_setup_commands()
    values = ci_assignments()
    assert values.get("CLASSIFY_COMMAND") == classify, "the install-and-classify command of .ci/run drifted from README.md"
    assert values.get("TEST_COMMAND") == test, "the test command of .ci/run drifted from README.md"
    script = CI_RUN.read_text()
    body = [line.strip() for line in script.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    # each command is run as written, inside the venv (after activation), classify first
    activate = body.index('source "$ROOM/venv/bin/activate"')
    assert body.index('eval "$CLASSIFY_COMMAND"') > activate
    assert body.index('eval "$TEST_COMMAND"') > body.index('eval "$CLASSIFY_COMMAND"')
    assert '"$PYTHON" -m venv "$ROOM/venv"' in body and "trap cleanup EXIT" in body
    assert 'if [ "$status" -eq 5 ]; then' in body  # "no tests collected" is a failure, said so
    assert os.access(CI_RUN, os.X_OK), ".ci/run is not executable"


def test_ci_parses_and_cleans_up_its_temporary_folder(tmp_path):
    """A real run of .ci/run whose interpreter fails at once: it exits non-zero and leaves no folder."""
    if subprocess.run(["bash", "-n", str(CI_RUN)]).returncode != 0:
        pytest.fail(".ci/run is not valid bash")
    environment = {**os.environ, "TMPDIR": str(tmp_path), "PYTHON": "false"}
    environment.pop("KEEP_VENV", None)
    finished = subprocess.run(["bash", str(CI_RUN)], env=environment, capture_output=True, text=True, timeout=60)
    assert finished.returncode != 0
    assert list(tmp_path.iterdir()) == [], "the temporary venv folder was not removed"


# --------------------------------------------------------------------------- declared dependencies
def _normalise(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement):
    return _normalise(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1))


def declared():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = {_requirement_name(r) for r in project["dependencies"]}
    extras = {extra: {_requirement_name(r) for r in requirements} for extra, requirements in project["optional-dependencies"].items()}
    return runtime, extras


def top_level_imports(paths, skip=()):
    """{top-level module: first file importing it} over the .py files under ``paths`` (absolute imports)."""
    found = {}
    for root in paths:
        files = [REPO / root] if root.endswith(".py") else sorted((REPO / root).rglob("*.py"))
        for path in files:
            if str(path.relative_to(REPO)) in skip:
                continue
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(REPO)))
    return found


def third_party(imports, first_party):
    stdlib = set(sys.stdlib_module_names)
    return {module: where for module, where in imports.items() if module not in stdlib and module not in first_party}


@functools.lru_cache(maxsize=1)
def _packages_distributions():
    return metadata.packages_distributions()


def distributions_of(module):
    return {_normalise(name) for name in _packages_distributions().get(module, [module])}


# csn_plugin.testing is the conformance suite for plugins' own tests: it may use the test extra (pytest).
FOR_TESTS = ("csn_plugin/testing.py",)


@pytest.mark.parametrize("roots, allowed_extras", [
    (("csn_plugin", "hooks", "cli"), ()),      # run time: `dependencies` only
    (("tests", *FOR_TESTS), ("test",)),       # tests: plus the test extra
])
def test_every_import_comes_from_a_declared_dependency(roots, allowed_extras):
    runtime, extras = declared()
    allowed = runtime.union(*(extras[name] for name in allowed_extras))
    local_tests = {path.stem for path in (REPO / "tests").glob("*.py")}
    imports = third_party(top_level_imports(roots, skip=() if allowed_extras else FOR_TESTS), {"csn_plugin", *local_tests})
    undeclared = {module: where for module, where in imports.items() if not distributions_of(module) & allowed}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_optional_extras_are_never_imported_unguarded():
    """robocrys (extra "minerals") is found with importlib.util.find_spec, never imported."""
    _, extras = declared()
    optional = set().union(*(names for extra, names in extras.items() if extra != "test"))
    imports = top_level_imports(("csn_plugin", "hooks", "cli", "tests"))
    assert not {module for module in imports if distributions_of(module) & optional}
    from csn_plugin.synth import structures

    assert "minerals" in extras and "robocrys" in extras["minerals"]
    assert "csn-plugin[minerals]" in structures.MINERALS_MISSING
