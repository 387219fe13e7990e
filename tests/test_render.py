"""csn_plugin.synth.render: geometry of clean renders, each artifact's direction, and realism against the
measured rruff-dev patterns."""

import gzip
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from csn_plugin.synth.render import RenderConfig, pattern_statistics, render
from csn_plugin.physics import CU_KA1, CU_KA2

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def d_of(two_theta, wavelength=CU_KA1):
    return wavelength / (2 * math.sin(math.radians(two_theta) / 2))


def two_theta_of(d, wavelength=CU_KA1):
    return math.degrees(2 * math.asin(wavelength / (2 * d)))


def sticks(*rows):
    """(d, f2m) tensors of shape (len(rows), P) from lists of (two_theta, f2m) per pattern."""
    width = max(len(r) for r in rows)
    d = torch.zeros(len(rows), width)
    f = torch.zeros(len(rows), width)
    for i, row in enumerate(rows):
        for j, (tt, amp) in enumerate(row):
            d[i, j], f[i, j] = d_of(tt), amp
    return d, f


def fwhm_at(x, y, near, span=1.0):
    """FWHM (deg) of the peak of y nearest to `near`, by linear interpolation at half maximum."""
    sel = np.abs(x - near) < span
    xs, ys = x[sel], y[sel]
    top = int(np.argmax(ys))
    half = ys[top] / 2
    left = top
    while ys[left] > half:
        left -= 1
    right = top
    while ys[right] > half:
        right += 1
    xl = np.interp(half, [ys[left], ys[left + 1]], [xs[left], xs[left + 1]])
    xr = np.interp(half, [ys[right], ys[right - 1]], [xs[right], xs[right - 1]])
    return xr - xl


def clean(**changes):
    return RenderConfig.clean().replace(**changes)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


GRID = torch.arange(5.0, 90.0001, 0.01)


# ------------------------------------------------------------------------------------------ real data
def mineral_peaks(count, seed=0):
    """Padded (d, f2m, cos2) of the first `count` structures of robocrys' mineral database."""
    robocrys = pytest.importorskip("robocrys")
    from pymatgen.core import Structure

    from csn_plugin.synth.simulate import simulate_reflections

    path = os.path.join(os.path.dirname(robocrys.__file__), "condense", "mineral_db.json.gz")
    with gzip.open(path, "rt") as handle:
        table = json.load(handle)
    column = table["columns"].index("structure")
    rows = []
    for entry in table["data"][:count]:
        s = Structure.from_dict(entry[column])
        numbers, coords, occ = [], [], []
        for site in s:
            for species, amount in site.species.items():
                numbers.append(species.Z)
                coords.append(site.frac_coords)
                occ.append(amount)
        r = simulate_reflections(s.lattice.matrix, np.array(coords), np.array(numbers), np.array(occ),
                                 po_direction=(0, 0, 1))
        rows.append((r.d[:256], r.f2m[:256], r.cos2[:256]))
    width = max(len(r[0]) for r in rows)
    out = np.zeros((3, len(rows), width), np.float32)
    for i, r in enumerate(rows):
        for k in range(3):
            out[k, i, : len(r[k])] = r[k]
    return tuple(torch.from_numpy(a) for a in out)


@pytest.fixture(scope="module")
def minerals():
    return mineral_peaks(40)


@pytest.fixture(scope="module")
def rruff_stats():
    folder = SHARED / "rruff-dev"
    if not folder.is_dir():
        pytest.skip(f"shared measured data not found at {folder}")
    from csn_plugin.grid import ModelGrid

    grid = ModelGrid()
    stats = []
    for path in sorted(folder.glob("*.xy"))[::2]:  # every other file: enough for the percentiles
        data = np.loadtxt(path)
        values, mask = grid.resample(data[:, 0], data[:, 1], 1.5418)
        stats.append(pattern_statistics(grid.two_theta[mask > 0], values[mask > 0]))
    return stats


# ------------------------------------------------------------------------------------------ tests
def test_same_seed_same_output_and_different_seed_differs(minerals):
    d, f, c2 = minerals
    grid = torch.arange(5.0, 90.0001, 0.05)
    a = render(d, f, grid, gen(7), cos2=c2)
    b = render(d, f, grid, gen(7), cos2=c2)
    c = render(d, f, grid, gen(8), cos2=c2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_clean_peak_lands_at_bragg_angle_and_moves_with_zero_shift():
    d, f = sticks([(30.0, 1.0)], [(47.3, 1.0)])
    pattern, mask = render(d, f, GRID, gen(), clean())
    assert torch.all(mask == 1)
    for row, expected in enumerate([30.0, 47.3]):
        assert float(GRID[pattern[row].argmax()]) == pytest.approx(expected, abs=0.006)
    shifted, _ = render(d, f, GRID, gen(), clean(zero_shift=(0.2, 0.2)))
    for row, expected in enumerate([30.2, 47.5]):
        assert float(GRID[shifted[row].argmax()]) == pytest.approx(expected, abs=0.006)
    # sample displacement: shift = displacement * cos(theta), smaller at high angle
    displaced, _ = render(d, f, GRID, gen(), clean(displacement=(0.3, 0.3)))
    for row, tt in enumerate([30.0, 47.3]):
        expected = tt + 0.3 * math.cos(math.radians(tt / 2))
        assert float(GRID[displaced[row].argmax()]) == pytest.approx(expected, abs=0.006)


def test_other_tube_maps_peaks_to_the_reference_grid_by_d_spacing():
    d, f = sticks([(40.0, 1.0)])  # d at Cu Ka1
    pattern, mask = render(d, f, GRID, gen(), clean(), wavelength=0.7093)  # Mo Ka1 tube
    assert float(GRID[pattern[0].argmax()]) == pytest.approx(40.0, abs=0.006)
    # a Co tube (1.789 A) cannot reach the top of the Cu grid: those points are not measured
    _, mask_co = render(d, f, GRID, gen(), clean(), wavelength=1.78896)
    reach = math.degrees(2 * math.asin(CU_KA1 / 1.78896))
    assert torch.all(mask_co[0][GRID < reach - 0.01] == 1) and torch.all(mask_co[0][GRID > reach + 0.01] == 0)


def test_ka2_shoulder_at_its_wavelength_with_half_intensity():
    tt = 70.0
    d, f = sticks([(tt, 1.0)])
    grid = torch.arange(60.0, 80.0, 0.002)
    narrow = dict(caglioti_w=(0.0004, 0.0004))  # 0.02 deg FWHM: the doublet is resolved
    pattern, _ = render(d, f, grid, gen(), clean(p_ka2_absent=0.0, ka2_ratio=(0.5, 0.5), **narrow))
    y = pattern[0].numpy()
    x = grid.numpy()
    ka2 = two_theta_of(d_of(tt), CU_KA2)
    assert ka2 - tt == pytest.approx(0.204, abs=0.01)
    near = np.abs(x - ka2) < 0.01
    second = x[near][np.argmax(y[near])]
    assert second == pytest.approx(ka2, abs=0.004)
    assert y[near].max() / y.max() == pytest.approx(0.5, abs=0.05)
    single, _ = render(d, f, grid, gen(), clean(**narrow))
    assert single[0].numpy()[near].max() < 0.01


def test_caglioti_width_grows_with_angle():
    u, w = 0.02, 0.004
    d, f = sticks([(20.0, 1.0), (80.0, 1.0)])
    grid = torch.arange(5.0, 90.0, 0.002)
    pattern, _ = render(d, f, grid, gen(), clean(caglioti_u=(u, u), caglioti_w=(w, w)))
    x, y = grid.numpy(), pattern[0].numpy()
    widths = [fwhm_at(x, y, tt) for tt in (20.0, 80.0)]
    expected = [math.sqrt(u * math.tan(math.radians(tt / 2)) ** 2 + w) for tt in (20.0, 80.0)]
    assert widths[1] > 1.5 * widths[0]
    assert widths == pytest.approx(expected, rel=0.05)


def test_scherrer_broadening_follows_crystallite_size():
    d, f = sticks([(40.0, 1.0)])
    grid = torch.arange(35.0, 45.0, 0.002)
    x = grid.numpy()
    widths = []
    for size in (20.0, 100.0):
        config = clean(caglioti_w=(1e-6, 1e-6), crystallite_size_nm=(size, size))
        pattern, _ = render(d, f, grid, gen(), config)
        widths.append(fwhm_at(x, pattern[0].numpy(), 40.0))
    expected = [math.degrees(0.9 * CU_KA1 / (10 * s * math.cos(math.radians(20.0)))) for s in (20.0, 100.0)]
    assert widths == pytest.approx(expected, rel=0.05)


def test_mask_marks_the_measured_range_and_output_is_zero_outside():
    d, f = sticks([(30.0, 1.0), (70.0, 1.0)])
    config = clean(p_full_range=0.0, two_theta_start=(20.0, 20.0), two_theta_end=(60.0, 60.0))
    pattern, mask = render(d, f, GRID, gen(), config)
    inside = (GRID >= 20.0) & (GRID <= 60.0)
    assert torch.equal(mask[0] > 0, inside)
    assert torch.all(pattern[0][~inside] == 0)
    # the peak at 70 deg is outside: the one at 30 deg is the maximum, scaled to 1
    assert float(pattern[0].max()) == 1.0 and float(GRID[pattern[0].argmax()]) == pytest.approx(30.0, abs=0.01)


def test_default_outputs_finite_nonnegative_and_max_one_on_measured(minerals):
    d, f, c2 = minerals
    grid = torch.arange(5.0, 90.0001, 0.05)
    for seed in range(3):
        pattern, mask = render(d, f, grid, gen(seed), cos2=c2)
        assert pattern.dtype == torch.float32 and mask.dtype == torch.float32
        assert pattern.shape == mask.shape == (d.shape[0], grid.shape[0])
        assert torch.isfinite(pattern).all() and (pattern >= 0).all()
        assert torch.all(pattern * (1 - mask) == 0)
        assert torch.allclose((pattern * mask).amax(dim=1), torch.ones(d.shape[0]))
        assert mask.sum(dim=1).min() > 100


def test_march_dollase_favours_the_right_reflections():
    d, f = sticks([(30.0, 1.0), (50.0, 1.0)])
    cos2 = torch.tensor([[1.0, 0.0]])  # the first reflection is along the preferred direction
    x = GRID

    def ratio(r):
        config = clean(p_preferred_orientation=1.0, march_dollase_r=(r, r))
        pattern, _ = render(d, f, x, gen(), config, cos2=cos2)
        y = pattern[0]
        return float(y[(x - 30).abs() < 0.5].max() / y[(x - 50).abs() < 0.5].max())

    base = ratio(1.0)
    plates = ratio(0.7)  # platelets lie flat: reflections along the plate normal grow
    needles = ratio(1.4)
    assert plates / base == pytest.approx((0.7**-3) / (1 / 0.7) ** -1.5, rel=0.02)
    assert needles < base < plates


def test_rendered_minerals_look_like_measured_patterns(minerals, rruff_stats):
    from csn_plugin.grid import ModelGrid

    d, f, c2 = minerals
    grid = ModelGrid()
    pattern, mask = render(d, f, torch.tensor(grid.two_theta, dtype=torch.float32), gen(1), cos2=c2)
    rendered = [pattern_statistics(grid.two_theta[m > 0], p[m > 0]) for p, m in zip(pattern.numpy(), mask.numpy())]
    for key in ("noise", "fwhm", "n_peaks"):
        measured = np.array([s[key] for s in rruff_stats], float)
        low, high = np.nanpercentile(measured, [10, 90])
        median = np.nanmedian([s[key] for s in rendered])
        assert low <= median <= high, (key, median, low, high)
    # noise varies across patterns as in measured data: some clean, some noisy
    noise = np.array([s["noise"] for s in rendered])
    assert noise.max() > 3 * noise.min()


def test_pattern_statistics_measures_a_known_peak():
    x = np.arange(10.0, 50.0, 0.01)
    y = np.exp(-4 * math.log(2) * ((x - 30.0) / 0.2) ** 2) + 0.5 * np.exp(-4 * math.log(2) * ((x - 40.0) / 0.3) ** 2)
    y = y + 0.01
    y[:400] = 0.0
    stats = pattern_statistics(x, y)
    assert stats["n_peaks"] == 2
    assert sorted(stats["fwhms"]) == pytest.approx([0.2, 0.3], abs=0.01)
    assert stats["zeros"] == pytest.approx(400 / len(x))
    assert stats["noise"] < 1e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_matches_cpu_for_clean_render():
    d, f = sticks([(30.0, 1.0), (55.0, 0.3)])
    cpu, _ = render(d, f, GRID, gen(), clean())
    gpu, mask = render(d.cuda(), f.cuda(), GRID.cuda(), gen(), clean())
    assert gpu.device.type == "cuda" and mask.device.type == "cuda"
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-4)
    noisy, _ = render(d.cuda(), f.cuda(), GRID.cuda(), torch.Generator(device="cuda").manual_seed(0))
    assert torch.isfinite(noisy).all()


def _peak_height(pattern, row, two_theta):
    return float(pattern[row][(GRID - two_theta).abs() < 0.15].max())


def test_weak_dropout_removes_only_weak_reflections():
    # a strong line, a weak one (2 % of it, below the 5 % threshold) and a medium one (30 %)
    rows = [[(30.0, 1.0), (40.0, 0.02), (50.0, 0.3)]] * 64
    d, f = sticks(*rows)
    kept, _ = render(d, f, GRID, gen(), clean())
    assert min(_peak_height(kept, i, 40.0) for i in range(64)) > 0.005   # visible without dropout
    dropped, _ = render(d, f, GRID, gen(), clean(weak_dropout=1.0, weak_threshold=0.05))
    for i in range(64):
        assert _peak_height(dropped, i, 40.0) < 1e-6
        assert _peak_height(dropped, i, 30.0) == pytest.approx(1.0, abs=1e-4)
        assert _peak_height(dropped, i, 50.0) == pytest.approx(_peak_height(kept, i, 50.0), rel=1e-3)
    half, _ = render(d, f, GRID, gen(3), clean(weak_dropout=0.5, weak_threshold=0.05))
    removed = sum(_peak_height(half, i, 40.0) < 1e-6 for i in range(64))
    assert 16 <= removed <= 48                                             # about half of the 64


def test_intensity_jitter_changes_ratios_not_positions():
    rows = [[(30.0, 1.0), (50.0, 1.0)]] * 64
    d, f = sticks(*rows)
    plain, _ = render(d, f, GRID, gen(), clean())
    jittered, _ = render(d, f, GRID, gen(), clean(intensity_jitter=0.4))
    ratio = lambda p, i: _peak_height(p, i, 50.0) / _peak_height(p, i, 30.0)
    plain_ratios = np.array([ratio(plain, i) for i in range(64)])
    ratios = np.log([ratio(jittered, i) for i in range(64)])
    assert np.ptp(plain_ratios) < 1e-4
    # ln of a ratio of two independent log-normal factors: sd 0.4 * sqrt(2)
    assert 0.35 < np.std(ratios) < 0.8
    for i in range(64):
        for tt in (30.0, 50.0):
            window = (GRID - tt).abs() < 0.3
            assert float(GRID[window][jittered[i][window].argmax()]) == pytest.approx(tt, abs=0.006)
