"""ModelGrid.resample: d-spacing mapping between wavelengths, box-filter binning, mask, scaling, errors."""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from csn_plugin.grid import ModelGrid
from csn_plugin.physics import convert_two_theta, d_to_two_theta, two_theta_to_d

MO_KA1 = 0.70930  # angstrom (Bearden)
CU_KA1 = 1.5406


def bragg_two_theta(d, wavelength):
    """2theta (deg) of spacing ``d`` at ``wavelength``, written out independently of the module."""
    return 2.0 * np.degrees(np.arcsin(wavelength / (2.0 * d)))


def gaussian(x, centre, sigma, area=1.0):
    return area / (sigma * np.sqrt(2 * np.pi)) * np.exp(-0.5 * ((x - centre) / sigma) ** 2)


def test_grid_axis_and_d_range():
    grid = ModelGrid()
    assert grid.size == 1701
    assert grid.two_theta[0] == pytest.approx(5.0) and grid.two_theta[-1] == pytest.approx(90.0)
    d_min, d_max = grid.d_range
    # 90 deg at Cu Ka1: d = lambda / (2 sin 45 deg) = 1.0894 A
    assert d_min == pytest.approx(CU_KA1 / np.sqrt(2))
    assert d_max == pytest.approx(CU_KA1 / (2 * np.sin(np.radians(2.5))))


def test_bragg_helpers_agree_and_unreachable_is_nan():
    assert two_theta_to_d(bragg_two_theta(2.0, CU_KA1), CU_KA1) == pytest.approx(2.0)
    assert d_to_two_theta(2.0, MO_KA1) == pytest.approx(bragg_two_theta(2.0, MO_KA1))
    assert np.isnan(d_to_two_theta(0.5, CU_KA1))  # lambda > 2d: beyond reach
    assert convert_two_theta(20.0, MO_KA1, CU_KA1) == pytest.approx(bragg_two_theta(MO_KA1 / (2 * np.sin(np.radians(10))), CU_KA1))
    # a high Mo angle whose d is shorter than lambda_Cu / 2 has no Cu equivalent
    assert np.isnan(convert_two_theta(100.0, MO_KA1, CU_KA1))


def test_mo_peak_lands_at_cu_bragg_angle():
    d = 2.0
    two_theta_mo = np.arange(5.0, 40.0, 0.005)
    intensity = gaussian(two_theta_mo, bragg_two_theta(d, MO_KA1), 0.03)
    grid = ModelGrid()
    values, mask = grid.resample(two_theta_mo, intensity, MO_KA1)
    expected = bragg_two_theta(d, CU_KA1)  # 45.31 deg
    assert abs(grid.two_theta[np.argmax(values)] - expected) <= grid.step
    assert abs(expected - 45.31) < 0.01  # sanity of the reference itself
    # the peak sits far from where it was measured (about 20.7 deg with Mo)
    assert values[np.abs(grid.two_theta - bragg_two_theta(d, MO_KA1)) < 1].max() < 1e-3


def test_mask_covers_exactly_the_measured_range():
    grid = ModelGrid()
    two_theta_mo = np.arange(5.0, 40.0, 0.01)
    values, mask = grid.resample(two_theta_mo, np.ones_like(two_theta_mo), MO_KA1)
    low = bragg_two_theta(MO_KA1 / (2 * np.sin(np.radians(2.5))), CU_KA1)  # about 10.87 deg
    high = bragg_two_theta(MO_KA1 / (2 * np.sin(np.radians(two_theta_mo[-1] / 2))), CU_KA1)
    assert high > 90  # the Mo scan reaches beyond the Cu grid
    half = grid.step / 2
    inside = (grid.two_theta >= low - half) & (grid.two_theta <= high + half)
    np.testing.assert_array_equal(mask, inside.astype(np.float32))
    assert mask.dtype == np.float32 and values.dtype == np.float32
    assert np.all(values[mask == 0] == 0)
    # a constant input stays constant (=1 after scaling) over the fully covered bins
    np.testing.assert_allclose(values[1:-1][mask[1:-1] == 1][1:-1], 1.0, atol=1e-6)


def test_same_wavelength_partial_range_mask():
    grid = ModelGrid()
    two_theta = np.arange(20.0, 60.0 + 1e-9, 0.02)
    _, mask = grid.resample(two_theta, np.ones_like(two_theta), CU_KA1)
    covered = grid.two_theta[mask == 1]
    assert covered[0] == pytest.approx(20.0) and covered[-1] == pytest.approx(60.0)
    assert mask.sum() == 801  # 20.00, 20.05, ..., 60.00


def test_binning_preserves_integrated_area():
    """A peak narrower than a grid bin keeps its area (point sampling would not)."""
    grid = ModelGrid()
    two_theta = np.arange(10.0, 80.0, 0.002)
    narrow = gaussian(two_theta, 30.013, 0.008)  # sigma far below the 0.05 deg step, off-centre
    broad = gaussian(two_theta, 60.0, 0.4)
    values, _ = grid.resample(two_theta, narrow + broad, CU_KA1)
    area_narrow = values[(grid.two_theta > 29) & (grid.two_theta < 31)].sum() * grid.step
    area_broad = values[(grid.two_theta > 57) & (grid.two_theta < 63)].sum() * grid.step
    assert area_narrow / area_broad == pytest.approx(1.0, rel=0.01)
    # binning lowers the narrow peak's height (point maxima 49.9 vs 1.0; bin averages about 19 vs 1)
    point_ratio = narrow.max() / broad.max()
    bin_ratio = values[(grid.two_theta > 29) & (grid.two_theta < 31)].max() / values[(grid.two_theta > 57) & (grid.two_theta < 63)].max()
    assert bin_ratio < 0.5 * point_ratio


def test_coarse_scan_is_interpolated():
    """A linear ramp sampled every 0.2 deg comes back as the same ramp on the 0.05 deg grid."""
    grid = ModelGrid()
    two_theta = np.arange(10.0, 80.0 + 1e-9, 0.2)
    values, mask = grid.resample(two_theta, 1.0 + two_theta, CU_KA1)
    inner = (grid.two_theta > 10.1) & (grid.two_theta < 79.9)
    ratio = values[inner] / (1.0 + grid.two_theta[inner])  # the same ramp up to the scale
    np.testing.assert_allclose(ratio, ratio.mean(), rtol=1e-5)
    assert ratio.mean() == pytest.approx(1 / 81.0, rel=1e-3)  # scaled by (about) the ramp's maximum
    assert mask[inner].all()


def test_coarse_peak_position_is_kept():
    """A peak sampled every 0.25 deg keeps its position to well under the input step."""
    grid = ModelGrid()
    centre = 40.08
    two_theta = np.arange(20.0, 60.0, 0.25)
    values, _ = grid.resample(two_theta, gaussian(two_theta, centre, 0.3), CU_KA1)
    window = np.abs(grid.two_theta - centre) < 1.0
    centroid = np.sum(grid.two_theta[window] * values[window]) / values[window].sum()
    assert centroid == pytest.approx(centre, abs=0.01)
    assert len(np.unique(values[window])) == window.sum()  # no runs of equal bins (staircase)


def test_negatives_are_clipped_and_max_is_one():
    grid = ModelGrid()
    two_theta = np.arange(10.0, 80.0, 0.01)
    intensity = np.where(two_theta < 40, -50.0, 0.0) + 200 * gaussian(two_theta, 55.0, 0.1)
    values, mask = grid.resample(two_theta, intensity, CU_KA1)
    assert values.min() >= 0
    assert values.max() == pytest.approx(1.0)
    assert np.all(values[(grid.two_theta > 11) & (grid.two_theta < 39)] == 0)


def test_no_overlap_raises():
    grid = ModelGrid()
    with pytest.raises(ValueError, match="covers no part"):
        grid.resample(np.arange(100.0, 120.0, 0.01), np.ones(2000), CU_KA1)
    # Mo scan at high angles: every d is below lambda_Cu / 2, nothing maps onto the Cu grid
    with pytest.raises(ValueError, match="covers no part"):
        grid.resample(np.arange(70.0, 100.0, 0.01), np.ones(3000), MO_KA1)
    with pytest.raises(ValueError):
        grid.resample(np.array([30.0]), np.array([1.0]), CU_KA1)


def test_no_positive_intensity_raises():
    grid = ModelGrid()
    two_theta = np.arange(10.0, 80.0, 0.01)
    with pytest.raises(ValueError, match="no positive intensity"):
        grid.resample(two_theta, np.zeros_like(two_theta), CU_KA1)
    with pytest.raises(ValueError, match="no positive intensity"):
        grid.resample(two_theta, -np.ones_like(two_theta), CU_KA1)


@st.composite
def scans(draw):
    wavelength = draw(st.sampled_from([CU_KA1, 1.54184, MO_KA1, 1.78896, 2.2897, 0.559421]))
    n = draw(st.integers(3, 300))
    steps = np.array(draw(st.lists(st.floats(0.001, 1.0), min_size=n - 1, max_size=n - 1)))
    start = draw(st.floats(1.0, 80.0))
    two_theta = start + np.concatenate([[0.0], np.cumsum(steps)])
    raw = np.array(draw(st.lists(st.floats(-50.0, 1000.0), min_size=n, max_size=n)))
    return wavelength, two_theta, raw


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scans())
def test_resample_properties(scan):
    wavelength, two_theta, raw = scan
    grid = ModelGrid()
    assume(two_theta[-1] < 170.0)
    with np.errstate(invalid="ignore"):
        reference = bragg_two_theta(wavelength / (2 * np.sin(np.radians(two_theta / 2))), CU_KA1)
    finite = np.isfinite(reference)
    assume(finite.sum() >= 2)
    low, high = reference[finite][0], reference[finite][-1]
    overlap_low, overlap_high = max(low, grid.start), min(high, grid.stop)
    assume(overlap_high - overlap_low > 1.0)  # clearly on the grid
    # a broad positive bump inside the overlap guarantees positive intensity after binning
    centre = (overlap_low + overlap_high) / 2
    intensity = raw + 2000.0 * np.exp(-0.5 * ((reference - centre) / 0.3) ** 2)
    intensity[~finite] = raw[~finite]
    values, mask = grid.resample(two_theta, intensity, wavelength)
    assert values.shape == mask.shape == (grid.size,)
    assert np.all(np.isfinite(values))
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert values.min() >= 0.0 and values.max() <= 1.0
    assert values[mask == 1].max() == pytest.approx(1.0)
    assert np.all(values[mask == 0] == 0)
    on = np.flatnonzero(mask)
    assert np.all(np.diff(on) == 1)  # one contiguous measured range
    half = grid.step / 2
    assert grid.two_theta[on[0]] >= low - half - 1e-9 and grid.two_theta[on[-1]] <= high + half + 1e-9
