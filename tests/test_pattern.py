"""Pattern: construction, d-spacings, and every kind of bad input -> PatternError."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from csn_plugin.errors import PatternError
from csn_plugin.pattern import MIN_POINTS, Pattern
from csn_plugin.physics import WAVELENGTHS

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RRUFF = DATA / "rruff-dev" / "rruff-0002.xy"


@pytest.fixture(scope="module")
def measured():
    """A real measured pattern (RRUFF, Cu Ka): two_theta, intensity."""
    if not RRUFF.exists():
        pytest.skip(f"shared data not found at {DATA}")
    table = np.loadtxt(RRUFF)
    return table[:, 0], table[:, 1]


def test_arrays_wavelength_and_d(measured):
    two_theta, intensity = measured
    pattern = Pattern(two_theta.tolist(), intensity.tolist(), wavelength="MoKa", source="x.xy")
    assert pattern.two_theta.dtype == np.float64 and pattern.intensity.dtype == np.float64
    assert np.array_equal(pattern.two_theta, two_theta)
    assert pattern.wavelength == WAVELENGTHS["MoKa"]
    assert pattern.metadata["wavelength_source"] == "user"
    # Bragg: the d of each angle gives back the angle
    back = 2 * np.degrees(np.arcsin(WAVELENGTHS["MoKa"] / (2 * pattern.d)))
    assert np.allclose(back, two_theta)
    assert np.all(np.diff(pattern.d) < 0)
    assert len(pattern) == len(two_theta)
    assert "x.xy" in repr(pattern) and str(len(two_theta)) in repr(pattern)


def test_default_wavelength_is_cu_ka1_and_marked(measured):
    pattern = Pattern(*measured)
    assert pattern.wavelength == pytest.approx(1.5406)
    assert pattern.metadata["wavelength_source"] == "default"
    assert pattern.with_wavelength(1.0).metadata["wavelength_source"] == "user"


def test_reversed_scan_is_turned_round(measured):
    two_theta, intensity = measured
    pattern = Pattern(two_theta[::-1], intensity[::-1], esd=np.sqrt(intensity[::-1] + 1))
    assert pattern.metadata["reversed"] is True
    assert np.array_equal(pattern.two_theta, two_theta)
    assert np.array_equal(pattern.intensity, intensity)
    assert np.allclose(pattern.esd, np.sqrt(intensity + 1))


def test_slightly_negative_intensities_are_accepted(measured):
    two_theta, intensity = measured
    shifted = intensity - 0.5 * np.percentile(intensity, 20) - 1.0  # background over-subtracted a little
    assert (shifted < 0).any()
    pattern = Pattern(two_theta, shifted)
    assert pattern.intensity.min() < 0


def _bad(measured, **changes):
    two_theta, intensity = measured
    arguments = {"two_theta": two_theta.copy(), "intensity": intensity.copy(), "source": "scan.xy"}
    arguments.update(changes)
    with pytest.raises(PatternError) as caught:
        Pattern(**arguments)
    message = str(caught.value)
    assert message.startswith("scan.xy: ") and "\n" not in message
    return message


def test_each_bad_input_names_its_problem(measured):
    two_theta, intensity = measured
    assert "empty" in _bad(measured, two_theta=[], intensity=[])
    assert "lengths differ" in _bad(measured, intensity=intensity[:-3])
    assert "at least" in _bad(measured, two_theta=two_theta[:MIN_POINTS - 1], intensity=intensity[:MIN_POINTS - 1])
    with_nan = intensity.copy()
    with_nan[10] = np.nan
    assert "NaN or infinite" in _bad(measured, intensity=with_nan)
    with_inf = two_theta.copy()
    with_inf[-1] = np.inf
    assert "NaN or infinite" in _bad(measured, two_theta=with_inf)
    shuffled = two_theta.copy()
    shuffled[[100, 200]] = shuffled[[200, 100]]
    assert "not sorted" in _bad(measured, two_theta=shuffled)
    repeated = two_theta.copy()
    repeated[51] = repeated[50]
    assert "repeated" in _bad(measured, two_theta=repeated)
    assert "outside 0-180" in _bad(measured, two_theta=two_theta - two_theta[0])  # starts at 0
    assert "outside 0-180" in _bad(measured, two_theta=two_theta + 100)
    assert "zero" in _bad(measured, intensity=np.zeros_like(intensity))
    assert "constant" in _bad(measured, intensity=np.full_like(intensity, 7.0))
    assert "positive" in _bad(measured, intensity=-intensity - 1)
    mostly_negative = intensity - np.percentile(intensity, 90)
    assert mostly_negative.max() > 0
    assert "negative" in _bad(measured, intensity=mostly_negative)
    assert "not numbers" in _bad(measured, intensity=["a"] * len(intensity))
    assert "1-D" in _bad(measured, intensity=np.stack([intensity, intensity]))


@pytest.mark.parametrize("wavelength", [0, 100, -1.5, "unobtainium", float("nan")])
def test_implausible_wavelength(measured, wavelength):
    message = _bad(measured, wavelength=wavelength)
    assert "wavelength" in message


def test_no_usable_d_range(measured):
    # 1-3 deg at Cu Ka is d = 29-88 A, far above anything the model sees ...
    two_theta = np.linspace(1, 3, 201)
    intensity = 10 + np.exp(-((two_theta - 2) / 0.05) ** 2)
    message = _bad(measured, two_theta=two_theta, intensity=intensity)
    assert "usable range" in message and "wavelength" in message
    # ... but at 0.1 A (hard synchrotron) the same angles are d = 1.9-5.7 A: fine.
    assert len(Pattern(two_theta, intensity, wavelength=0.1)) == 201


# ---- property-based: random input never escapes as anything but PatternError ----

floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
arrays = st.one_of(
    hnp.arrays(np.float64, st.integers(0, 120), elements=floats),
    hnp.arrays(np.float64, st.integers(0, 120), elements=st.floats(-10, 200)),
    hnp.arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 60)), elements=st.floats(0, 100)),
    st.lists(st.one_of(st.floats(0.1, 179), st.text(max_size=3)), max_size=80),
    st.none(),
)
wavelengths = st.one_of(st.none(), st.floats(allow_nan=True), st.sampled_from(["CuKa", "MoKa1", "nonsense", "1.54", ""]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(two_theta=arrays, intensity=arrays, wavelength=wavelengths)
def test_random_input_gives_pattern_or_pattern_error(two_theta, intensity, wavelength):
    try:
        pattern = Pattern(two_theta, intensity, wavelength=wavelength, source="random")
    except PatternError as error:
        assert str(error).startswith("random: ")
        return
    assert len(pattern) >= MIN_POINTS
    assert np.all(np.diff(pattern.two_theta) > 0)
    assert 0 < pattern.two_theta[0] and pattern.two_theta[-1] < 180
    assert np.isfinite(pattern.intensity).all() and pattern.intensity.max() > 0


@settings(max_examples=60, deadline=None)
@given(
    start=st.floats(2, 60),
    step=st.floats(0.005, 0.2),
    count=st.integers(MIN_POINTS, 400),
    bad_index=st.integers(0, 10**6),
    kind=st.sampled_from(["nan", "inf", "repeat", "swap", "length"]),
)
def test_corrupted_valid_pattern_is_refused(start, step, count, bad_index, kind):
    two_theta = start + step * np.arange(count)
    two_theta = two_theta[two_theta < 179]
    if len(two_theta) < MIN_POINTS:
        return
    intensity = 100 + 50 * np.sin(two_theta)
    index = bad_index % (len(two_theta) - 1)
    if kind == "nan":
        intensity[index] = np.nan
    elif kind == "inf":
        two_theta[index] = -np.inf
    elif kind == "repeat":
        two_theta[index + 1] = two_theta[index]
    elif kind == "swap":
        two_theta[[index, index + 1]] = two_theta[[index + 1, index]]
    else:
        intensity = intensity[:-1]
    expected = {"nan": "NaN", "inf": "NaN", "repeat": "repeated", "swap": "not sorted", "length": "lengths differ"}
    with pytest.raises(PatternError, match=expected[kind]):
        Pattern(two_theta, intensity, wavelength=1.5406, source="corrupt")


def test_intensities_near_the_float_limit_resample_like_ordinary_ones(measured):
    from csn_plugin.grid import ModelGrid

    two_theta, intensity = measured
    grid = ModelGrid()
    plain, mask = grid.resample(two_theta, intensity)
    huge, huge_mask = grid.resample(two_theta, intensity / intensity.max() * 1e308)
    assert np.isfinite(huge).all() and huge.max() == 1.0
    np.testing.assert_allclose(huge, plain, atol=1e-6)
    assert np.array_equal(mask, huge_mask)


def test_narrow_scan_is_too_narrow_not_a_wavelength_problem():
    two_theta = np.linspace(13.75, 14.40, 131)
    intensity = 10 + np.exp(-((two_theta - 14.1) / 0.05) ** 2)
    with pytest.raises(PatternError) as caught:
        Pattern(two_theta, intensity, source="rocking.xy")
    message = str(caught.value)
    assert message.startswith("rocking.xy: the scan covers only 0.65 deg 2theta (13.75-14.4 deg): too narrow to classify")
    assert "wavelength right" not in message


@pytest.mark.parametrize("make, expected", [
    (lambda x, y: (x, y + 0j), "intensities are complex numbers"),
    (lambda x, y: (x + 0j, y), "angles are complex numbers"),
    (lambda x, y: (x, np.ma.masked_greater(y, 1e9)), "intensities are a masked array"),
    (lambda x, y: (np.ma.masked_array(x), y), "angles are a masked array"),
])
def test_arrays_that_cannot_be_meant_are_refused(measured, make, expected):
    two_theta, intensity = make(*measured)
    with pytest.raises(PatternError, match=expected):
        Pattern(two_theta, intensity)
