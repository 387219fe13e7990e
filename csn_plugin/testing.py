"""Conformance suite for classifier and reader plugins, in the spirit of scikit-learn's
``check_estimator`` and ``parametrize_with_checks``.

>>> from csn_plugin.testing import check_classifier, check_reader
>>> check_classifier(my_factory)            # raises AssertionError naming the failed check
>>> check_reader(MyReader(), ["sample.myfmt"])

Every classifier registered through ``pxrd_register_classifiers`` and every reader registered
through ``pxrd_register_readers`` must pass them (the contract: ``csn_plugin.hooks.specs``).
``CHECKS`` and ``READER_CHECKS`` list the individual checks; in a plugin's own tests, one test per
check::

    from csn_plugin.testing import parametrize_with_checks, parametrize_with_reader_checks

    @parametrize_with_checks({"mine": my_factory})
    def test_classifier_conforms(classifier, check):
        check(classifier)

    @parametrize_with_reader_checks({"myfmt": (MyReader(), ["tests/data/sample.myfmt"])})
    def test_reader_conforms(reader, check):
        check(reader)
"""

import functools
import json
import math
import os
import tempfile

import numpy as np

from .errors import PatternError

TOLERANCE = 1e-4  # probabilities are float32 sums


def _expect_pattern_error(what, call, argument, otherwise):
    """``call(argument)`` must raise a one-line PatternError; ``otherwise`` (may name ``{answer}``,
    the returned value's type) says what happened instead."""
    try:
        answer = call(argument)
    except PatternError as error:
        assert "\n" not in str(error), f"{what}: the PatternError message is not one line: {error!r}"
        return
    except Exception as error:  # noqa: BLE001 - the check reports what was raised instead
        raise AssertionError(f"{what}: raised {type(error).__name__} ({error}), expected PatternError") from None
    raise AssertionError(f"{what}: {otherwise.format(answer=type(answer).__name__)}, expected PatternError")


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
        _expect_pattern_error(what, classifier.predict, bad, "no error raised")
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


def check_result_contract(classifier, inputs):
    """Every answer passes the boundary validation csn applies to plugins (types, finite, JSON)."""
    from .plugins import validate_result

    for k in (1, 5):
        for result in classifier.predict_many(inputs, top_k=k):
            try:
                validate_result(result, k)
            except ValueError as error:
                raise AssertionError(f"top_k={k}: {error}") from None


CHECKS = (
    check_name,
    check_result_shape,
    check_top_k,
    check_deterministic,
    check_predict_many_matches_predict,
    check_bad_input_raises,
    check_to_dict_json,
    check_result_contract,
)


def check_classifier(factory, inputs=None, **options) -> list:
    """Build ``factory(**options)`` and run every check in ``CHECKS`` on it.

    ``inputs``: at least two different pattern-like objects (default: ``default_inputs()``).
    Returns the names of the checks passed; the first failure raises AssertionError naming its check.
    """
    classifier = factory(**options)
    inputs = default_inputs() if inputs is None else list(inputs)
    return _run_checks(CHECKS, classifier, inputs, "")


def _run_checks(checks, subject, data, kind):
    """Run ``check(subject, data)`` for each check; the names passed, or AssertionError naming
    the first failing check and the subject (``kind``: "reader " or "")."""
    passed = []
    for check in checks:
        try:
            check(subject, data)
        except AssertionError as error:
            raise AssertionError(f"{check.__name__} failed for {kind}{getattr(subject, 'name', subject)!r}: {error}") from None
        passed.append(check.__name__)
    return passed


# ------------------------------------------------------------------------------------ readers
def _scratch_files(reader):
    """A temporary folder with files no reader should accept, named with the reader's extension."""
    folder = tempfile.mkdtemp(prefix="csn-reader-check-")
    extension = (tuple(reader.extensions) or (".dat",))[0]
    contents = {
        "random-bytes": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "prose": b"This is a letter, not a diffraction pattern.\nKind regards.\n" * 20,
        "one-number": b"42\n",
    }
    paths = {}
    for what, data in contents.items():
        path = os.path.join(folder, f"{what}{extension}")
        with open(path, "wb") as handle:
            handle.write(data)
        paths[what] = path
    return folder, paths


def check_reader_attributes(reader, samples):
    """``name`` and ``description`` are str; ``extensions`` a tuple of lower-case ".ext" strings."""
    assert isinstance(getattr(reader, "name", None), str) and reader.name, "reader.name must be a non-empty str"
    assert isinstance(getattr(reader, "description", None), str), "reader.description must be a str"
    extensions = getattr(reader, "extensions", None)
    assert isinstance(extensions, tuple), f"reader.extensions must be a tuple, not {type(extensions).__name__}"
    for extension in extensions:
        assert isinstance(extension, str) and extension.startswith(".") and extension == extension.lower(), (
            f"extension {extension!r} must be lower case and start with a dot"
        )


def check_reader_guess(reader, samples):
    """``guess_can_open`` accepts each sample, returns a bool, and never raises (missing file, folder)."""
    for sample in samples:
        answer = reader.guess_can_open(sample)
        assert isinstance(answer, bool), f"guess_can_open returned {type(answer).__name__}, not bool"
        assert answer, f"guess_can_open({sample!r}) is False for a sample of the format"
    with tempfile.TemporaryDirectory(prefix="csn-reader-check-") as folder:
        for odd in (os.path.join(folder, "no-such-file" + ((reader.extensions or (".x",))[0])), folder):
            try:
                answer = reader.guess_can_open(odd)
            except Exception as error:  # noqa: BLE001 - the check reports it
                raise AssertionError(f"guess_can_open({odd!r}) raised {type(error).__name__}: {error}") from None
            assert isinstance(answer, bool), f"guess_can_open returned {type(answer).__name__}, not bool"


def check_reader_reads_samples(reader, samples):
    """``read`` returns a ``Pattern`` (never None), the same one twice, with a wavelength source."""
    from .pattern import Pattern

    for sample in samples:
        try:
            first, second = reader.read(sample), reader.read(sample)
        except Exception as error:  # noqa: BLE001 - the check reports it
            raise AssertionError(f"read({sample!r}) raised {type(error).__name__}: {error}") from None
        assert isinstance(first, Pattern), f"read({sample!r}) returned {type(first).__name__}, not a Pattern"
        assert np.array_equal(first.two_theta, second.two_theta) and np.array_equal(first.intensity, second.intensity), (
            f"read({sample!r}) is not deterministic"
        )
        assert first.metadata.get("wavelength_source") in ("file", "unknown", "default", "user"), (
            f"read({sample!r}): metadata['wavelength_source'] is {first.metadata.get('wavelength_source')!r}"
        )


def check_reader_rejects_garbage(reader, samples):
    """Random bytes, prose and a lone number raise PatternError with a one-line message."""
    from .errors import PatternError

    import shutil

    folder, paths = _scratch_files(reader)
    try:
        for what, path in paths.items():
            _expect_pattern_error(what, reader.read, path, "read returned {answer}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


READER_CHECKS = (
    check_reader_attributes,
    check_reader_guess,
    check_reader_reads_samples,
    check_reader_rejects_garbage,
)


def check_reader(reader, samples) -> list:
    """Run every check in ``READER_CHECKS`` on ``reader`` with ``samples`` (paths of files in its
    format). Returns the names of the checks passed; the first failure raises AssertionError
    naming its check and the reader."""
    samples = [str(sample) for sample in samples]
    assert samples, "check_reader needs at least one sample file"
    return _run_checks(READER_CHECKS, reader, samples, "reader ")


# ------------------------------------------------------------------------------ pytest helpers
class _Built:
    """A classifier built on first use and shared by the checks of one parametrization."""

    def __init__(self, name, factory, options):
        self.name, self._factory, self._options, self._classifier = name, factory, options, None

    def get(self):
        if self._classifier is None:
            self._classifier = self._factory(**self._options)
        return self._classifier

    def __repr__(self):
        return self.name


class _BoundCheck:
    """``check(classifier)``: one check of the suite with its inputs, failing with its name."""

    def __init__(self, check, inputs):
        self.check, self._inputs = check, inputs
        self.__name__ = check.__name__

    def __call__(self, subject):
        target = subject.get() if isinstance(subject, _Built) else subject
        inputs = self._inputs() if callable(self._inputs) else self._inputs
        try:
            self.check(target, inputs)
        except AssertionError as error:
            raise AssertionError(f"{self.check.__name__} failed for {getattr(target, 'name', target)!r}: {error}") from None

    def __repr__(self):
        return self.__name__


def _named(things):
    if isinstance(things, dict):
        return list(things.items())
    return [(getattr(thing, "name", None) or getattr(thing, "__name__", None) or repr(thing), thing) for thing in things]


def parametrize_with_checks(classifiers, inputs=None, **options):
    """``pytest.mark.parametrize("classifier, check", ...)``: one test per (classifier, check) of
    ``CHECKS``, ids ``"<name>-<check>"``. ``classifiers``: ``{name: factory}`` or a list of
    factories; each is built once, with ``options``, when its first check runs. Call
    ``check(classifier)`` in the test."""
    import pytest

    shared_inputs = list(inputs) if inputs is not None else functools.lru_cache(maxsize=1)(default_inputs)
    params, ids = [], []
    for name, factory in _named(classifiers):
        built = _Built(str(name), factory, options)
        for check in CHECKS:
            params.append((built, _BoundCheck(check, shared_inputs)))
            ids.append(f"{name}-{check.__name__}")
    return pytest.mark.parametrize("classifier, check", params, ids=ids)


def parametrize_with_reader_checks(readers):
    """``pytest.mark.parametrize("reader, check", ...)``: one test per (reader, check) of
    ``READER_CHECKS``; ``readers`` is ``{name: (reader, [sample paths])}``. Call ``check(reader)``."""
    import pytest

    params, ids = [], []
    for name, (reader, samples) in readers.items():
        samples = [str(sample) for sample in samples]
        for check in READER_CHECKS:
            params.append((reader, _BoundCheck(check, samples)))
            ids.append(f"{name}-{check.__name__}")
    return pytest.mark.parametrize("reader, check", params, ids=ids)
