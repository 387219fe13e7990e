"""Peak search on the measured points of a powder pattern.

:func:`find_peaks` works in five steps, all vectorised over the points and peaks:

1. *Noise model*: the variance of a point is ``alpha + beta * level`` (counting noise on an
   unknown scale plus a floor), fitted to the residuals of a local Savitzky-Golay smooth binned
   by level (robust spreads).
2. *Background*: SNIP clipping (Ryan et al. 1988) with a window of a few peak widths, on the
   data smoothed over a peak width.
3. *Detection*: a matched filter (the negative second derivative of a Gaussian as wide as the
   peaks, widths varying with angle) whose output is compared with its own noise; local maxima
   above ``min_significance`` are candidates. Candidates that sit where a stronger one puts its
   Ka2 line are dropped.
4. *Profile fit*: candidates whose windows overlap form clusters (at most 8 peaks each); one
   batched Levenberg-Marquardt with an analytic Jacobian (the normal matrix is block-diagonal:
   one small dense system per cluster, solved together) fits every cluster at once:
   per peak a Ka1 position and integrated intensity, per cluster a FWHM, a Lorentzian fraction,
   an asymmetry (split pseudo-Voigt, the left half wider for positive values) and a linear
   correction to the background, and one Ka2/Ka1 intensity ratio for the whole pattern (the
   Ka2 line at the angle of the same d for the tube's Ka2 wavelength). Residuals are searched
   again for peaks the first pass missed, insignificant peaks are dropped, and the fit is
   repeated. Uncertainties come from the inverse normal matrix scaled by the reduced chi^2.
5. *Width model and detection limit*: a Caglioti-type fit FWHM^2 = U tan^2 + V tan + W of
   the fitted widths, and the smallest integrated intensity detectable at each angle
   (``detection_sigma`` times the uncertainty of the area of an isolated peak there).

Positions are those of the Ka1 line (or of the single line of monochromatic data), as measured:
no zero-point correction is applied here. A zero shift cannot be told from the peak positions
alone; :func:`csn_plugin.crystallography.index_pattern` refines it with the cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..physics import WAVELENGTHS, resolve_wavelength, two_theta_to_d

_LN2 = math.log(2.0)
_GAUSS_AREA = math.sqrt(math.pi / _LN2)  # area of exp(-ln2 u^2) over u
_TUBES = ("Cu", "Mo", "Cr", "Fe", "Co", "Ag")


@dataclass(frozen=True)
class PeakSet:
    """Peaks found in one pattern, sorted by angle.

    Arrays (one entry per peak): ``two_theta`` (deg, Ka1 line, as measured) and its standard
    uncertainty ``two_theta_sigma``; ``intensity``: integrated intensity of the Ka1 line in the
    input's units x degrees, ``intensity_sigma``; ``fwhm`` (deg), ``eta`` (Lorentzian fraction),
    ``height`` (Ka1 peak height above the background), ``significance`` (intensity /
    intensity_sigma). ``wavelength``: the wavelength the positions belong to (the tube's Ka1
    when a Ka2 line was found), ``ka2_wavelength`` and ``ka2_ratio`` (0 for monochromatic data).
    ``width_model``: (U, V, W) with FWHM^2 = U tan^2(theta) + V tan(theta) + W (degrees^2).
    ``limit_two_theta``, ``limit_intensity``: the detection limit (integrated intensity) on a
    grid over the measured range; :meth:`detection_limit` interpolates it.
    """

    two_theta: np.ndarray
    two_theta_sigma: np.ndarray
    intensity: np.ndarray
    intensity_sigma: np.ndarray
    fwhm: np.ndarray
    eta: np.ndarray
    height: np.ndarray
    significance: np.ndarray
    wavelength: float
    ka2_wavelength: float
    ka2_ratio: float
    width_model: tuple
    limit_two_theta: np.ndarray
    limit_intensity: np.ndarray
    two_theta_range: tuple
    info: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.two_theta)

    @property
    def d(self) -> np.ndarray:
        """d-spacings (angstrom) of the peaks at ``wavelength``."""
        return two_theta_to_d(self.two_theta, self.wavelength)

    @property
    def relative_intensity(self) -> np.ndarray:
        """Integrated intensities scaled to 100 for the strongest peak."""
        if not len(self):
            return np.zeros(0)
        return 100 * self.intensity / self.intensity.max()

    def fwhm_at(self, two_theta) -> np.ndarray:
        """FWHM (deg) of the width model at these angles."""
        u, v, w = self.width_model
        tan = np.tan(np.radians(np.asarray(two_theta, dtype=float)) / 2)
        return np.sqrt(np.clip(u * tan**2 + v * tan + w, 1e-6, None))

    def detection_limit(self, two_theta) -> np.ndarray:
        """Smallest integrated intensity (same units as ``intensity``) detectable at these
        angles; infinite outside the measured range."""
        t = np.asarray(two_theta, dtype=float)
        limit = np.interp(t, self.limit_two_theta, self.limit_intensity)
        outside = (t < self.two_theta_range[0]) | (t > self.two_theta_range[1])
        return np.where(outside, np.inf, limit)

    def subset(self, keep) -> "PeakSet":
        """The peaks selected by a boolean mask or index array."""
        keep = np.asarray(keep)
        arrays = {name: getattr(self, name)[keep] for name in (
            "two_theta", "two_theta_sigma", "intensity", "intensity_sigma", "fwhm", "eta", "height",
            "significance")}
        return PeakSet(**arrays, wavelength=self.wavelength, ka2_wavelength=self.ka2_wavelength,
                       ka2_ratio=self.ka2_ratio, width_model=self.width_model,
                       limit_two_theta=self.limit_two_theta, limit_intensity=self.limit_intensity,
                       two_theta_range=self.two_theta_range, info=dict(self.info))

    @classmethod
    def from_positions(cls, two_theta, wavelength, intensity=None, sigma=0.01, fwhm=0.1,
                       detection_limit=None) -> "PeakSet":
        """A peak set from a plain list of positions (deg) and optional intensities, e.g. a
        published peak list; uncertainties ``sigma`` (deg), a constant width and limit."""
        t = np.sort(np.asarray(two_theta, dtype=float))
        order = np.argsort(np.asarray(two_theta, dtype=float))
        n = len(t)
        inten = np.ones(n) * 100 if intensity is None else np.asarray(intensity, dtype=float)[order]
        limit = (0.01 * inten.max() if n else 1.0) if detection_limit is None else float(detection_limit)
        lo, hi = (float(t.min()) - 1, float(t.max()) + 1) if n else (5.0, 90.0)
        return cls(t, np.full(n, float(sigma)), inten, np.full(n, limit / 3), np.full(n, float(fwhm)),
                   np.full(n, 0.5), inten / fwhm, inten / (limit / 3), resolve_wavelength(wavelength),
                   0.0, 0.0, (0.0, 0.0, float(fwhm) ** 2), np.array([lo, hi]), np.array([limit, limit]),
                   (lo, hi), {"source": "positions"})


# ----------------------------------------------------------------------------------- helpers


def ka_lines(wavelength):
    """(Ka1, Ka2) wavelengths of the tube whose Ka1 or Ka mean is ``wavelength`` (within
    0.003 A), else (wavelength, 0.0): monochromatic."""
    for tube in _TUBES:
        ka1, ka2, mean = (WAVELENGTHS[f"{tube}Ka1"], WAVELENGTHS[f"{tube}Ka2"], WAVELENGTHS[f"{tube}Ka"])
        if abs(wavelength - ka1) < 0.003 or abs(wavelength - mean) < 0.003:
            return ka1, ka2
    return wavelength, 0.0


def _ka2_position(two_theta, ratio):
    """2theta of the Ka2 line of a Ka1 line at ``two_theta`` (deg) and its derivative."""
    half = np.radians(two_theta) / 2
    s = np.clip(ratio * np.sin(half), -0.999999, 0.999999)
    pos = np.degrees(2 * np.arcsin(s))
    deriv = ratio * np.cos(half) / np.sqrt(1 - s * s)
    return pos, deriv


def _savgol_coeffs(window, order):
    """Savitzky-Golay smoothing weights (centre value of a local polynomial fit)."""
    u = np.arange(window) - window // 2
    vander = np.vander(u, order + 1, increasing=True)
    return np.linalg.pinv(vander)[0]


def _savgol_filter(y, window, order):
    weights = _savgol_coeffs(window, order)
    pad = window // 2
    padded = np.concatenate([np.full(pad, y[0]), y, np.full(pad, y[-1])])
    return np.convolve(padded, weights[::-1], mode="valid")


def _savgol_residual_factor(window, order):
    coeffs = -_savgol_coeffs(window, order)
    coeffs[window // 2] += 1
    return float(np.sum(coeffs**2))


def _local_maxima(values, height):
    """Indices of local maxima (plateaus: their first point) above ``height``."""
    if len(values) < 3:
        return np.zeros(0, dtype=int)
    mid = values[1:-1]
    is_max = (mid > values[:-2]) & (mid >= values[2:]) & (mid > height)
    return np.flatnonzero(is_max) + 1


def _noise_model(y, step_points=7):
    """(alpha, beta): variance of a point ~ alpha + beta * max(level, 0)."""
    n = len(y)
    window = step_points if n > step_points else (n // 2) * 2 - 1
    smooth = _savgol_filter(y, window, 4 if window > 5 else 2)
    residual = (y - smooth) / math.sqrt(_savgol_residual_factor(window, 4 if window > 5 else 2))
    level = smooth
    edges = np.quantile(level, np.linspace(0, 1, 13))
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (level >= lo) & (level <= hi)
        if sel.sum() < 20:
            continue
        r = residual[sel]
        mad = 1.4826 * np.median(np.abs(r - np.median(r)))
        rows.append((max(np.median(level[sel]), 0.0), mad**2))
    rows = np.array(rows) if rows else np.array([[0.0, np.var(residual)]])
    top = float(np.abs(y).max()) or 1.0
    if len(rows) >= 3 and np.ptp(rows[:, 0]) > 0:
        # robust (least absolute deviation-ish) line: iteratively reweighted
        a = np.column_stack([np.ones(len(rows)), rows[:, 0]])
        coef = np.linalg.lstsq(a, rows[:, 1], rcond=None)[0]
        for _ in range(5):
            r = np.abs(rows[:, 1] - a @ coef) + 1e-12 * top**2
            w = 1 / r
            coef = np.linalg.lstsq(a * w[:, None] ** 0.5, rows[:, 1] * w**0.5, rcond=None)[0]
        alpha, beta = float(coef[0]), float(coef[1])
    else:
        alpha, beta = float(rows[:, 1].min()), 0.0
    floor = max(float(np.min(rows[:, 1])), (1e-4 * top) ** 2)
    alpha = max(alpha, floor)
    beta = max(beta, 0.0)
    return alpha, beta


def _snip(y, iterations):
    """SNIP background: repeated clipping to the mean of neighbours at distance 1..m..1."""
    b = y.copy()
    n = len(b)
    for m in list(range(1, iterations + 1)) + list(range(iterations - 1, 0, -1)):
        if 2 * m >= n:
            continue
        mean = 0.5 * (b[: n - 2 * m] + b[2 * m:])
        b[m: n - m] = np.minimum(b[m: n - m], mean)
    return b


def _uniform_grid(x, y):
    step = float(np.median(np.diff(x)))
    if np.allclose(np.diff(x), step, rtol=0.02, atol=1e-6):
        return x, y, step, False
    grid = np.arange(x[0], x[-1] + step / 2, step)
    return grid, np.interp(grid, x, y), step, True


def _estimate_fwhm(x, net, sigma_pt, step):
    """Median FWHM (deg) of the strongest isolated maxima of the smoothed net signal, and a
    log-linear trend in 2theta fitted to them."""
    smooth = np.convolve(net, np.ones(3) / 3, mode="same")
    found = _local_maxima(smooth, 8 * np.median(sigma_pt))
    if len(found) < 1:
        return 0.1, (math.log(0.1), 0.0)
    chosen = found[np.argsort(smooth[found])[::-1][:25]]
    widths = np.zeros(len(chosen))
    for i, c in enumerate(chosen):  # full width at half height, walking out from the top
        half = 0.5 * smooth[c]
        lo = c
        while lo > 0 and smooth[lo] > half:
            lo -= 1
        hi = c
        while hi < len(smooth) - 1 and smooth[hi] > half:
            hi += 1
        widths[i] = (hi - lo) * step
    good = (widths > 1.5 * step) & (widths < 5.0)
    if good.sum() < 1:
        return 0.1, (math.log(0.1), 0.0)
    widths, pos = widths[good], x[chosen[good]]
    median = float(np.median(widths))
    if len(widths) >= 6 and np.ptp(pos) > 20:
        coef = np.polyfit(pos, np.log(widths), 1)
        slope = float(np.clip(coef[0], -0.01, 0.03))
        intercept = float(np.median(np.log(widths) - slope * pos))
        return median, (intercept, slope)
    return median, (math.log(median), 0.0)


def _matched_width(net, sigma_pt, step, top=8):
    """The FWHM (deg) at which the matched filter finds the strongest peaks most significant
    (mean of the ``top`` local maxima), over widths from 2 steps to 2 deg: a width estimate that
    noise does not bias (walking out from a noisy maximum to half height stops at the first dip,
    so broad peaks at tens of counts were measured a tenth of their width and then not found)."""
    best, best_score = None, -np.inf
    for width in np.geomspace(2 * step, 2.0, 16):
        out, energy = _second_derivative_filter(net, step, width / step)
        significance = out / (math.sqrt(energy) * sigma_pt)
        found = _local_maxima(significance, 3.0)
        if not len(found):
            continue
        score = float(np.mean(np.sort(significance[found])[::-1][:top]))
        if score > best_score:
            best, best_score = float(width), score
    return best


def _second_derivative_filter(net, step, fwhm_points):
    """Matched-filter output (negative 2nd derivative of Gaussian) and the sum of squared
    kernel weights, for one width in points."""
    from scipy.ndimage import gaussian_filter1d

    s = max(fwhm_points / 2.3548 * 0.8, 0.7)
    out = -gaussian_filter1d(net, s, order=2, mode="nearest")
    # kernel energy: sum of squared weights of the discrete kernel
    radius = int(4 * s + 1)
    u = np.arange(-radius, radius + 1)
    g = np.exp(-0.5 * (u / s) ** 2) / (s * math.sqrt(2 * math.pi))
    k = (u**2 / s**4 - 1 / s**2) * g
    return out, float(np.sum(k**2))


def _caglioti(two_theta, fwhm, weights=None):
    """(U, V, W) fitted to FWHM^2 = U tan^2 + V tan + W, robustly; constant fallback."""
    tan = np.tan(np.radians(two_theta) / 2)
    w2 = fwhm**2
    if len(fwhm) >= 6 and np.ptp(tan) > 0.1:
        a = np.column_stack([tan**2, tan, np.ones_like(tan)])
        wt = np.ones(len(fwhm)) if weights is None else weights
        coef = np.linalg.lstsq(a * wt[:, None], w2 * wt, rcond=None)[0]
        for _ in range(4):
            r = np.abs(w2 - a @ coef)
            scale = np.median(r) + 1e-9
            wt = 1 / np.maximum(r / scale, 1.0)
            coef = np.linalg.lstsq(a * wt[:, None], w2 * wt, rcond=None)[0]
        model = a @ coef
        grid = np.linspace(tan.min(), tan.max(), 20)
        if np.all(coef[0] * grid**2 + coef[1] * grid + coef[2] > 0) and np.all(model > 0):
            return tuple(float(c) for c in coef)
    return (0.0, 0.0, float(np.median(fwhm)) ** 2 if len(fwhm) else 0.01)


# ------------------------------------------------------------------------------ profile model


class _Problem:
    """All clusters of a pattern as one least-squares problem with an analytic sparse Jacobian."""

    def __init__(self, x, y, bg, sigma, centres, cluster_of, n_clusters, widths, ka2_ratio_wl,
                 ka2_ratio, fit_ratio, windows):
        self.x, self.y, self.bg, self.sigma = x, y, bg, sigma
        self.n_peaks = len(centres)
        self.n_clusters = n_clusters
        self.cluster_of = cluster_of
        self.wl_ratio = ka2_ratio_wl
        self.fit_ratio = fit_ratio
        self.ratio0 = ka2_ratio
        self.doublet = ka2_ratio_wl > 0 and (ka2_ratio > 0 or fit_ratio)
        # point ranges of clusters
        lo, hi = windows
        start = np.searchsorted(x, lo)
        stop = np.searchsorted(x, hi, side="right")
        stop[:-1] = np.minimum(stop[:-1], start[1:])  # disjoint point ranges
        self.cluster_points = [np.arange(a, b) for a, b in zip(start, stop)]
        self.cluster_centre = np.array([0.5 * (x[p[0]] + x[p[-1]]) if len(p) else 0.0 for p in self.cluster_points])
        self.cluster_halfspan = np.array([max(0.5 * (x[p[-1]] - x[p[0]]), 1e-3) if len(p) else 1.0 for p in self.cluster_points])
        # residual rows: the union of cluster points (clusters are disjoint in points by
        # construction, overlapping windows having been merged)
        self.rows = np.concatenate(self.cluster_points) if n_clusters else np.zeros(0, dtype=int)
        self.row_cluster = np.concatenate([np.full(len(p), c) for c, p in enumerate(self.cluster_points)]) if n_clusters else np.zeros(0, dtype=int)
        # (peak, point) pairs: each peak on every point of its cluster
        # (peak, point) pairs: each peak on the points of its cluster within +-6 widths of
        # its Ka1 and Ka2 lines (the widths may grow up to 3x in the fit; beyond, the tails
        # are below 1 % of the height)
        offsets = np.cumsum([0] + [len(p) for p in self.cluster_points])
        far = _ka2_position(centres, ka2_ratio_wl)[0] if self.doublet else centres
        p_lo = np.searchsorted(x, centres - 6.0 * widths)
        p_hi = np.searchsorted(x, far + 6.0 * widths, side="right")
        c_start = np.array([p[0] if len(p) else 0 for p in self.cluster_points])
        c_stop = np.array([p[-1] + 1 if len(p) else 0 for p in self.cluster_points])
        a = np.maximum(p_lo, c_start[cluster_of])
        b = np.maximum(np.minimum(p_hi, c_stop[cluster_of]), a)
        counts = b - a
        self.pair_peak = np.repeat(np.arange(len(centres)), counts)
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        self.pair_row = (np.repeat(a - c_start[cluster_of] + offsets[cluster_of], counts) + within).astype(int)
        self.pair_cluster = cluster_of[self.pair_peak]
        self.xr = x[self.rows]
        self.yr = (y - bg)[self.rows]
        self.sr = sigma[self.rows]
        # parameter layout (flat), and each parameter's cluster and place in its cluster's block
        P, C = self.n_peaks, n_clusters
        self.fits_ratio = bool(self.doublet and fit_ratio)
        self.i_pos = np.arange(P)
        self.i_area = P + np.arange(P)
        self.i_w = 2 * P + np.arange(C)
        self.i_eta = 2 * P + C + np.arange(C)
        self.i_skew = 2 * P + 2 * C + np.arange(C)
        self.i_b0 = 2 * P + 3 * C + np.arange(C)
        self.i_b1 = 2 * P + 4 * C + np.arange(C)
        self.i_ratio = 2 * P + 5 * C + np.arange(C)
        self.n_params = 2 * P + 5 * C + (C if self.fits_ratio else 0)
        n_in = np.bincount(cluster_of, minlength=C)
        rank = np.arange(P) - np.concatenate([[0], np.cumsum(n_in)[:-1]])[cluster_of]
        shared = 6 if self.fits_ratio else 5
        self.block_sizes = 2 * n_in + shared
        col_cluster = [cluster_of, cluster_of] + [np.arange(C)] * shared
        col_local = [rank, n_in[cluster_of] + rank] + [2 * n_in + j for j in range(shared)]
        self.col_cluster = np.concatenate(col_cluster).astype(int)
        self.col_local = np.concatenate(col_local).astype(int)

    def unpack(self, theta):
        P, C = self.n_peaks, self.n_clusters
        pos = theta[:P]
        area = theta[P:2 * P]
        w = theta[2 * P:2 * P + C]
        eta = theta[2 * P + C:2 * P + 2 * C]
        skew = theta[2 * P + 2 * C:2 * P + 3 * C]
        b0 = theta[2 * P + 3 * C:2 * P + 4 * C]
        b1 = theta[2 * P + 4 * C:2 * P + 5 * C]
        if self.fits_ratio:
            ratio = theta[2 * P + 5 * C:]
        else:
            ratio = np.full(C, self.ratio0 if self.doublet else 0.0)
        return pos, area, w, eta, skew, b0, b1, ratio

    def _line(self, centre, pairs_w, pairs_eta, pairs_skew, xp):
        """Unit-area split pseudo-Voigt at the pair points and its partial derivatives
        (d/dcentre, d/dw, d/deta, d/dskew)."""
        half = 0.5 * pairs_w
        delta = xp - centre
        left = delta < 0
        side = np.where(left, 1 + pairs_skew, 1 - pairs_skew)
        hs = half * side
        u = delta / hs
        u2 = u * u
        gauss = np.exp(-_LN2 * u2)
        lor = 1.0 / (1.0 + u2)
        norm_den = pairs_eta * math.pi + (1 - pairs_eta) * _GAUSS_AREA
        height = 1.0 / (half * norm_den)
        shape = pairs_eta * lor + (1 - pairs_eta) * gauss
        dshape_du = pairs_eta * (-2 * u * lor * lor) + (1 - pairs_eta) * (-2 * _LN2 * u * gauss)
        f = height * shape
        d_centre = height * dshape_du * (-1.0 / hs)
        d_w = -(height / pairs_w) * (shape + u * dshape_du)
        d_eta = height * (lor - gauss) - f * (math.pi - _GAUSS_AREA) / norm_den
        du_dskew = np.where(left, -u / (1 + pairs_skew), u / (1 - pairs_skew))
        d_skew = height * dshape_du * du_dskew
        return f, d_centre, d_w, d_eta, d_skew

    def model(self, theta, with_jac=False, pairs=None):
        """Model values per row (and the Jacobian's triplets): ``pairs``, a bool per pair point,
        evaluates the lines of those only (the rows of the other clusters then hold their
        background alone)."""
        pos, area, w, eta, skew, b0, b1, ratio = self.unpack(theta)
        pp, pc, rows = self.pair_peak, self.pair_cluster, self.pair_row
        if pairs is not None:
            pp, pc, rows = pp[pairs], pc[pairs], rows[pairs]
        xp = self.xr[rows]
        pw, pe, ps = w[pc], eta[pc], skew[pc]
        ratio = ratio[pc]
        f1, dc1, dw1, de1, ds1 = self._line(pos[pp], pw, pe, ps, xp)
        a = area[pp]
        values = a * f1
        if self.doublet:
            p2, dp2 = _ka2_position(pos, self.wl_ratio)  # per peak, then per pair point
            p2, dp2 = p2[pp], dp2[pp]
            f2, dc2, dw2, de2, ds2 = self._line(p2, pw, pe, ps, xp)
            values = values + a * ratio * f2
        n_rows = len(self.rows)
        model = np.bincount(rows, weights=values, minlength=n_rows)
        t = (self.xr - self.cluster_centre[self.row_cluster]) / self.cluster_halfspan[self.row_cluster]
        model = model + b0[self.row_cluster] + b1[self.row_cluster] * t
        if not with_jac:
            return model
        cols, vals, rr = [], [], []

        def add(col, v, r=rows):
            cols.append(col)
            vals.append(v)
            rr.append(r)

        if self.doublet:
            add(self.i_pos[pp], a * (dc1 + ratio * dc2 * dp2))
            add(self.i_area[pp], f1 + ratio * f2)
            add(self.i_w[pc], a * (dw1 + ratio * dw2))
            add(self.i_eta[pc], a * (de1 + ratio * de2))
            add(self.i_skew[pc], a * (ds1 + ratio * ds2))
            if self.fits_ratio:
                add(self.i_ratio[pc], a * f2)
        else:
            add(self.i_pos[pp], a * dc1)
            add(self.i_area[pp], f1)
            add(self.i_w[pc], a * dw1)
            add(self.i_eta[pc], a * de1)
            add(self.i_skew[pc], a * ds1)
        all_rows = np.arange(n_rows)
        add(self.i_b0[self.row_cluster], np.ones(n_rows), all_rows)
        add(self.i_b1[self.row_cluster], t, all_rows)
        return model, (np.concatenate(rr), np.concatenate(cols), np.concatenate(vals))

    def residual(self, theta):
        return (self.model(theta) - self.yr) / self.sr

    def jacobian(self, theta):
        from scipy.sparse import coo_matrix

        _, (r, c, v) = self.model(theta, with_jac=True)
        return coo_matrix((v / self.sr[r], (r, c)), shape=(len(self.rows), self.n_params)).tocsr()


def _cluster(centres, widths, ka2_wl_ratio, doublet, gap=4.0, max_peaks=8):
    """(cluster index per sorted peak, window lo and hi per cluster): windows
    [c - gap w, ka2(c) + gap w] that overlap form a cluster; clusters of more than
    ``max_peaks`` are cut between the peaks farthest apart (relative to their widths), the
    window edges there put half way (the tails across a cut are neglected)."""
    lo = centres - gap * widths
    far = _ka2_position(centres, ka2_wl_ratio)[0] if doublet else centres
    hi = far + gap * widths
    run_hi = np.maximum.accumulate(hi)
    new = np.concatenate([[True], lo[1:] > run_hi[:-1]])
    # split long clusters
    cut_at = []
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], len(centres))
    for a, b in zip(starts, ends):
        if b - a <= max_peaks:
            continue
        pieces = [(a, b)]
        while any(q - p > max_peaks for p, q in pieces):
            p, q = next(pq for pq in pieces if pq[1] - pq[0] > max_peaks)
            gaps = (centres[p + 1:q] - far[p:q - 1]) / (widths[p + 1:q] + widths[p:q - 1])
            # keep pieces of at least 2 peaks where possible
            k = p + 1 + int(np.argmax(gaps))
            pieces.remove((p, q))
            pieces += [(p, k), (k, q)]
            cut_at.append(k)
    new = new.copy()
    new[cut_at] = True
    cluster_of = np.cumsum(new) - 1
    n = int(cluster_of[-1]) + 1 if len(centres) else 0
    c_lo = np.full(n, np.inf)
    c_hi = np.full(n, -np.inf)
    np.minimum.at(c_lo, cluster_of, lo)
    np.maximum.at(c_hi, cluster_of, hi)
    for k in cut_at:  # half way between the neighbours across the cut
        mid = 0.5 * (far[k - 1] + centres[k])
        c_hi[cluster_of[k - 1]] = mid
        c_lo[cluster_of[k]] = mid
    return cluster_of, c_lo, c_hi


def _batched_lm(prob, theta, lower, upper, iterations=25):
    """Levenberg-Marquardt on every cluster at once: the normal matrix is block-diagonal (one
    block per cluster), so each cluster takes its own damped Gauss-Newton steps, solved as a
    batch of small dense systems; steps are clipped to the bounds."""
    C = prob.n_clusters
    col_cluster, col_local, sizes = prob.col_cluster, prob.col_local, prob.block_sizes
    kmax = int(sizes.max())
    rmax = int(max(len(p) for p in prob.cluster_points))
    row_local = np.concatenate([np.arange(len(p)) for p in prob.cluster_points])

    def cluster_cost(res):
        return np.bincount(prob.row_cluster, weights=res * res, minlength=C)

    def blocks(evaluated):
        """Per-cluster dense Jacobian blocks from ``prob.model(theta, with_jac=True)``."""
        _, (r, c, v) = evaluated
        v = v / prob.sr[r]
        flat = (prob.row_cluster[r] * rmax + row_local[r]) * kmax + col_local[c]
        return np.bincount(flat, weights=v, minlength=C * rmax * kmax).reshape(C, rmax, kmax)

    res = prob.residual(theta)
    cost = cluster_cost(res)
    lam = np.full(C, 1e-3)
    eye = np.eye(kmax)
    pad = np.arange(kmax)[None, :] >= sizes[:, None]  # padded columns of each block
    active = np.ones(C, dtype=bool)
    jac = blocks(prob.model(theta, with_jac=True))
    for _ in range(iterations):
        rpad = np.zeros((C, rmax))
        rpad[prob.row_cluster, row_local] = res
        jt = jac.transpose(0, 2, 1)
        normal = jt @ jac
        grad = (jt @ rpad[:, :, None])[:, :, 0]
        diag = np.einsum("ckk->ck", normal).copy()
        diag = np.where(pad, 1.0, np.maximum(diag, 1e-12))
        damped = normal + (lam[:, None] * diag)[:, :, None] * eye + np.where(pad, 1.0, 0.0)[:, :, None] * eye
        try:
            step = -np.linalg.solve(damped, grad[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step = -grad / diag
        step[~active] = 0.0
        delta = step[col_cluster, col_local]
        trial = np.clip(theta + delta, lower, upper)
        # values and derivatives in one evaluation, of the clusters still moving only (a cluster's
        # rows and block depend on its own parameters; the others are not updated)
        at_trial = prob.model(trial, with_jac=True, pairs=None if active.all() else active[prob.pair_cluster])
        res_trial = (at_trial[0] - prob.yr) / prob.sr
        cost_trial = cluster_cost(res_trial)
        better = (cost_trial < cost) & active
        if better.any():
            take = better[col_cluster]
            theta = np.where(take, trial, theta)
            rel = (cost - cost_trial) / np.maximum(cost, 1e-30)
            converged = better & (rel < 1e-5)
            cost = np.where(better, cost_trial, cost)
            # a row and a block depend on their own cluster's parameters only
            res = np.where(better[prob.row_cluster], res_trial, res)
            jac = np.where(better[:, None, None], blocks(at_trial), jac)
            active &= ~converged
        lam = np.where(better, np.maximum(lam / 3, 1e-7), np.minimum(lam * 4, 1e8))
        active &= lam < 1e7
        if not active.any():
            break
    normal = jac.transpose(0, 2, 1) @ jac
    return theta, res, normal


def _fit(x, y, bg, sigma, centres, areas, widths, ka2_wl_ratio, ka2_ratio, fit_ratio):
    """Fit the peaks; returns dict of arrays (per peak, in centre order) and the problem."""
    order = np.argsort(centres)
    centres, areas, widths = centres[order], areas[order], widths[order]
    doublet = ka2_wl_ratio > 0 and (ka2_ratio > 0 or fit_ratio)
    cluster_of, c_lo, c_hi = _cluster(centres, widths, ka2_wl_ratio, doublet)
    n_clusters = len(c_lo)
    prob = _Problem(x, y, bg, sigma, centres, cluster_of, n_clusters, widths, ka2_wl_ratio, ka2_ratio, fit_ratio,
                    (c_lo, c_hi))
    P, C = len(centres), n_clusters
    wc = np.zeros(C)
    np.maximum.at(wc, cluster_of, widths)
    scale_y = max(float(np.abs(y - bg).max()), 1e-12)
    theta0 = np.concatenate([centres, np.maximum(areas, 1e-12), wc, np.full(C, 0.5), np.zeros(C),
                             np.zeros(C), np.zeros(C)])
    lower = np.concatenate([centres - 0.6 * widths, np.zeros(P), 0.35 * wc, np.zeros(C), np.full(C, -0.4),
                            np.full(C, -scale_y), np.full(C, -scale_y)])
    upper = np.concatenate([centres + 0.6 * widths, np.full(P, np.inf), 3.0 * wc, np.ones(C), np.full(C, 0.6),
                            np.full(C, scale_y), np.full(C, scale_y)])
    if prob.fits_ratio:
        theta0 = np.concatenate([theta0, np.full(C, ka2_ratio)])
        lower = np.concatenate([lower, np.zeros(C)])
        upper = np.concatenate([upper, np.full(C, 0.8)])
    theta, res, normal = _batched_lm(prob, theta0, lower, upper)
    pos, area, w, eta, skew, b0, b1, ratio = prob.unpack(theta)
    dof = max(len(prob.rows) - prob.n_params, 1)
    chi2 = float(np.sum(res**2)) / dof
    sizes = prob.block_sizes
    kmax = normal.shape[1]
    pad = np.arange(kmax)[None, :] >= sizes[:, None]
    normal = normal + np.where(pad, 1.0, 0.0)[:, :, None] * np.eye(kmax)
    # reduced chi^2 per cluster (a misfit somewhere must not inflate every uncertainty)
    cost_c = np.bincount(prob.row_cluster, weights=res * res, minlength=prob.n_clusters)
    rows_c = np.bincount(prob.row_cluster, minlength=prob.n_clusters)
    chi2_c = cost_c / np.maximum(rows_c - sizes, 1)
    cov = np.linalg.pinv(normal, rcond=1e-12, hermitian=True) * np.maximum(chi2_c, 1.0)[:, None, None]
    var = np.einsum("ckk->ck", cov)
    var_flat = var[prob.col_cluster, prob.col_local]
    sd = np.sqrt(np.clip(var_flat, 0, None))
    pos_sigma = sd[prob.i_pos]
    area_sigma = _bounded_area_sigma(sd[prob.i_area], normal, prob, np.maximum(chi2_c, 1.0))
    ratio_global = ka2_ratio if doublet else 0.0
    if prob.fits_ratio:
        rs = sd[prob.i_ratio]
        good = np.isfinite(rs) & (rs > 0) & (rs < 0.3)
        if good.any():
            wts = 1 / rs[good] ** 2
            ratio_global = float(np.clip(np.sum(wts * ratio[good]) / np.sum(wts), 0.0, 0.8))
    return {
        "two_theta": pos, "intensity": area, "two_theta_sigma": pos_sigma, "intensity_sigma": area_sigma,
        "fwhm": w[cluster_of], "eta": eta[cluster_of], "skew": skew[cluster_of], "ratio": ratio_global,
        "cluster": cluster_of, "chi2": chi2, "problem": prob, "theta": theta,
    }


def _bounded_area_sigma(area_sigma, normal, prob, chi2_c, factor=3.0):
    """Area uncertainties no larger than ``factor`` x those of the linear part of the model
    (areas and the local background, profile shapes fixed). Broad, overlapping peaks in noisy
    data make the full normal matrix near-singular (condition 1e10-1e12: widths, positions and
    the background trade off), and its inverse then calls every peak insignificant, so that a
    pattern whose strongest line stands 15 sigma above the noise came out with no peaks."""
    out = area_sigma.copy()
    b0_local = prob.col_local[prob.i_b0]
    b1_local = prob.col_local[prob.i_b1]
    area_cluster, area_local = prob.col_cluster[prob.i_area], prob.col_local[prob.i_area]
    for c in range(prob.n_clusters):
        mine = np.flatnonzero(area_cluster == c)
        cols = np.concatenate([area_local[mine], [b0_local[c], b1_local[c]]])
        block = normal[c][np.ix_(cols, cols)]
        try:
            linear = np.sqrt(np.clip(np.diag(np.linalg.pinv(block, rcond=1e-12, hermitian=True))[:len(mine)], 0, None)
                             * chi2_c[c])
        except np.linalg.LinAlgError:
            continue
        out[mine] = np.where(np.isfinite(linear) & (linear > 0), np.minimum(out[mine], factor * linear), out[mine])
    return out


def _line_height(area, fwhm, eta):
    return area / (0.5 * fwhm * (eta * math.pi + (1 - eta) * _GAUSS_AREA))


def _detect(x_u, net_u, sigma_u, step, width_fn, min_significance, exclude=None):
    """Candidate peak positions (deg), rough areas and widths from the matched filter."""
    widths_deg = width_fn(x_u)
    # bands of nearly constant width
    levels = np.round(np.log(widths_deg / step) / math.log(1.25))
    response = np.zeros_like(net_u)
    noise = np.zeros_like(net_u)
    for level in np.unique(levels):
        sel = levels == level
        fwhm_pts = float(np.median(widths_deg[sel]) / step)
        out, energy = _second_derivative_filter(net_u, step, fwhm_pts)
        response[sel] = out[sel]
        noise[sel] = math.sqrt(energy)
    significance = response / (noise * sigma_u)
    found = _local_maxima(significance, min_significance)
    if exclude is not None and len(found):
        found = found[~exclude(x_u[found])]
    pos = x_u[found]
    w = widths_deg[found]
    # rough area from the net height at the maximum
    heights = np.maximum(net_u[found], sigma_u[found])
    areas = heights * 0.5 * w * (0.5 * math.pi + 0.5 * _GAUSS_AREA)
    return pos, areas, w, significance[found]


FEW_PEAKS = 4  # fewer peaks than this: search again at the matched-filter width


def _significance(area, sigma):
    """area / sigma, infinite where the fit left no uncertainty (a noiseless line), without a
    division warning."""
    sigma = np.asarray(sigma, dtype=float)
    out = np.where(np.asarray(area) > 0, np.inf, 0.0)
    np.divide(area, sigma, out=out, where=sigma > 0)
    return out


def find_peaks(two_theta, intensity, wavelength="CuKa1", *, ka2="auto", min_significance=3.0, detect_significance=2.0,
               detection_sigma=3.0, max_peaks=250, esd=None) -> PeakSet:
    """Find and fit the peaks of a measured pattern.

    two_theta (deg, increasing), intensity (any scale; background-subtracted or raw);
    wavelength: angstrom or a name. ka2: "auto" (look for Ka2 lines when the wavelength is a
    tube's Ka1 or Ka mean), True (the tube's doublet with a fitted ratio), False
    (monochromatic). min_significance: the least integrated intensity over its uncertainty
    a reported peak has. detection_sigma: the detection limit is this many standard
    uncertainties of an isolated peak's area. esd: optional standard uncertainties per point.

    The peak width is first measured at half height of the strongest maxima; when that finds
    fewer than FEW_PEAKS peaks and the matched filter says the peaks are much broader (broad
    lines at tens of counts, where noise stops the half-height walk early), the search is
    repeated at the matched-filter width and the answer with more peaks is kept.
    """
    options = dict(ka2=ka2, min_significance=min_significance, detect_significance=detect_significance,
                   detection_sigma=detection_sigma, max_peaks=max_peaks, esd=esd)
    found = _find_peaks(two_theta, intensity, wavelength, **options)
    if len(found.two_theta) >= FEW_PEAKS:
        return found
    measured = float(np.median(found.fwhm)) if len(found.fwhm) else found.width_model[2] ** 0.5
    again = _find_peaks(two_theta, intensity, wavelength, width="matched", broader_than=2.5 * measured, **options)
    return again if again is not None and len(again.two_theta) > len(found.two_theta) else found


def _find_peaks(two_theta, intensity, wavelength, *, ka2, min_significance, detect_significance, detection_sigma,
                max_peaks, esd, width=None, broader_than=0.0):
    """find_peaks at the measured width (``width`` None), at a given FWHM (deg), or at the
    matched-filter width (``width="matched"``; None when that is not ``broader_than`` deg)."""
    x = np.asarray(two_theta, dtype=float)
    y = np.asarray(intensity, dtype=float)
    if x.ndim != 1 or x.shape != y.shape or len(x) < 20:
        raise ValueError("two_theta and intensity must be 1-D arrays of the same length (>= 20 points)")
    order = np.argsort(x)
    x, y = x[order], y[order]
    wl = resolve_wavelength(wavelength)
    ka1, ka2_wl = ka_lines(wl)
    use_doublet = ka2 is True or (ka2 == "auto" and ka2_wl > 0)
    if ka2 is True and ka2_wl == 0:
        raise ValueError(f"no Ka2 line known for wavelength {wl:g} A")
    wl_ratio = ka2_wl / ka1 if use_doublet else 0.0
    x_u, y_u, step, resampled = _uniform_grid(x, y)

    # 1. noise
    alpha, beta = _noise_model(y_u)

    def sigma_of(level):
        return np.sqrt(alpha + beta * np.clip(level, 0, None))

    # 2. background (on a smooth, iterations from a first width estimate)
    from scipy.ndimage import gaussian_filter1d

    sig0 = sigma_of(gaussian_filter1d(y_u, 2))
    rough_bg = _snip(gaussian_filter1d(y_u, 2), max(int(1.5 / step), 10))
    fwhm_med, (w_int, w_slope) = _estimate_fwhm(x_u, y_u - rough_bg, sig0, step)
    if width == "matched":  # find_peaks' retry: the width the matched filter prefers
        width = _matched_width(y_u - rough_bg, sig0, step)
        if width is None or width <= broader_than:
            return None
    if width is not None:
        fwhm_med, (w_int, w_slope) = width, (math.log(width), 0.0)
    fwhm_med = float(np.clip(fwhm_med, 2 * step, 3.0))

    def width_fn(t):
        return np.clip(np.exp(w_int + w_slope * np.asarray(t)), 1.5 * step, 4.0)

    iterations = int(np.clip(3.0 * float(width_fn(x_u).max()) / step, 8, 400))
    smooth = gaussian_filter1d(y_u, max(0.25 * fwhm_med / step, 0.5))
    bg_u = _snip(smooth, iterations)
    bg_u = gaussian_filter1d(bg_u, max(fwhm_med / step, 1.0))
    bg_u = np.minimum(bg_u, smooth)
    sigma_u = sigma_of(smooth)
    net_u = y_u - bg_u

    # 3. detection
    def ka2_shadow(positions, ref_pos, ref_amp, amp, widths):
        """True for candidates sitting on a stronger candidate's Ka2 line."""
        if not use_doublet or not len(ref_pos):
            return np.zeros(len(positions), dtype=bool)
        k2, _ = _ka2_position(ref_pos, wl_ratio)
        near = np.abs(positions[:, None] - k2[None, :]) < 0.35 * widths[:, None] + 0.01
        weaker = amp[:, None] < 0.85 * ref_amp[None, :]
        distinct = np.abs(positions[:, None] - ref_pos[None, :]) > 1e-9
        return (near & weaker & distinct).any(axis=1)

    pos, areas, widths, sig = _detect(x_u, net_u, sigma_u, step, width_fn, detect_significance)
    if len(pos) > 3 * max_peaks:
        keep = np.argsort(sig)[::-1][:3 * max_peaks]
        pos, areas, widths, sig = pos[keep], areas[keep], widths[keep], sig[keep]
    if use_doublet and len(pos):
        shadow = ka2_shadow(pos, pos, sig, sig, widths)
        pos, areas, widths, sig = pos[~shadow], areas[~shadow], widths[~shadow], sig[~shadow]
    sigma_pts = sigma_of(np.interp(x, x_u, smooth)) if esd is None else np.asarray(esd, dtype=float)[order]
    sigma_pts = np.maximum(sigma_pts, 1e-12)
    bg_pts = np.interp(x, x_u, bg_u)

    def empty():
        grid = np.linspace(x[0], x[-1], 50)
        wm = (0.0, 0.0, fwhm_med**2)
        limit = detection_sigma * np.sqrt(alpha) * np.sqrt(step * 2 * math.sqrt(math.pi) * fwhm_med / 2.3548) * np.ones(50)
        z = np.zeros(0)
        return PeakSet(z, z, z, z, z, z, z, z, ka1 if use_doublet else wl, ka2_wl if use_doublet else 0.0,
                       0.0, wm, grid, limit, (float(x[0]), float(x[-1])), {"noise": (alpha, beta)})

    if not len(pos):
        return empty()
    ratio0 = 0.5 if use_doublet else 0.0
    # 4. fit, look for missed peaks in the residual, drop insignificant ones, refit
    fit = None
    for stage in range(3):
        fit = _fit(x, y, bg_pts, sigma_pts, pos, areas, widths, wl_ratio, ratio0, use_doublet and stage == 0)
        ratio0 = fit["ratio"] if use_doublet else 0.0
        keep = (fit["intensity"] > min_significance * fit["intensity_sigma"]) & np.isfinite(fit["intensity_sigma"])
        pos, areas, widths = fit["two_theta"][keep], fit["intensity"][keep], fit["fwhm"][keep]
        if stage == 2 or not len(pos):
            break
        # residual search: peaks the model does not explain
        prob = fit["problem"]
        model_pts = np.zeros(len(x))
        model_pts[prob.rows] = prob.model(fit["theta"])
        resid = np.interp(x_u, x, y - bg_pts - model_pts)
        # profile-shape misfit near strong peaks is not a peak: allow 3 % of the model
        sigma_r = np.sqrt(sigma_u**2 + (0.03 * np.interp(x_u, x, model_pts)) ** 2)
        rp, ra, rw, rs = _detect(x_u, resid, sigma_r, step, width_fn, detect_significance + 1.0)
        if len(rp):
            dist = np.abs(rp[:, None] - pos[None, :]).min(axis=1)
            fresh = dist > 0.7 * rw
            if use_doublet:
                fresh &= ~ka2_shadow(rp, pos, _line_height(areas, widths, 0.5), np.maximum(net_u[np.searchsorted(x_u, rp).clip(0, len(x_u) - 1)], 0), rw)
            rp, ra, rw = rp[fresh], ra[fresh], rw[fresh]
        if not len(rp) and keep.all():
            break
        pos = np.concatenate([pos, rp])
        areas = np.concatenate([areas, ra])
        widths = np.concatenate([widths, rw])
    if not len(pos):
        return empty()
    # merge peaks that converged onto each other
    t, inten = fit["two_theta"], fit["intensity"]
    keep = (inten > min_significance * fit["intensity_sigma"]) & np.isfinite(fit["intensity_sigma"])
    idx = np.flatnonzero(keep)
    if use_doublet and len(idx) > 1 and fit["ratio"] < 0.08 and ka2 == "auto":
        # no real Ka2 line: refit as monochromatic
        return _find_peaks(x, y, wl, ka2=False, min_significance=min_significance,
                           detect_significance=detect_significance, detection_sigma=detection_sigma,
                           max_peaks=max_peaks, esd=esd, width=width)
    merged_area = inten.copy()
    merged_pos = t.copy()
    if len(idx) > 1:
        # peaks closer than 0.6 FWHM are not resolved: one peak (area-weighted position)
        keep_idx = [idx[0]]
        for i in idx[1:]:
            j = keep_idx[-1]
            if merged_pos[i] - merged_pos[j] < 0.6 * max(fit["fwhm"][i], fit["fwhm"][j]):
                total = merged_area[i] + merged_area[j]
                merged_pos[j] = (merged_pos[i] * merged_area[i] + merged_pos[j] * merged_area[j]) / total
                merged_area[j] = total
                fit["intensity_sigma"][j] = math.hypot(fit["intensity_sigma"][i], fit["intensity_sigma"][j])
                fit["two_theta_sigma"][j] = max(fit["two_theta_sigma"][j], fit["two_theta_sigma"][i],
                                                abs(merged_pos[i] - merged_pos[j]) / 2)
            else:
                keep_idx.append(i)
        idx = np.array(keep_idx)
        t, inten = merged_pos, merged_area
    if len(idx) > 1:
        # tails: a peak below 0.5 % of a neighbour within 2.5 FWHM is profile misfit
        ti, ii, wi = t[idx], inten[idx], fit["fwhm"][idx]
        close = np.abs(ti[:, None] - ti[None, :]) < 2.5 * np.maximum(wi[:, None], wi[None, :])
        shadow = (close & (ii[:, None] < 0.005 * ii[None, :])).any(axis=1)
        idx = idx[~shadow]
    if len(idx) > 2:
        # humps: a "peak" over 2.5 times as broad as the pattern's lines (median FWHM) is
        # background (amorphous scattering, a sample holder), not a Bragg line
        widths = fit["fwhm"][idx]
        idx = idx[widths <= 2.5 * float(np.median(widths))]
    if len(idx) > max_peaks:
        idx = idx[np.argsort(inten[idx])[::-1][:max_peaks]]
        idx.sort()
    tt = t[idx]
    fw = fit["fwhm"][idx]
    eta = fit["eta"][idx]
    area = inten[idx]
    # 5. width model and detection limit
    strong = fit["intensity"][idx] > 10 * fit["intensity_sigma"][idx]
    width_model = _caglioti(tt[strong], fw[strong]) if strong.sum() >= 3 else (0.0, 0.0, float(np.median(fw)) ** 2)
    grid = np.linspace(x[0], x[-1], 200)
    tan = np.tan(np.radians(grid) / 2)
    w_grid = np.sqrt(np.clip(width_model[0] * tan**2 + width_model[1] * tan + width_model[2], (2 * step) ** 2, None))
    sigma_bg = sigma_of(np.interp(grid, x_u, bg_u))
    # area sd of an isolated line of known shape (Gaussian-like, with its Ka2 partner)
    sum_phi2 = 1.0 / (step * 2 * math.sqrt(math.pi) * w_grid / 2.3548)
    if use_doublet:
        sum_phi2 = sum_phi2 * (1 + fit["ratio"] ** 2)
    ideal = sigma_bg / np.sqrt(sum_phi2)
    # the fitted areas are less certain than a known-shape line's (free width, shape,
    # background): scale by the median ratio seen on the reported peaks
    ratio = fit["intensity_sigma"][idx] / np.interp(tt, grid, ideal)
    ratio = ratio[np.isfinite(ratio)]
    factor = float(np.clip(np.median(ratio), 1.0, 10.0)) if len(ratio) else 1.0
    limit = detection_sigma * ideal * factor
    info = {"noise": (alpha, beta), "chi2": fit["chi2"], "skew": fit["skew"][idx], "resampled": resampled,
            "step": step, "background": (x_u, bg_u)}
    return PeakSet(
        two_theta=tt, two_theta_sigma=fit["two_theta_sigma"][idx], intensity=area,
        intensity_sigma=fit["intensity_sigma"][idx], fwhm=fw, eta=eta, height=_line_height(area, fw, eta),
        significance=_significance(area, fit["intensity_sigma"][idx]),
        wavelength=ka1 if use_doublet else wl, ka2_wavelength=ka2_wl if use_doublet else 0.0,
        ka2_ratio=float(fit["ratio"]) if use_doublet else 0.0, width_model=width_model,
        limit_two_theta=grid, limit_intensity=limit, two_theta_range=(float(x[0]), float(x[-1])), info=info,
    )
