"""The model grid: the fixed 2theta axis (at the Cu Ka1 reference wavelength) every pattern is
resampled onto before it reaches the network. Other wavelengths map through d-spacing; angles the
measurement did not cover are masked."""

from dataclasses import dataclass

import numpy as np

from .errors import PatternError
from .physics import DEFAULT_WAVELENGTH, convert_two_theta, two_theta_to_d


@dataclass(frozen=True)
class ModelGrid:
    """2theta grid ``start..stop`` (inclusive) with ``step`` degrees at ``wavelength`` angstrom."""

    start: float = 5.0
    stop: float = 90.0
    step: float = 0.05
    wavelength: float = DEFAULT_WAVELENGTH

    @property
    def size(self) -> int:
        return int(round((self.stop - self.start) / self.step)) + 1

    @property
    def two_theta(self) -> np.ndarray:
        return self.start + self.step * np.arange(self.size)

    @property
    def d_range(self) -> tuple[float, float]:
        """(d_min, d_max) in angstrom covered by the grid."""
        return (two_theta_to_d(self.stop, self.wavelength), two_theta_to_d(self.start, self.wavelength))

    def to_dict(self) -> dict:
        return {"start": self.start, "stop": self.stop, "step": self.step, "wavelength": self.wavelength}

    def resample(self, two_theta, intensity, wavelength=DEFAULT_WAVELENGTH):
        """Map a measured pattern onto the grid.

        Returns ``(values, mask)`` float32 arrays of the grid's size: ``values`` is the intensity
        averaged over each grid bin (a box filter one step wide, so fine scans are binned and
        coarse ones interpolated), negative values clipped to 0 and scaled to a maximum of 1 over the
        measured bins; ``mask`` is 1 where the measurement covers the bin and 0 elsewhere (values 0).
        ``two_theta`` must be increasing. Raises ValueError when nothing of the pattern falls on the
        grid or the measured part holds no positive intensity.
        """
        values, mask = self.resample_many(two_theta, np.asarray(intensity, dtype=np.float64)[None, :], wavelength)
        if not values[0].max() > 0:
            raise ValueError("the measured part of the pattern holds no positive intensity")
        return values[0], mask

    def resample_many(self, two_theta, intensities, wavelength=DEFAULT_WAVELENGTH):
        """``resample`` for K patterns measured on one 2theta axis: ``intensities`` (K, N) ->
        ``(values (K, G), mask (G,))``; a row with no positive intensity comes back all zero."""
        two_theta = np.asarray(two_theta, dtype=np.float64)
        intensity = np.asarray(intensities, dtype=np.float64)
        reference = convert_two_theta(two_theta, wavelength, self.wavelength)
        keep = np.isfinite(reference)
        if not keep.all():  # angles beyond the reference wavelength's reach (copying costs: only when needed)
            reference, intensity = reference[keep], intensity[:, keep]
        # Scale-free from here on: each row divided by its largest |value| (the result is scaled to a
        # maximum of 1 anyway), so intensities near the float limit (1e308) cannot overflow the sums.
        scale = np.abs(intensity).max(axis=1, keepdims=True) if intensity.size else np.ones((len(intensity), 1))
        intensity = np.divide(intensity, scale, out=np.zeros_like(intensity), where=scale > 0)
        grid = self.two_theta
        half = self.step / 2
        mask = (grid >= reference[0] - half) & (grid <= reference[-1] + half) if len(reference) > 1 else np.zeros(len(grid), bool)
        if mask.sum() < 2:
            raise ValueError(
                f"the pattern covers no part of the model range {self.start:g}-{self.stop:g} deg 2theta "
                f"(Cu Ka1 equivalent) at wavelength {wavelength:g} A"
            )
        # Box filter: the exact integral of the piecewise-linear pattern, differenced at the bin edges
        # (inside an input interval the integral is quadratic; interpolating it linearly would turn
        # coarse scans into steps). The axis-only work is shared by all rows; only the running
        # trapezoid sum touches every input point, the rest is done at the bin edges.
        spacing = np.diff(reference)
        cumulative = np.empty_like(intensity)
        cumulative[:, 0] = 0.0
        np.cumsum((intensity[:, 1:] + intensity[:, :-1]) * (0.5 * spacing), axis=1, out=cumulative[:, 1:])
        edges = np.clip(np.concatenate([grid - half, [grid[-1] + half]]), reference[0], reference[-1])
        segment = np.clip(np.searchsorted(reference, edges, side="right") - 1, 0, len(reference) - 2)
        offset = edges - reference[segment]
        left, right = intensity[:, segment], intensity[:, segment + 1]
        inverse = np.divide(1.0, spacing[segment], out=np.zeros(len(segment)), where=spacing[segment] > 0)
        integral = cumulative[:, segment] + offset * (left + (0.5 * inverse * offset) * (right - left))
        width = np.diff(edges)
        values = np.zeros((len(intensity), len(grid)))
        covered = mask & (width > 1e-12)
        values[:, covered] = np.diff(integral, axis=1)[:, covered] / width[covered]
        # Bins narrower than the input spacing: plain linear interpolation is the better estimate.
        narrow = mask & ~covered
        if narrow.any():
            for row in range(len(intensity)):
                values[row, narrow] = np.interp(grid[narrow], reference, intensity[row])
        values = np.clip(values, 0.0, None) * mask
        peak = values.max(axis=1, keepdims=True)
        values = np.divide(values, peak, out=np.zeros_like(values), where=peak > 0)
        return values.astype(np.float32), mask.astype(np.float32)

    def resample_patterns(self, patterns):
        """``(values, masks)`` (K, G) float32 for K patterns (anything with ``two_theta``,
        ``intensity``, ``wavelength`` and ``source``); patterns that share a 2theta axis and
        wavelength are resampled together. A pattern the grid cannot use raises PatternError
        naming it."""
        values = np.zeros((len(patterns), self.size), dtype=np.float32)
        masks = np.zeros_like(values)
        groups = {}
        for i, pattern in enumerate(patterns):
            axis = pattern.two_theta
            groups.setdefault((pattern.wavelength, len(axis), hash(axis.tobytes())), []).append(i)
        for members in groups.values():
            first = patterns[members[0]]
            try:
                rows, mask = self.resample_many(first.two_theta, np.stack([patterns[i].intensity for i in members]), first.wavelength)
            except ValueError as error:
                raise PatternError(first.source, str(error)) from None
            for row, i in zip(rows, members):
                if not row.max() > 0:
                    raise PatternError(patterns[i].source, "the measured part of the pattern holds no positive intensity")
                values[i], masks[i] = row, mask
        return values, masks
