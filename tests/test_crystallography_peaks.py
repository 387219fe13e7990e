"""Peak search (csn_plugin.crystallography.peaks) on rendered real structures whose lines are
known, on pure noise, and on a measured lab pattern."""

import math

import numpy as np
import pytest

from csn_plugin.crystallography import PeakSet, find_peaks
from csn_plugin.crystallography.peaks import ka_lines

import crystallography_cases as cases  # the shared cases, registered by conftest.py

pytestmark = pytest.mark.one_thread

SHARED, aflow_structures, measured_like_config, render_known = (
    cases.SHARED, cases.aflow_structures, cases.measured_like_config, cases.render_known)


def _structure(label):
    for row in aflow_structures():
        if row[0] == label:
            return row
    raise LookupError(label)


def _rendered(label, seed=3, **changes):
    name, lattice, frac, numbers, occ, sg = _structure(label)
    config = measured_like_config(zero_shift=0.03, impurities=False, **changes)
    return render_known(lattice, frac, numbers, occ, seed=seed, config=config)


def _isolated_strong(truth, min_intensity=5.0, gap=0.4):
    tt, ti = truth["two_theta"], truth["intensity"]
    keep = []
    for i in range(len(tt)):
        others = np.abs(tt - tt[i]) < gap
        others[i] = False
        if ti[i] >= min_intensity and not (others & (ti > 0.1 * ti[i])).any():
            keep.append(i)
    return np.array(keep, dtype=int)


@pytest.mark.parametrize("label", ["A2B_oP12_62_2c_c", "A4B_tI10_139_de_a"])
def test_positions_of_rendered_lines(label):
    x, y, truth = _rendered(label, peak_counts=(2e4, 2e4), ka2_ratio=(0.5, 0.5), p_ka2_absent=0.0)
    peaks = find_peaks(x, y, "CuKa")
    strong = _isolated_strong(truth)
    assert len(strong) >= 4
    dist = np.abs(peaks.two_theta[None, :] - truth["two_theta"][strong][:, None])
    errors = dist.min(axis=1)
    assert np.median(errors) < 0.006
    assert (errors < 0.03).mean() >= 0.9  # at most one strong isolated line missed
    assert 0.4 < peaks.ka2_ratio < 0.6
    assert peaks.wavelength == pytest.approx(1.54056)
    # uncertainties and intensities are finite; the strongest found is a strong true line
    assert np.all(np.isfinite(peaks.two_theta_sigma)) and np.all(peaks.two_theta_sigma > 0)
    assert np.all(peaks.intensity > 0) and np.all(peaks.significance >= 3)
    top = peaks.two_theta[np.argmax(peaks.intensity)]
    nearest = np.argmin(np.abs(truth["two_theta"] - top))
    assert truth["intensity"][nearest] > 40


def test_relative_intensities_follow_the_truth():
    x, y, truth = _rendered("A2B_oP12_62_2c_c", peak_counts=(5e4, 5e4))
    peaks = find_peaks(x, y, "CuKa")
    strong = _isolated_strong(truth, min_intensity=10.0)
    j = np.abs(peaks.two_theta[None, :] - truth["two_theta"][strong][:, None]).argmin(axis=1)
    found = peaks.intensity[j] / peaks.intensity[j].max()
    true = truth["intensity"][strong] / truth["intensity"][strong].max()
    assert np.corrcoef(found, true)[0, 1] > 0.9


def test_monochromatic_data_has_no_ka2():
    x, y, truth = _rendered("A4B_tI10_139_de_a", p_ka2_absent=1.0, ka2_residual=(0.0, 0.0), peak_counts=(2e4, 2e4))
    peaks = find_peaks(x, y, "CuKa")
    assert peaks.ka2_ratio < 0.1
    strong = _isolated_strong(truth)
    errors = np.abs(peaks.two_theta[None, :] - truth["two_theta"][strong][:, None]).min(axis=1)
    assert np.median(errors) < 0.006
    # a non-tube wavelength is monochromatic
    assert ka_lines(0.4959) == (0.4959, 0.0)


def test_noise_alone_gives_few_peaks():
    rng = np.random.default_rng(0)
    x = np.arange(5, 90, 0.01)
    y = rng.poisson(200, size=len(x)).astype(float)
    peaks = find_peaks(x, y, "CuKa")
    assert len(peaks) <= 3


def test_detection_limit_and_width_model():
    x, y, _ = _rendered("A2B_oP12_62_2c_c", peak_counts=(3e3, 3e3))
    peaks = find_peaks(x, y, "CuKa")
    inside = peaks.detection_limit(np.array([20.0, 50.0, 80.0]))
    assert np.all(np.isfinite(inside)) and np.all(inside > 0)
    assert np.isinf(peaks.detection_limit(np.array([2.0, 120.0]))).all()
    # the reported peaks sit above about the detection limit (it is a median-calibrated 3 sigma)
    assert np.mean(peaks.intensity > 0.5 * peaks.detection_limit(peaks.two_theta)) > 0.9
    fw = peaks.fwhm_at(np.array([20.0, 80.0]))
    assert np.all((fw > 0.02) & (fw < 1.0))
    subset = peaks.subset(peaks.intensity > np.median(peaks.intensity))
    assert isinstance(subset, PeakSet) and len(subset) < len(peaks)


def test_from_positions():
    ps = PeakSet.from_positions([30.0, 20.0, 40.0], "CuKa1", intensity=[10, 100, 50])
    assert list(ps.two_theta) == [20.0, 30.0, 40.0]
    assert ps.relative_intensity[0] == 100
    assert ps.d[0] == pytest.approx(1.54056 / (2 * math.sin(math.radians(10))))


@pytest.mark.skipif(not (SHARED / "examples" / "MnO.xy").is_file(), reason="shared examples not found")
def test_measured_mno_lines():
    data = np.loadtxt(SHARED / "examples" / "MnO.xy", comments="#")
    peaks = find_peaks(data[:, 0], data[:, 1], "CuKa")
    # MnO, Fm-3m, a = 4.445 A: 111, 200, 220, 311, 222
    a = 4.445
    for hkl in ((1, 1, 1), (2, 0, 0), (2, 2, 0), (3, 1, 1)):
        d = a / math.sqrt(sum(v * v for v in hkl))
        expected = 2 * math.degrees(math.asin(1.54056 / (2 * d)))
        assert np.min(np.abs(peaks.two_theta - expected)) < 0.15


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_broad_lines_at_tens_of_counts_are_found(seed):
    """Rutile simulated with 0.6-deg Gaussian lines and Poisson counts (40 at the strongest line over
    a background of 40): the half-height width walk is fooled by the noise, the matched-filter
    retry is not; the three strongest lines (110, 101, 211) are found."""
    from pymatgen.core import Lattice, Structure

    from csn_plugin.synth.simulate import simulate_peaks

    rutile = Structure.from_spacegroup("P4_2/mnm", Lattice.tetragonal(4.594, 2.959), ["Ti", "O"],
                                       [[0, 0, 0], [0.305, 0.305, 0]])
    lines = simulate_peaks(rutile, wavelength=1.5406, two_theta_range=(5, 90))
    x = np.arange(5, 90, 0.01)
    clean = np.ones_like(x)
    for position, height in zip(lines.two_theta, lines.intensity):
        clean += height / 100 * np.exp(-4 * math.log(2) * ((x - position) / 0.6) ** 2)
    y = np.random.default_rng(seed).poisson(40 * clean).astype(float)
    found = find_peaks(x, y, 1.5406, ka2=False)
    strongest = np.sort(lines.two_theta[np.argsort(-lines.intensity)[:3]])
    assert len(found.two_theta) >= 4
    assert np.abs(found.two_theta[:, None] - strongest[None, :]).min(axis=0).max() < 0.3
    assert np.all(found.fwhm > 0.3)  # measured broad, not at the noise's scale
