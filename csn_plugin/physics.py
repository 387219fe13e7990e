"""X-ray wavelengths: names (CuKa, MoKa, ...) and plain angstrom values, checked for sanity."""

import re

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
