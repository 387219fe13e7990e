"""The physics every layer shares, written once: X-ray wavelengths (names such as CuKa, MoKa and
plain angstrom values, checked for sanity), Bragg's law (d <-> 2theta, the same d at another
wavelength), the file-versus-user wavelength check and Lorentz-polarisation.

numpy only; nothing here knows patterns, files or networks. (``synth.render`` has its own torch
version of the LP factor with a monochromator term, applied to batches on the fly.)
"""

import re

import numpy as np

from .errors import PatternError

# Angstrom; the same values as pymatgen.analysis.diffraction.xrd.WAVELENGTHS.
WAVELENGTHS = {
    "CuKa": 1.54184, "CuKa2": 1.54439, "CuKa1": 1.54056, "CuKb1": 1.39222,
    "MoKa": 0.71073, "MoKa2": 0.71359, "MoKa1": 0.70930, "MoKb1": 0.63229,
    "CrKa": 2.29100, "CrKa2": 2.29361, "CrKa1": 2.28970, "CrKb1": 2.08487,
    "FeKa": 1.93735, "FeKa2": 1.93998, "FeKa1": 1.93604, "FeKb1": 1.75661,
    "CoKa": 1.79026, "CoKa2": 1.79285, "CoKa1": 1.78896, "CoKb1": 1.63079,
    "AgKa": 0.560885, "AgKa2": 0.563813, "AgKa1": 0.559421, "AgKb1": 0.497082,
}

CU_KA1 = WAVELENGTHS["CuKa1"]
CU_KA2 = WAVELENGTHS["CuKa2"]
DEFAULT_WAVELENGTH = 1.5406  # Cu Ka1, the model's reference wavelength

# Anything outside this range is not a powder-diffraction X-ray wavelength (hard synchrotron
# X-rays reach ~0.1 A; Cr Ka, the softest common lab tube, is 2.29 A).
MIN_WAVELENGTH = 0.05
MAX_WAVELENGTH = 5.0

_LOWER = {name.lower(): value for name, value in WAVELENGTHS.items()}


def resolve_wavelength(value) -> float:
    """Return the wavelength in angstrom for a name ('CuKa', 'mo ka1', ...) or a number.

    Raises ValueError with a one-line message for unknown names and implausible values.
    """
    if isinstance(value, str):
        key = value.strip().lower().replace(" ", "").replace("_", "").replace("alpha", "a")
        if key in _LOWER:
            return _LOWER[key]
        number = re.sub("(a|\u00e5|angstrom)$", "", key)  # an optional unit: '0.71A'
        try:
            value = float(number)
        except ValueError:
            known = ", ".join(sorted(WAVELENGTHS))
            raise ValueError(f"unknown wavelength {value!r}: give angstrom or one of {known}") from None
    try:
        wavelength = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"wavelength must be a number in angstrom or a name, not {value!r}") from None
    if not (MIN_WAVELENGTH <= wavelength <= MAX_WAVELENGTH):
        raise ValueError(
            f"wavelength {wavelength:g} A is outside the plausible X-ray range "
            f"{MIN_WAVELENGTH}-{MAX_WAVELENGTH} A"
        )
    return wavelength


def resolve_wavelength_for(source, value) -> float:
    """``resolve_wavelength`` with its ValueError turned into a PatternError naming ``source``."""
    try:
        return resolve_wavelength(value)
    except ValueError as error:
        raise PatternError(source, str(error)) from None


# ------------------------------------------------------------------- file versus user wavelength
# A wavelength given by the user and one recorded in the file (or carried by a pattern) may differ
# by this fraction of the recorded one and still count as the same.
WAVELENGTH_TOLERANCE = 0.005


def same_wavelength(given, recorded) -> bool:
    """True when ``given`` agrees with ``recorded`` within ``WAVELENGTH_TOLERANCE`` (angstrom)."""
    return abs(given - recorded) <= WAVELENGTH_TOLERANCE * recorded


def check_recorded_wavelength(recorded, given, source):
    """Raise PatternError when the user gave a wavelength that differs from the recorded one by
    more than ``WAVELENGTH_TOLERANCE``; ``given`` None (nothing given) always passes."""
    if given is not None and not same_wavelength(given, recorded):
        raise PatternError(
            source,
            f"the file records wavelength {recorded:g} A but {given:g} A was given "
            f"(more than {WAVELENGTH_TOLERANCE:.1%} apart): drop the wavelength option or check the file",
        )


# --------------------------------------------------------------------------------- Bragg's law
def two_theta_to_d(two_theta, wavelength):
    """Bragg's law: d = lambda / (2 sin theta)."""
    return wavelength / (2.0 * np.sin(np.radians(np.asarray(two_theta, dtype=np.float64)) / 2.0))


def d_to_two_theta(d, wavelength):
    """2theta in degrees for d-spacings; NaN where the reflection is beyond reach (lambda > 2d)."""
    ratio = wavelength / (2.0 * np.asarray(d, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        return np.degrees(2.0 * np.arcsin(np.where(ratio <= 1.0, ratio, np.nan)))


def two_theta_to_q(two_theta, wavelength):
    """Q = 1/d^2 (angstrom^-2) of angles 2theta (deg): the quantity a reflection's indices enter
    linearly (indexing and extinction analysis work in it)."""
    return (2 * np.sin(np.radians(np.asarray(two_theta)) / 2) / wavelength) ** 2


def q_to_two_theta(q, wavelength):
    """2theta (deg) of Q = 1/d^2 values (clipped at 180 deg where out of reach)."""
    return np.degrees(2 * np.arcsin(np.clip(wavelength * np.sqrt(q) / 2, 0, 1)))


def convert_two_theta(two_theta, wavelength, target_wavelength):
    """Angles measured at ``wavelength`` as they would be at ``target_wavelength`` (same d); NaN
    where unreachable."""
    if wavelength == target_wavelength:
        return np.asarray(two_theta, dtype=np.float64)
    return d_to_two_theta(two_theta_to_d(two_theta, wavelength), target_wavelength)


# ----------------------------------------------------------------------- Lorentz-polarisation
def _lorentz_polarization(sin_theta, cos_theta, cos_2theta):
    return (1 + cos_2theta ** 2) / (sin_theta ** 2 * cos_theta)


def lorentz_polarization(two_theta_deg) -> np.ndarray:
    """(1 + cos^2 2theta) / (sin^2 theta cos theta), as in pymatgen's XRDCalculator."""
    theta = np.radians(np.asarray(two_theta_deg, dtype=float)) / 2
    return _lorentz_polarization(np.sin(theta), np.cos(theta), np.cos(2 * theta))


def lorentz_polarization_at_d(d, wavelength) -> np.ndarray:
    """The same factor for reflections of spacing ``d`` at ``wavelength``; 0 where the reflection
    is beyond reach or at 2theta = 0 / 180 deg."""
    sin_theta = np.clip(wavelength / (2.0 * np.asarray(d, dtype=np.float64)), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lp = _lorentz_polarization(sin_theta, np.sqrt(1.0 - sin_theta**2), 1.0 - 2.0 * sin_theta**2)
    return np.nan_to_num(lp, nan=0.0, posinf=0.0)
