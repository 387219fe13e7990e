"""Render batches of peak lists into realistic measured-looking powder patterns (torch, batched, seeded).

``render(d, f2m, grid, generator)`` turns padded peak lists (d-spacings and |F|^2 x multiplicity, as
``csn_plugin.synth.simulate.simulate_reflections`` gives them) into patterns on the model's 2theta grid, with
the artifacts of real measurements and of the processing measured files went through, drawn per
pattern from the ranges in :class:`RenderConfig`. Everything is vectorised over the batch and the
peaks; each peak is evaluated only in a window of grid points around it. Runs on CPU or CUDA tensors.

:func:`pattern_statistics` computes the realism statistics used to tune the defaults (peak widths,
peak count, noise level, zeros), the same way for measured and rendered patterns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace as _replace

from ..physics import DEFAULT_WAVELENGTH, WAVELENGTHS

REFERENCE_WAVELENGTH = DEFAULT_WAVELENGTH  # the model grid is in 2theta at Cu Ka1
_DEG = 180.0 / math.pi
_SCHERRER_K = 0.9
# Ka2/Ka1 wavelength ratio per tube, picked by the nearest Ka1 line (Cu's ratio for other wavelengths).
_KA_PAIRS = [(WAVELENGTHS[f"{t}Ka1"], WAVELENGTHS[f"{t}Ka2"]) for t in ("Cu", "Mo", "Cr", "Fe", "Co", "Ag")]


@dataclass
class RenderConfig:
    """Ranges the artifacts are drawn from, per pattern (uniform unless a field says log-uniform).

    Angles are in degrees 2theta on the model's reference scale (Cu Ka1); intensities are relative
    to the strongest peak. The evidence behind each default (rruff-dev, examples/) is in
    docs/rendering.md; ``benchmarks/compare_realism.py`` measures rendered against measured patterns.
    """

    # --- peak profile: TCH pseudo-Voigt, Gaussian FWHM^2 = U tan^2(th) + V tan(th) + W (Caglioti),
    # Lorentzian FWHM = instrument + strain*tan(th) + Scherrer(size)/cos(th).
    # Tuned so the FWHM of the 10 strongest peaks matches rruff-dev (median 0.109 deg, 10-90 %
    # 0.059-0.224 deg) and lab diffractometers (LaB6-class instrument widths ~0.04-0.08 deg).
    caglioti_u: tuple = (0.0, 0.008)  # deg^2: high-angle growth (divergence, mosaic)
    caglioti_v: tuple = (-0.006, 0.0)  # deg^2: usually small and negative
    caglioti_w: tuple = (0.0006, 0.004)  # deg^2: sqrt = 0.03-0.08 deg low-angle instrument width
    instrument_lorentz: tuple = (0.0, 0.03)  # deg: Lorentzian part of the instrument profile
    crystallite_size_nm: tuple = (60.0, 5000.0)  # log-uniform: Scherrer, K=0.9
    p_nanocrystalline: float = 0.1  # synthesised powders (examples/TiO2: ~0.6 deg FWHM at 25 deg)
    nanocrystallite_size_nm: tuple = (6.0, 60.0)  # log-uniform, then
    microstrain: tuple = (0.0, 0.04)  # deg coefficient of tan(th), Lorentzian
    asymmetry: tuple = (0.0, 0.25)  # low-angle axial-divergence asymmetry (left side wider) at 2th=20
    window_fwhm: float = 5.0  # each line is evaluated within +-window_fwhm x its FWHM (or more)
    max_window_deg: float = 2.0  # cap on that half-window (deg)
    min_line_intensity: float = 1e-4  # lines weaker than this (of the strongest) are skipped

    # --- wavelength: Ka2 doublet (Ka2/Ka1 ratio 0.5 in theory, 0.45-0.52 measured on tubes);
    # sometimes absent (monochromator, Ka2 stripped) or imperfectly stripped (small residue).
    ka2_ratio: tuple = (0.45, 0.52)
    p_ka2_absent: float = 0.15
    ka2_residual: tuple = (0.0, 0.04)  # ratio left after stripping

    # --- geometry: zero shift, sample displacement (shift = zero + displacement*cos(th)),
    # and wavelength mismatch (files labelled "Cu Ka" converted with 1.5418 vs 1.5406: +0.08 %).
    zero_shift: tuple = (-0.04, 0.04)  # deg
    displacement: tuple = (-0.05, 0.05)  # deg (= -2 s/R in degrees; s=0.1 mm, R=200 mm gives 0.06)
    wavelength_error: tuple = (-0.0003, 0.001)  # relative d-spacing scale error

    # --- intensities: Lorentz-polarisation at the tube wavelength with monochromator factor
    # K = cos^2(2th_m) (1 without, 0.8 graphite); Debye-Waller; March-Dollase preferred orientation.
    polarisation_k: tuple = (0.8, 1.0)
    b_iso: tuple = (0.0, 1.5)  # A^2, overall isotropic displacement (minerals: 0.3-1.5)
    p_preferred_orientation: float = 0.4  # only where cos2 is given
    march_dollase_r: tuple = (0.65, 1.4)  # log-uniform; r<1 plates, r>1 needles
    # Real structures are pseudo-symmetric: allowed reflections are often too weak to be seen and
    # relative intensities differ from the stored structure's (disorder, texture, absorption). Off by
    # default; issue 11's ablation measures whether they make the network read positions and absences.
    intensity_jitter: float = 0.0  # sd of ln(intensity), independent per reflection
    weak_dropout: float = 0.0  # chance that a reflection weaker than weak_threshold is removed
    weak_threshold: float = 0.05  # relative to the strongest reflection
    p_impurity: float = 0.4
    impurity_peaks: tuple = (1, 4)  # count when present (integers, inclusive)
    impurity_intensity: tuple = (0.005, 0.05)  # integrated intensity relative to the strongest peak

    # --- background, relative to the strongest peak's height: level x exp(Chebyshev order 3) +
    # low-angle rise (10/2th)^p + optional amorphous hump. examples/ (raw lab scans): 3-18 %.
    background_level: tuple = (0.01, 0.3)  # log-uniform (at the scan middle, before the low-angle rise)
    background_shape: float = 0.4  # |Chebyshev coefficients| <= this (in the exponent)
    low_angle_rise: tuple = (0.0, 1.0)  # relative to the level, at 10 deg
    low_angle_power: tuple = (1.0, 2.0)
    p_amorphous: float = 0.2
    amorphous_center: tuple = (15.0, 35.0)  # deg
    amorphous_fwhm: tuple = (4.0, 14.0)  # deg
    amorphous_height: tuple = (0.3, 3.0)  # relative to the level

    # --- counting noise: Poisson at a count level of the strongest peak (log-uniform, heavy tail:
    # some rruff-dev patterns are mostly noise), plus Gaussian read noise.
    peak_counts: tuple = (45.0, 7.5e4)  # log-uniform
    read_noise: tuple = (0.0, 0.002)  # relative sd

    # --- measured range and step (outside the range: mask 0, value 0); the file's points are then
    # resampled to the grid as ModelGrid.resample does: bin means of a finer file, linear
    # interpolation of a coarser one.
    p_full_range: float = 0.5  # the scan covers the whole grid (rruff-dev: all 5-90 deg)
    two_theta_start: tuple = (3.0, 20.0)  # otherwise (lab scans start at 3-20 deg ...)
    two_theta_end: tuple = (60.0, 120.0)  # ... and end at 60-90 deg or beyond)
    step: tuple = (0.01, 0.03)  # deg, measured point spacing, log-uniform (modern scans 0.01-0.02)
    clip_output: bool = True  # ModelGrid.resample clips negatives: the model never sees them

    # --- processing of the measured file: background subtraction (imperfect: the fitted background
    # sits k noise-sd below the true one, as envelope fits do, with a smooth error), clipping at 0.
    # rruff-dev: subtracted, clipped (~4 % of points exactly 0 = k about 1.8), scaled to max 1000.
    p_background_subtracted: float = 0.6
    subtraction_undershoot: tuple = (1.0, 3.0)  # k, in noise sd (of one file point) at the background
    subtraction_error: tuple = (0.0, 0.8)  # smooth variation of k along the scan, as a fraction of k
    subtraction_error_relative: tuple = (0.0, 0.003)  # plus this fraction of the background
    p_clip: float = 0.7  # given subtraction

    @classmethod
    def clean(cls) -> "RenderConfig":
        """No artifacts: Ka1 only, fixed 0.1 deg Gaussian-ish pseudo-Voigt, no noise or background."""
        return cls(
            caglioti_u=(0.0, 0.0), caglioti_v=(0.0, 0.0), caglioti_w=(0.01, 0.01),
            instrument_lorentz=(0.0, 0.0), crystallite_size_nm=(1e9, 1e9), p_nanocrystalline=0.0,
            microstrain=(0.0, 0.0),
            asymmetry=(0.0, 0.0),
            ka2_ratio=(0.0, 0.0), p_ka2_absent=1.0, ka2_residual=(0.0, 0.0),
            zero_shift=(0.0, 0.0), displacement=(0.0, 0.0), wavelength_error=(0.0, 0.0),
            polarisation_k=(1.0, 1.0), b_iso=(0.0, 0.0), p_preferred_orientation=0.0,
            march_dollase_r=(1.0, 1.0), p_impurity=0.0,
            background_level=(0.0, 0.0), low_angle_rise=(0.0, 0.0), p_amorphous=0.0,
            peak_counts=(math.inf, math.inf), read_noise=(0.0, 0.0),
            p_full_range=1.0, step=(0.0, 0.0),
            p_background_subtracted=0.0, p_clip=0.0,
        )

    def replace(self, **changes) -> "RenderConfig":
        """A copy with some fields changed."""
        return _replace(self, **changes)


def _uniform(u, bounds):
    lo, hi = bounds
    return lo + (hi - lo) * u


def _log_uniform(u, bounds):
    lo, hi = bounds
    if lo == hi or not (lo > 0 and hi > 0) or math.isinf(lo):
        return _uniform(u, bounds) if lo != hi else u * 0 + lo
    return lo * (hi / lo) ** u


def _ka2_ratio_of(wavelength):
    """Ka2/Ka1 wavelength ratio for the tube whose Ka1 line is nearest (tensor in, tensor out)."""
    import torch

    ka1 = torch.tensor([p[0] for p in _KA_PAIRS], dtype=wavelength.dtype, device=wavelength.device)
    ratio = torch.tensor([p[1] / p[0] for p in _KA_PAIRS], dtype=wavelength.dtype, device=wavelength.device)
    distance = (wavelength[:, None] - ka1).abs()
    nearest = distance.argmin(dim=1)
    close = distance.gather(1, nearest[:, None])[:, 0] < 0.01
    return torch.where(close, ratio[nearest], ratio[0].expand_as(wavelength))


def render(d, f2m, two_theta_grid, generator, config: RenderConfig = None, cos2=None,
           wavelength=DEFAULT_WAVELENGTH):
    """Render padded peak lists into patterns on the model grid, with random realistic artifacts.

    d, f2m: (B, P) d-spacings (angstrom) and |F|^2 x multiplicity without Lorentz-polarisation
    (f2m = 0 marks padding). cos2: (B, P) March-Dollase cos^2 or None. two_theta_grid: (G,)
    increasing, degrees 2theta at the reference wavelength (Cu Ka1, 1.5406 A). wavelength: the tube's
    Ka1 wavelength (float or (B,)): peaks, Lorentz-polarisation and widths are computed at it and
    mapped onto the reference grid. generator: torch.Generator; the same seed gives the same output.
    Returns (pattern, mask), both (B, G) float32: the pattern scaled to max 1 over measured points and
    0 elsewhere, mask 1 where the simulated measurement covers the grid point.
    """
    import torch

    config = RenderConfig() if config is None else config
    device = d.device
    d = d.to(torch.float32)
    f2m = f2m.to(device=device, dtype=torch.float32)
    grid = torch.as_tensor(two_theta_grid, dtype=torch.float32).to(device)
    batch = d.shape[0]
    draws = _Draws(generator, device)
    wl = torch.as_tensor(wavelength, dtype=torch.float32).to(device).reshape(-1).expand(batch)

    p = _draw_parameters(config, draws.rand(batch, 48), grid)
    sin1, intensity, valid = _reflection_intensities(d, f2m, cos2, wl, p, config)
    intensity, valid = _perturb_reflections(intensity, valid, config, draws)
    sin1, intensity, valid = _add_impurities(sin1, intensity, valid, grid, wl, p, config, draws)
    peaks, grid_step, coarse, binned = _line_profiles(sin1, intensity, valid, grid, wl, p, config)
    peaks, background, measured, xc, t2 = _background(peaks, grid, wl, p)
    observed, n_counts = _counting_noise(peaks + background, grid, grid_step, coarse, binned, p, draws)
    return _processing(observed, background, n_counts, measured, xc, t2, p, config)


class _Draws:
    """Uniform and normal draws from ``generator`` (on its device), moved to ``device``."""

    def __init__(self, generator, device):
        import torch

        self.generator, self.device = generator, device
        self.gen_device = generator.device if generator is not None else torch.device("cpu")

    def rand(self, *shape):
        import torch

        return torch.rand(*shape, generator=self.generator, device=self.gen_device).to(self.device)

    def randn(self, *shape):
        import torch

        return torch.randn(*shape, generator=self.generator, device=self.gen_device).to(self.device)


def _draw_parameters(c, u, grid):
    """Stage 1: every per-pattern parameter from the (B, 48) uniform draws ``u``, one column each
    in a fixed layout (the same seed gives the same patterns whatever the config)."""
    import torch
    from types import SimpleNamespace

    col = iter(range(48))

    def draw(bounds, log=False):
        column = u[:, next(col)]
        return _log_uniform(column, bounds) if log else _uniform(column, bounds)

    def chance(p):
        return u[:, next(col)] < p

    p = SimpleNamespace()
    p.zero_shift = draw(c.zero_shift)
    p.displacement = draw(c.displacement)
    p.d_scale = 1.0 + draw(c.wavelength_error)
    p.cag_u, p.cag_v, p.cag_w = draw(c.caglioti_u), draw(c.caglioti_v), draw(c.caglioti_w)
    p.inst_l = draw(c.instrument_lorentz)
    p.size_a = torch.where(chance(c.p_nanocrystalline), draw(c.nanocrystallite_size_nm, log=True),
                           draw(c.crystallite_size_nm, log=True)) * 10.0
    p.strain = draw(c.microstrain)
    p.asym = draw(c.asymmetry)
    ka2_absent = chance(c.p_ka2_absent)
    p.ka2_ratio = torch.where(ka2_absent, draw(c.ka2_residual), draw(c.ka2_ratio))
    p.po_on = chance(c.p_preferred_orientation)
    p.po_r = draw(c.march_dollase_r, log=True)
    p.b_iso = draw(c.b_iso)
    p.pol_k = draw(c.polarisation_k)
    p.impurity_on = chance(c.p_impurity)
    p.n_imp_max = int(c.impurity_peaks[1]) if c.p_impurity > 0 else 0
    p.impurity_count = torch.floor(draw((c.impurity_peaks[0], c.impurity_peaks[1] + 1 - 1e-6)))
    p.bg_level = draw(c.background_level, log=True)
    p.cheb = torch.stack([draw((-c.background_shape, c.background_shape)) for _ in range(3)], dim=1)
    p.rise = draw(c.low_angle_rise)
    p.rise_power = draw(c.low_angle_power)
    p.amorphous_on = chance(c.p_amorphous)
    p.hump_center = draw(c.amorphous_center)
    p.hump_fwhm = draw(c.amorphous_fwhm)
    p.hump_height = draw(c.amorphous_height)
    p.counts = draw(c.peak_counts, log=True)
    p.read_sd = draw(c.read_noise)
    full_range = chance(c.p_full_range)
    p.start = torch.where(full_range, grid[0] - 0.5, draw(c.two_theta_start))
    p.end = torch.where(full_range, grid[-1] + 0.5, draw(c.two_theta_end))
    p.step = draw(c.step, log=True)
    p.subtracted = chance(c.p_background_subtracted)
    p.clip = p.subtracted & chance(c.p_clip)
    p.undershoot = draw(c.subtraction_undershoot)
    p.sub_err = torch.stack([draw((-1.0, 1.0)) for _ in range(2)], dim=1)
    p.sub_err_noise = draw(c.subtraction_error)[:, None]
    p.sub_err_rel = draw(c.subtraction_error_relative)[:, None]
    return p


def _reflection_intensities(d, f2m, cos2, wl, p, c):
    """Stage 2: per-peak integrated intensities at the tube wavelength (Ka1): LP with the
    monochromator term, Debye-Waller, March-Dollase; scaled to the strongest. Returns
    ``(sin theta, intensity, valid)``, each (B, P)."""
    import torch

    device = d.device
    valid = f2m > 0
    d_eff = d * p.d_scale[:, None]
    sin1 = wl[:, None] / (2.0 * d_eff.clamp_min(1e-6))
    valid = valid & (sin1 < 0.9999)
    sin1 = sin1.clamp(max=0.9999)
    theta1 = torch.asin(sin1)
    cos_2t = torch.cos(2.0 * theta1)
    lp = (1.0 + p.pol_k[:, None] * cos_2t**2) / (sin1**2 * torch.cos(theta1))
    intensity = f2m * lp * torch.exp(-p.b_iso[:, None] / (2.0 * d_eff.clamp_min(1e-6) ** 2))
    if cos2 is not None and c.p_preferred_orientation > 0:
        cos2 = cos2.to(device=device, dtype=torch.float32).clamp(0.0, 1.0)
        r = torch.where(p.po_on, p.po_r, torch.ones_like(p.po_r))[:, None]
        intensity = intensity * (r**2 * cos2 + (1.0 - cos2) / r) ** -1.5
    intensity = torch.where(valid, intensity, torch.zeros_like(intensity))
    strongest = intensity.amax(dim=1, keepdim=True).clamp_min(1e-30)
    return sin1, intensity / strongest, valid


def _perturb_reflections(intensity, valid, c, draws):
    """Stage 2b (only where the config asks for it, so the defaults draw nothing more): log-normal
    jitter of each reflection's intensity, then removal of weak reflections at random; rescaled to
    the strongest. Returns ``(intensity, valid)``."""
    import torch

    if c.intensity_jitter > 0:
        intensity = intensity * torch.exp(c.intensity_jitter * draws.randn(*intensity.shape))
        intensity = intensity / intensity.amax(dim=1, keepdim=True).clamp_min(1e-30)
    if c.weak_dropout > 0:
        dropped = (intensity < c.weak_threshold) & (draws.rand(*intensity.shape) < c.weak_dropout)
        valid = valid & ~dropped
        intensity = torch.where(valid, intensity, torch.zeros_like(intensity))
    return intensity, valid


def _add_impurities(sin1, intensity, valid, grid, wl, p, c, draws):
    """Stage 3: weak impurity peaks at random positions inside the grid, as extra columns."""
    import torch

    if p.n_imp_max == 0:
        return sin1, intensity, valid
    batch, device = sin1.shape[0], sin1.device
    slots = torch.arange(p.n_imp_max, device=device)
    present = p.impurity_on[:, None] & (slots[None, :] < p.impurity_count[:, None])
    imp_2t = _uniform(draws.rand(batch, p.n_imp_max), (float(grid[0]), float(grid[-1])))
    imp_int = _uniform(draws.rand(batch, p.n_imp_max), c.impurity_intensity) * present
    # a position on the reference grid -> the tube angle with the same d
    imp_sin1 = (torch.sin(torch.deg2rad(imp_2t) / 2) * wl[:, None] / REFERENCE_WAVELENGTH).clamp(max=0.9999)
    return (torch.cat([sin1, imp_sin1], dim=1), torch.cat([intensity, imp_int], dim=1),
            torch.cat([valid, present & (imp_sin1 < 0.9999)], dim=1))


def _line_profiles(sin1, intensity, valid, grid, wl, p, c):
    """Stage 4: Ka1 and Ka2 lines at the tube, their widths (Caglioti, strain, Scherrer, the
    measurement step) and positions (zero shift, displacement) mapped to the reference scale, summed
    onto the grid. Returns ``(peaks (B, G), grid step, coarse, binned)``."""
    import torch

    batch, n_grid = sin1.shape[0], grid.shape[0]
    ka2_wl_ratio = _ka2_ratio_of(wl)
    lines_sin = [sin1, (sin1 * ka2_wl_ratio[:, None])]
    lines_weight = [intensity, intensity * p.ka2_ratio[:, None]]
    if bool((p.ka2_ratio == 0).all()):
        lines_sin, lines_weight = lines_sin[:1], lines_weight[:1]
    sin_t = torch.cat(lines_sin, dim=1)
    weight = torch.cat(lines_weight, dim=1)
    line_valid = torch.cat([valid] * len(lines_sin), dim=1) & (sin_t < 0.9999) & (weight > 0)
    sin_t = sin_t.clamp(max=0.9999)
    theta_t = torch.asin(sin_t)
    cos_t = torch.cos(theta_t)
    tan_t = sin_t / cos_t
    # profile widths at the tube angle (degrees 2theta)
    gauss = (p.cag_u[:, None] * tan_t**2 + p.cag_v[:, None] * tan_t + p.cag_w[:, None]).clamp_min(1e-6).sqrt()
    scherrer = _DEG * _SCHERRER_K * wl[:, None] / (p.size_a[:, None] * cos_t)
    lorentz = p.inst_l[:, None] + p.strain[:, None] * tan_t + scherrer
    # observed tube angle with zero shift and displacement, then to the reference scale
    two_theta_t = 2.0 * _DEG * theta_t + p.zero_shift[:, None] + p.displacement[:, None] * cos_t
    sin_ref = (REFERENCE_WAVELENGTH / wl[:, None]) * torch.sin(torch.deg2rad(two_theta_t) / 2)
    line_valid = line_valid & (sin_ref.abs() < 0.9999)
    sin_ref = sin_ref.clamp(-0.9999, 0.9999)
    theta_ref = torch.asin(sin_ref)
    position = 2.0 * _DEG * theta_ref
    jacobian = (REFERENCE_WAVELENGTH / wl[:, None]) * torch.cos(torch.deg2rad(two_theta_t) / 2) / torch.cos(theta_ref)
    # The measurement step, as Gaussian broadening of the same variance: the detector integrates
    # over one step (box s), then the file is resampled to the grid as ModelGrid.resample does:
    # bin mean of a finer file (box g) or linear interpolation of a coarser one (triangle, s^2/6).
    step = p.step
    grid_step = float((grid[-1] - grid[0]) / max(n_grid - 1, 1)) if n_grid > 1 else 0.05
    coarse = step > 0
    binned = coarse & (step < grid_step)
    step_var = torch.where(coarse, step**2 / 12, 0.0) + torch.where(
        binned, grid_step**2 / 12, torch.where(coarse, step**2 / 6, 0.0))
    gauss = ((gauss * jacobian) ** 2 + (8 * math.log(2)) * step_var[:, None]).sqrt()
    fwhm, eta = _tch(gauss, lorentz * jacobian)
    weight = torch.where(line_valid, weight, torch.zeros_like(weight))
    # height of a unit-area pseudo-Voigt
    height = weight / (fwhm * (eta * (math.pi / 2) + (1 - eta) * 0.5 * math.sqrt(math.pi / math.log(2))))
    # asymmetry: left half wider at low angle (axial divergence), fading as 1/tan(2theta)
    skew = (p.asym[:, None] * math.tan(math.radians(20.0))
            / torch.tan(torch.deg2rad(position).clamp(0.05, 1.55))).clamp(0.0, 0.5)
    peaks = _scatter_lines(batch, grid, grid_step, weight, position, fwhm, eta, height, skew, c)
    return peaks, grid_step, coarse, binned


def _background(peaks, grid, wl, p):
    """Stage 5: the measured range, peaks scaled to 1 over it, and the background (Chebyshev shape,
    low-angle rise, amorphous hump) relative to the strongest peak. Returns
    ``(peaks, background, measured, xc, t2)`` (xc, t2: the Chebyshev abscissa and T2 on the range)."""
    import torch

    batch = peaks.shape[0]
    start, end = p.start, p.end
    measured = (grid[None, :] >= start[:, None]) & (grid[None, :] <= end[:, None])
    reach = 2 * _DEG * torch.asin((REFERENCE_WAVELENGTH / wl).clamp(max=1.0))  # longer tubes reach less
    measured = measured & (grid[None, :] < reach[:, None])
    peak_max = (peaks * measured).amax(dim=1, keepdim=True).clamp_min(1e-12)
    peaks = peaks / peak_max
    lo = torch.maximum(start, grid[0].expand(batch))[:, None]
    hi = torch.minimum(end, grid[-1].expand(batch))[:, None]
    xc = (2 * (grid[None, :] - lo) / (hi - lo).clamp_min(1e-6) - 1).clamp(-1, 1)
    t2 = 2 * xc**2 - 1
    t3 = 4 * xc**3 - 3 * xc
    cheb = p.cheb
    shape = torch.exp(cheb[:, 0:1] * xc + cheb[:, 1:2] * t2 + cheb[:, 2:3] * t3)
    shape = shape + p.rise[:, None] * (10.0 / grid.clamp_min(1.0))[None, :] ** p.rise_power[:, None]
    hump = torch.exp(-4 * math.log(2) * ((grid[None, :] - p.hump_center[:, None]) / p.hump_fwhm[:, None]) ** 2)
    shape = shape + (p.amorphous_on * p.hump_height)[:, None] * hump
    return peaks, p.bg_level[:, None] * shape, measured, xc, t2


def _counting_noise(clean, grid, grid_step, coarse, binned, p, draws):
    """Stage 6: counting noise at the file's points, resampled like the signal (a bin mean of n
    points is one Poisson sample at n times the rate; interpolated points share the file's noise),
    and read noise. Returns ``(observed, counts per unit)``."""
    import torch

    batch, n_grid = clean.shape[0], grid.shape[0]
    counts, step, start = p.counts, p.step, p.start
    finite_counts = torch.isfinite(counts)
    n_counts = torch.where(finite_counts, counts, torch.ones_like(counts))[:, None]
    safe_step = torch.where(coarse, step, torch.ones_like(step))
    interpolated = coarse & ~binned
    k0 = torch.floor((grid[None, :] - start[:, None]) / safe_step[:, None]).clamp_min(0)
    frac = ((grid[None, :] - start[:, None]) / safe_step[:, None] - k0).clamp(0.0, 1.0)
    frac = torch.where(interpolated[:, None], frac, torch.zeros_like(frac))
    bin_points = torch.where(binned, grid_step / safe_step, torch.ones_like(step))[:, None]
    if bool(finite_counts.any()):
        min_step = float(torch.where(interpolated, step, torch.full_like(step, 1e9)).min())
        span = float(grid[-1] - torch.minimum(start.min(), grid[0]))
        n_table = max(n_grid, int(span / min_step) + 3 if min_step < 1e9 else 0)
        table = draws.randn(batch, n_table)
        k0 = k0.long().clamp(max=n_table - 2)
        z0 = torch.where(interpolated[:, None], table.gather(1, k0), table[:, :n_grid])
        z1 = table.gather(1, k0 + 1)
        rate = clean * (n_counts * bin_points)

        def poisson(z):  # Anscombe: (sqrt(rate + 3/8) + z/2)^2 - 3/8, rounded to whole counts
            return (((rate + 0.375).sqrt() + 0.5 * z) ** 2 - 0.375).round_().clamp_min_(0.0)

        noisy = ((1 - frac) * poisson(z0) + frac * poisson(z1)) / (n_counts * bin_points)
        observed = torch.where(finite_counts[:, None], noisy, clean)
    else:
        observed = clean
    if float(p.read_sd.max()) > 0:
        observed = observed + p.read_sd[:, None] * draws.randn(batch, n_grid)
    return observed, n_counts


def _processing(observed, background, n_counts, measured, xc, t2, p, c):
    """Stage 7: the processing the measured file went through (imperfect background subtraction,
    clipping at 0), the mask, and scaling to a maximum of 1 over the measured points."""
    import torch

    finite_counts = torch.isfinite(p.counts)
    noise_sd = (background / n_counts).sqrt()
    noise_sd = torch.where(finite_counts[:, None], noise_sd, torch.zeros_like(noise_sd))
    error_shape = 0.5 * (p.sub_err[:, 0:1] * xc + p.sub_err[:, 1:2] * t2)  # smooth, within [-1, 1]
    fitted = (background * (1 + p.sub_err_rel * error_shape)
              - noise_sd * p.undershoot[:, None] * (1 + p.sub_err_noise * error_shape))
    observed = torch.where(p.subtracted[:, None], observed - fitted, observed)
    observed = torch.where(p.clip[:, None], observed.clamp_min(0.0), observed)

    mask = measured.to(torch.float32)
    if c.clip_output:
        observed = observed.clamp_min(0.0)
    observed = observed * mask
    top = observed.amax(dim=1, keepdim=True)
    top = torch.where(top > 0, top, torch.ones_like(top))
    pattern = (observed / top).to(torch.float32)
    return pattern, mask


def _scatter_lines(batch, grid, grid_step, weight, position, fwhm, eta, height, skew, config):
    """Sum pseudo-Voigt lines onto the grid: (B, G). Lines are flattened over the batch (padding and
    lines weaker than ``config.min_line_intensity`` of their pattern's strongest are dropped) and
    grouped by width, each group evaluated in a window of grid points that fits its widest line."""
    import torch

    n_grid = grid.shape[0]
    device = grid.device
    keep = weight > config.min_line_intensity * weight.amax(dim=1, keepdim=True)
    keep &= (position > grid[0] - config.max_window_deg) & (position < grid[-1] + config.max_window_deg)
    rows, cols = keep.nonzero(as_tuple=True)
    out = torch.zeros(batch * (n_grid + 1), device=device, dtype=torch.float32)
    if rows.numel() == 0:
        return out.reshape(batch, n_grid + 1)[:, :n_grid]
    position, fwhm, eta, height, skew = (t[rows, cols] for t in (position, fwhm, eta, height, skew))
    # half-window per line in grid points, rounded up to a power of two: a few groups
    max_side = max(int(math.ceil(config.max_window_deg / grid_step)), 2)
    need = (config.window_fwhm * fwhm / grid_step).ceil().clamp(2, max_side)
    group = torch.log2(need).ceil()
    half = fwhm / 2
    left = 1.0 / (half * (1 + skew))
    right = 1.0 / (half * (1 - skew))
    center = torch.searchsorted(grid, position.contiguous())
    base = rows * (n_grid + 1)
    for level in torch.unique(group).tolist():
        members = (group == level).nonzero(as_tuple=True)[0]
        n_side = min(int(2 ** level), max_side)
        offsets = torch.arange(-n_side, n_side + 1, device=device)
        raw = center[members, None] + offsets
        index = raw.clamp(0, n_grid - 1)
        pos, h, e = position[members, None], height[members, None], eta[members, None]
        delta = grid[index] - pos
        inverse = torch.where(delta < 0, left[members, None], right[members, None])
        z2 = delta.mul_(inverse).square_()
        # taper: the Lorentzian minus its value at the window edge, so truncation leaves no step
        edge = ((n_side - 1) * grid_step * left[members, None]) ** 2
        lorentz_edge = 1.0 / (1.0 + edge)
        values = torch.exp(z2 * -math.log(2)).mul_(h * (1 - e))
        values += z2.add_(1.0).reciprocal_().sub_(lorentz_edge).clamp_min_(0.0).mul_(h * e)
        target = torch.where((raw < 0) | (raw >= n_grid), n_grid, index) + base[members, None]
        out.index_add_(0, target.reshape(-1), values.reshape(-1))
    return out.reshape(batch, n_grid + 1)[:, :n_grid]


def _tch(gauss, lorentz):
    """Thompson-Cox-Hastings: total FWHM and Lorentzian fraction eta of a pseudo-Voigt."""
    g, l = gauss, lorentz
    fwhm = (g**5 + 2.69269 * g**4 * l + 2.42843 * g**3 * l**2 + 4.47163 * g**2 * l**3
            + 0.07842 * g * l**4 + l**5) ** 0.2
    q = l / fwhm
    eta = (1.36603 * q - 0.47719 * q**2 + 0.11116 * q**3).clamp(0.0, 1.0)
    return fwhm, eta


def pattern_statistics(two_theta, intensity, n_strongest=10, prominence=0.1):
    """Realism statistics of one pattern (numpy arrays; intensity on any scale, uniform step).

    Returns a dict: ``fwhm`` median FWHM (deg) of the ``n_strongest`` peaks (3-point smoothed;
    ``fwhms`` all of them), ``n_peaks`` peaks with prominence above ``prominence`` x max, ``noise`` median absolute first
    difference / max, ``zeros`` fraction of points exactly 0.
    """
    import numpy as np
    from scipy.signal import find_peaks, peak_widths

    x = np.asarray(two_theta, dtype=float)
    y = np.asarray(intensity, dtype=float)
    top = y.max()
    if not np.isfinite(top) or top <= 0 or len(y) < 5:
        return {"fwhm": float("nan"), "fwhms": np.zeros(0), "n_peaks": 0, "noise": float("nan"),
                "zeros": float("nan")}
    y = y / top
    step = float(np.median(np.diff(x)))
    smooth = np.convolve(y, np.ones(3) / 3, mode="same")
    found, props = find_peaks(smooth, prominence=0.02)
    fwhm, widths = float("nan"), np.zeros(0)
    if len(found):
        strongest = found[np.argsort(props["prominences"])[::-1][:n_strongest]]
        widths = peak_widths(smooth, strongest, rel_height=0.5)[0] * step
        fwhm = float(np.median(widths))
    n_peaks = int((props["prominences"] > prominence).sum()) if len(found) else 0
    return {
        "fwhm": fwhm,
        "fwhms": widths,
        "n_peaks": n_peaks,
        "noise": float(np.median(np.abs(np.diff(y)))),
        "zeros": float(np.mean(y == 0)),
    }
