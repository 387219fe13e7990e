"""Conformance suite for classifier plugins, in the spirit of scikit-learn's ``check_estimator``.

>>> from csn_plugin.testing import check_classifier
>>> check_classifier(my_factory)            # raises AssertionError naming the failed check

Every classifier registered through ``pxrd_register_classifiers`` must pass it. ``CHECKS`` lists the
individual checks (``check(classifier, inputs)``) for use with ``pytest.mark.parametrize``.
"""

import json
import math

import numpy as np

from .errors import PatternError

TOLERANCE = 1e-4  # probabilities are float32 sums


def default_inputs() -> list:
    """Three different pattern-like inputs from csn's bundled example (no network, no pymatgen):
    a file path, a cropped ``Pattern`` and ``(two_theta, intensity)`` arrays with altered intensities."""
    from .data import EXAMPLE_PATTERN
    from .pattern import Pattern

    pattern = Pattern.from_file(EXAMPLE_PATTERN)
    middle = (pattern.two_theta >= 20) & (pattern.two_theta <= 70)
    cropped = Pattern(pattern.two_theta[middle], pattern.intensity[middle], pattern.wavelength, source="cropped")
    squared = (pattern.two_theta, (pattern.intensity - pattern.intensity.min()) ** 2)
    return [str(EXAMPLE_PATTERN), cropped, squared]


def _bad_inputs():
    two_theta = np.linspace(10, 80, 500)
    with_nan = np.sin(two_theta) ** 2
    with_nan[100] = np.nan
    return {
        "NaN intensities": (two_theta, with_nan),
        "one point": ([30.0], [1.0]),
        "lengths differ": (two_theta, np.ones(499)),
        "all zero": (two_theta, np.zeros(500)),
        "missing file": "no-such-directory/no-such-pattern.xy",
    }


def check_name(classifier, inputs):
    """``name`` is a non-empty string."""
    assert isinstance(getattr(classifier, "name", None), str) and classifier.name, "classifier.name must be a non-empty str"


def check_result_shape(classifier, inputs):
    """predictions, 230 probabilities summing to 1, sorted top-k, consistent system and lattice sums."""
    from .symmetry import BRAVAIS_LATTICES, CRYSTAL_SYSTEMS, group_to_bravais, group_to_crystal_system

    result = classifier.predict(inputs[0], top_k=5)
    probabilities = np.asarray(result.probabilities, dtype=float)
    assert probabilities.shape == (230,), f"probabilities must have shape (230,), not {probabilities.shape}"
    assert np.all(np.isfinite(probabilities)) and np.all(probabilities >= 0), "probabilities must be finite and >= 0"
    assert abs(probabilities.sum() - 1) < TOLERANCE, f"probabilities sum to {probabilities.sum():.6f}, not 1"
    assert len(result.predictions) == 5, f"top_k=5 gave {len(result.predictions)} predictions"
    listed = [p.probability for p in result.predictions]
    assert listed == sorted(listed, reverse=True), f"predictions are not sorted by probability: {listed}"
    for prediction in result.predictions:
        assert isinstance(prediction.space_group, int) and 1 <= prediction.space_group <= 230, prediction
        assert isinstance(prediction.symbol, str) and prediction.symbol, prediction
        assert abs(prediction.probability - probabilities[prediction.space_group - 1]) < TOLERANCE, (
            f"prediction {prediction} disagrees with probabilities[{prediction.space_group - 1}]"
        )
    assert listed[-1] >= np.sort(probabilities)[-6] - TOLERANCE, "the top-k are not the k most probable groups"
    for name, names, group_to, pair, table in (
        ("crystal system", CRYSTAL_SYSTEMS, group_to_crystal_system(), result.crystal_system, result.crystal_systems),
        ("Bravais lattice", BRAVAIS_LATTICES, group_to_bravais(), result.bravais_lattice, result.bravais_lattices),
    ):
        assert set(table) == set(names), f"{name} keys {sorted(table)} are not {names}"
        sums = np.bincount(group_to, weights=probabilities, minlength=len(names))
        for index, key in enumerate(names):
            assert abs(table[key] - sums[index]) < TOLERANCE, f"{name} {key}: {table[key]} != sum over its groups {sums[index]}"
        best, best_p = pair
        assert best in names and abs(best_p - max(table.values())) < TOLERANCE, f"most probable {name} is not {pair}"


def check_top_k(classifier, inputs):
    """``top_k`` gives exactly k predictions for 1..230; outside that range ValueError."""
    for k in (1, 3, 17, 230):
        count = len(classifier.predict(inputs[0], top_k=k).predictions)
        assert count == k, f"top_k={k} gave {count} predictions"
    for k in (0, 231):
        try:
            classifier.predict(inputs[0], top_k=k)
        except ValueError:
            continue
        raise AssertionError(f"top_k={k} should raise ValueError")


def check_deterministic(classifier, inputs):
    """The same input twice gives the same probabilities."""
    first = np.asarray(classifier.predict(inputs[0]).probabilities)
    second = np.asarray(classifier.predict(inputs[0]).probabilities)
    assert np.allclose(first, second, atol=1e-6, rtol=0), f"not deterministic: max diff {np.abs(first - second).max():.3g}"


def check_predict_many_matches_predict(classifier, inputs):
    """``predict_many`` (in batches) equals ``predict`` one by one, in order, with the same sources."""
    one_by_one = [classifier.predict(obj, top_k=3) for obj in inputs]
    batched = classifier.predict_many(inputs, top_k=3, batch_size=2)
    assert len(batched) == len(inputs), f"predict_many returned {len(batched)} results for {len(inputs)} inputs"
    for index, (single, many) in enumerate(zip(one_by_one, batched)):
        difference = np.abs(np.asarray(single.probabilities) - np.asarray(many.probabilities)).max()
        assert difference < 1e-5, f"input {index}: predict_many differs from predict by {difference:.3g}"
        assert single.source == many.source, f"input {index}: source {many.source!r} != {single.source!r}"
    distinct = {tuple(np.round(np.asarray(r.probabilities), 6)) for r in batched}
    assert len(distinct) > 1, "different inputs gave identical probabilities: is the input ignored?"


def check_bad_input_raises(classifier, inputs):
    """Unusable patterns raise PatternError (one line, naming the problem); unknown objects TypeError."""
    for what, bad in _bad_inputs().items():
        try:
            classifier.predict(bad)
        except PatternError as error:
            assert "\n" not in str(error), f"{what}: the PatternError message is not one line: {error!r}"
            continue
        except Exception as error:  # noqa: BLE001 - the check reports what was raised instead
            raise AssertionError(f"{what}: raised {type(error).__name__} ({error}), expected PatternError") from None
        raise AssertionError(f"{what}: no error raised, expected PatternError")
    try:
        classifier.predict(object())
    except TypeError:
        pass
    else:
        raise AssertionError("an object() should raise TypeError")


def check_to_dict_json(classifier, inputs):
    """``to_dict()`` is JSON-serialisable and keeps the contract keys of ``csn classify --format json``."""
    result = classifier.predict(inputs[0], top_k=4)
    record = json.loads(json.dumps(result.to_dict()))
    for key in ("source", "predictions", "crystal_system", "bravais_lattice"):
        assert key in record, f"to_dict() lacks {key!r}"
    assert record["source"] == result.source, "to_dict()['source'] differs from result.source"
    assert len(record["predictions"]) == 4, "to_dict() does not hold top_k predictions"
    for item, prediction in zip(record["predictions"], result.predictions):
        assert set(item) >= {"space_group", "symbol", "probability"}, f"prediction keys {sorted(item)}"
        assert item["space_group"] == prediction.space_group and item["symbol"] == prediction.symbol
        assert math.isclose(item["probability"], prediction.probability, abs_tol=1e-5)
    for key in ("crystal_system", "bravais_lattice"):
        assert set(record[key]) >= {"name", "probability"}, f"{key} must hold name and probability"


CHECKS = (
    check_name,
    check_result_shape,
    check_top_k,
    check_deterministic,
    check_predict_many_matches_predict,
    check_bad_input_raises,
    check_to_dict_json,
)


def check_classifier(factory, inputs=None, **options) -> list:
    """Build ``factory(**options)`` and run every check in ``CHECKS`` on it.

    ``inputs``: at least two different pattern-like objects (default: ``default_inputs()``).
    Returns the names of the checks passed; the first failure raises AssertionError naming its check.
    """
    classifier = factory(**options)
    inputs = default_inputs() if inputs is None else list(inputs)
    passed = []
    for check in CHECKS:
        try:
            check(classifier, inputs)
        except AssertionError as error:
            raise AssertionError(f"{check.__name__} failed for {getattr(classifier, 'name', classifier)!r}: {error}") from None
        passed.append(check.__name__)
    return passed
