"""A measured powder pattern: 2theta (degrees), intensity and wavelength, checked on creation."""

import numpy as np

from .errors import PatternError
from .grid import ModelGrid
from .physics import DEFAULT_WAVELENGTH, convert_two_theta, resolve_wavelength, two_theta_to_d

MIN_POINTS = 50
# A scan narrower than this (degrees 2theta) inside the model's range is refused as too narrow to
# classify (a rocking curve, a one-peak scan): the same 1 degree the model needs to overlap.
MIN_SCAN_WIDTH = 1.0
# A pattern must overlap the model's range by at least this much (degrees 2theta, Cu Ka1 equivalent).
MIN_MODEL_OVERLAP = 1.0


class Pattern:
    """A powder X-ray diffraction pattern.

    ``Pattern(two_theta, intensity, wavelength=None, source=None, metadata=None, esd=None)``:
    ``two_theta`` in degrees (increasing; a strictly decreasing scan is reversed and
    ``metadata["reversed"]`` set), ``intensity`` in any unit, ``wavelength`` in angstrom or a name
    ('CuKa1', 'MoKa'); ``None`` means Cu Ka1 (1.5406 A) and sets ``metadata["wavelength_source"]`` to
    ``"default"`` (otherwise ``"user"`` unless the metadata already says, e.g. ``"file"``).
    ``esd``: optional standard uncertainties of the intensities.

    Bad input raises :class:`~csn_plugin.errors.PatternError` ("source: problem").
    """

    def __init__(self, two_theta, intensity, wavelength=None, source=None, metadata=None, esd=None):
        self.source = None if source is None else str(source)
        self.metadata = dict(metadata or {})
        if wavelength is None:
            wavelength = DEFAULT_WAVELENGTH
            self.metadata.setdefault("wavelength_source", "default")
        else:
            self.metadata.setdefault("wavelength_source", "user")
        try:
            self.wavelength = resolve_wavelength(wavelength)
        except ValueError as error:
            raise PatternError(self.source, str(error)) from None
        two_theta = self._as_array(two_theta, "angles")
        intensity = self._as_array(intensity, "intensities")
        esd = None if esd is None else self._as_array(esd, "esds")
        if len(two_theta) == 0 or len(intensity) == 0:
            raise PatternError(self.source, "the pattern is empty (no data points)")
        if len(two_theta) != len(intensity):
            raise PatternError(
                self.source, f"{len(two_theta)} angles but {len(intensity)} intensities: lengths differ"
            )
        if esd is not None and len(esd) != len(intensity):
            raise PatternError(self.source, f"{len(esd)} esds for {len(intensity)} intensities")
        if len(two_theta) < MIN_POINTS:
            raise PatternError(
                self.source, f"only {len(two_theta)} data points; a pattern needs at least {MIN_POINTS}"
            )
        for name, values in (("angles", two_theta), ("intensities", intensity)):
            bad = ~np.isfinite(values)
            if bad.any():
                raise PatternError(
                    self.source, f"{int(bad.sum())} {name} are NaN or infinite (first at point {int(np.argmax(bad)) + 1})"
                )
        steps = np.diff(two_theta)
        if (steps < 0).all():
            two_theta, intensity = two_theta[::-1].copy(), intensity[::-1].copy()
            esd = None if esd is None else esd[::-1].copy()
            self.metadata["reversed"] = True
        elif (steps == 0).any():
            index = int(np.argmax(steps == 0))
            raise PatternError(
                self.source, f"angle {two_theta[index]:g} deg is repeated (points {index + 1} and {index + 2})"
            )
        elif not (steps > 0).all():
            index = int(np.argmax(steps < 0))
            raise PatternError(
                self.source,
                f"angles are not sorted: {two_theta[index]:g} then {two_theta[index + 1]:g} deg "
                f"(points {index + 1}-{index + 2})",
            )
        if two_theta[0] <= 0 or two_theta[-1] >= 180:
            raise PatternError(
                self.source,
                f"angles {two_theta[0]:g}-{two_theta[-1]:g} deg lie outside 0-180 deg 2theta",
            )
        top = float(intensity.max())
        if top <= 0:
            what = "all intensities are zero" if not intensity.any() else "no intensity is positive"
            raise PatternError(self.source, what)
        if float(intensity.min()) == top:
            raise PatternError(self.source, f"the intensity is constant ({top:g}) everywhere: no peaks")
        if float(np.median(intensity)) < 0:
            raise PatternError(
                self.source, "most intensities are negative (median < 0): not a diffraction pattern"
            )
        self.two_theta = two_theta
        self.intensity = intensity
        self.esd = esd
        if self.metadata.get("wavelength_source") != "unknown":
            self._check_model_overlap()

    def _as_array(self, values, name):
        if isinstance(values, np.ma.MaskedArray):
            raise PatternError(
                self.source,
                f"{name} are a masked array: drop or fill the masked points first (np.ma.compressed or .filled)",
            )
        if isinstance(values, (str, bytes)):
            raise PatternError(self.source, f"{name} are text, not numbers")
        try:
            raw = np.asarray(values)
        except (TypeError, ValueError):  # ragged nested sequences
            raise PatternError(self.source, f"{name} are not a flat sequence of numbers") from None
        if np.iscomplexobj(raw):
            raise PatternError(self.source, f"{name} are complex numbers: give real values (e.g. abs() or .real)")
        if raw.dtype == object and any(value is None for value in raw.ravel()[:1_000_000]):
            raise PatternError(self.source, f"{name} hold None (missing values): drop those points first")
        if raw.dtype.kind in "SUMmV":
            raise PatternError(self.source, f"{name} are not numbers (dtype {raw.dtype})")
        try:
            array = np.array(raw, dtype=np.float64)
        except (TypeError, ValueError):
            raise PatternError(self.source, f"{name} are not numbers") from None
        if array.ndim != 1:
            raise PatternError(self.source, f"{name} must be a 1-D sequence, not shape {array.shape}")
        return array

    def _check_model_overlap(self):
        grid = ModelGrid()
        reference = convert_two_theta(self.two_theta[[0, -1]], self.wavelength, grid.wavelength)
        low = np.nan_to_num(reference[0], nan=180.0)
        high = np.nan_to_num(reference[1], nan=180.0)
        overlap = min(high, grid.stop) - max(low, grid.start)
        inside = low >= grid.start - MIN_MODEL_OVERLAP and high <= grid.stop + MIN_MODEL_OVERLAP
        if overlap < MIN_MODEL_OVERLAP and not inside:  # beyond the range: the wavelength is the suspect
            d_low, d_high = self.d[-1], self.d[0]
            d_min, d_max = grid.d_range
            raise PatternError(
                self.source,
                f"d-spacings {d_low:.3g}-{d_high:.3g} A (2theta {self.two_theta[0]:g}-{self.two_theta[-1]:g} deg "
                f"at {self.wavelength:g} A) miss the usable range {d_min:.3g}-{d_max:.3g} A: "
                "is the wavelength right?",
            )
        width = self.two_theta[-1] - self.two_theta[0]
        if overlap < MIN_MODEL_OVERLAP or (min(high, 180.0) - low < MIN_SCAN_WIDTH and width < MIN_SCAN_WIDTH):
            raise PatternError(
                self.source,
                f"the scan covers only {width:.3g} deg 2theta ({self.two_theta[0]:g}-{self.two_theta[-1]:g} deg): "
                f"too narrow to classify (at least {max(MIN_SCAN_WIDTH, MIN_MODEL_OVERLAP):g} deg inside the model's "
                f"{grid.start:g}-{grid.stop:g} deg Cu Ka1 range is needed; "
                "a rocking curve or a one-peak scan?)",
            )

    @property
    def d(self):
        """d-spacings in angstrom (Bragg's law), decreasing with angle."""
        return two_theta_to_d(self.two_theta, self.wavelength)

    def with_wavelength(self, wavelength, wavelength_source="user"):
        """The same data at another wavelength (re-checked)."""
        metadata = dict(self.metadata, wavelength_source=wavelength_source)
        return Pattern(self.two_theta, self.intensity, wavelength, self.source, metadata, self.esd)

    @classmethod
    def from_file(cls, path, wavelength=None, format=None):
        """Read a pattern file with every registered reader (``csn_plugin.plugins.read_pattern``).

        A convenience of the public API: the pattern layer itself knows no readers; this one
        method hands the path up to the plugin layer, imported when called."""
        from .plugins import read_pattern

        return read_pattern(path, wavelength=wavelength, format=format)

    def __len__(self):
        return len(self.two_theta)

    def __repr__(self):
        name = f"{self.source!r}, " if self.source else ""
        return (
            f"Pattern({name}{len(self)} points, 2theta {self.two_theta[0]:g}-{self.two_theta[-1]:g} deg, "
            f"wavelength {self.wavelength:g} A ({self.metadata.get('wavelength_source')}))"
        )

