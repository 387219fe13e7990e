"""Every hook spec has a one-line docstring, a section in docs/host-developers.md and a test."""

import inspect
from pathlib import Path

import pytest

from csn_plugin.hooks import specs

REPO = Path(__file__).resolve().parents[1]
HOST_DOCS = REPO / "docs" / "host-developers.md"


def hook_specs():
    return [
        name for name, function in inspect.getmembers(specs, inspect.isfunction)
        if getattr(function, f"{specs.PROJECT_NAME}_spec", None) is not None
    ]


def test_specs_are_found():
    assert len(hook_specs()) >= 4
    assert all(name.startswith("pxrd_") for name in hook_specs())


@pytest.mark.parametrize("name", hook_specs())
def test_hook_has_a_one_line_docstring(name):
    doc = inspect.getdoc(getattr(specs, name))
    assert doc and doc.strip(), f"{name} has no docstring"
    assert "\n" not in doc.strip(), f"{name}'s docstring must be one line"


@pytest.mark.parametrize("name", hook_specs())
def test_hook_is_documented_for_hosts(name):
    text = HOST_DOCS.read_text()
    assert f"`{name}" in text, f"{name} is not documented in {HOST_DOCS.relative_to(REPO)}"


@pytest.mark.parametrize("name", hook_specs())
def test_hook_is_used_by_a_test(name):
    this = Path(__file__).resolve()
    users = [
        path.name for path in sorted((REPO / "tests").glob("test_*.py"))
        if path.resolve() != this and name in path.read_text()
    ]
    assert users, f"no test (other than {this.name}) exercises {name}"
