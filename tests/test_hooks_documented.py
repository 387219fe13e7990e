"""Every hook spec has a one-line docstring, a section in docs/host-developers.md whose heading
shows its signature, and a test."""

import inspect
import re
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
def test_hook_signature_matches_the_docs(name):
    """The docs' heading for the hook (``### `name(arguments)` ``) shows the spec's signature."""
    text = HOST_DOCS.read_text()
    documented = re.findall(rf"^#+\s*`({re.escape(name)}\([^`]*\))`", text, re.MULTILINE)
    assert documented, f"{name} has no heading `{name}(...)` in {HOST_DOCS.relative_to(REPO)}"
    expected = f"{name}{inspect.signature(getattr(specs, name))}"
    assert documented[0].replace(" ", "") == expected.replace(" ", ""), (
        f"{HOST_DOCS.relative_to(REPO)} documents {documented[0]}, the spec is {expected}"
    )


@pytest.mark.parametrize("name", hook_specs())
def test_hook_is_used_by_a_test(name):
    this = Path(__file__).resolve()
    users = [
        path.name for path in sorted((REPO / "tests").glob("test_*.py"))
        if path.resolve() != this and name in path.read_text()
    ]
    assert users, f"no test (other than {this.name}) exercises {name}"


# ------------------------------------------------------------------------ the contract Protocols
def contract_protocols():
    return [name for name, cls in inspect.getmembers(specs, inspect.isclass) if getattr(cls, "_is_protocol", False)]


def test_contract_protocols_are_written_and_documented():
    names = contract_protocols()
    assert {"ClassifierFactory", "Classifier", "ClassificationResultLike", "PatternReader"} <= set(names)
    text = HOST_DOCS.read_text()
    for name in names:
        assert f"`{name}`" in text or name in text, f"{name} is not documented in {HOST_DOCS.relative_to(REPO)}"


def test_factory_keywords_are_those_of_csns_classifier():
    """The Protocol's keyword options and defaults are SpaceGroupClassifier's own (written once)."""
    from csn_plugin.inference.classifier import SpaceGroupClassifier

    protocol = inspect.signature(specs.ClassifierFactory.__call__).parameters
    keywords = {n: p.default for n, p in protocol.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert set(keywords) == {"model", "device", "prior"}
    actual = inspect.signature(SpaceGroupClassifier.__init__).parameters
    assert {n: actual[n].default for n in keywords} == keywords


def test_csns_own_objects_satisfy_the_protocols():
    import numpy as np

    from csn_plugin.hooks.builtin import csn_classifier
    from csn_plugin.readers import BUILTIN_READERS
    from csn_plugin.inference.result import ClassificationResult, SpaceGroupPrediction

    assert isinstance(csn_classifier, specs.ClassifierFactory)
    assert all(isinstance(reader, specs.PatternReader) for reader in BUILTIN_READERS.values())
    result = ClassificationResult("x", [SpaceGroupPrediction(1, "P1", 1.0)], np.eye(230)[0], {"triclinic": 1.0}, {"aP": 1.0})
    assert isinstance(result, specs.ClassificationResultLike)
    assert isinstance(result.predictions[0], specs.SpaceGroupPredictionLike)
    assert not isinstance(object(), specs.PatternReader) and not isinstance(object(), specs.Classifier)
