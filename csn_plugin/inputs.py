"""Anything pattern-like -> :class:`~csn_plugin.pattern.Pattern` (``to_pattern``).

Measured data keep their angles and wavelength. Structures and stick patterns are simulated and
rendered into a clean profile on a 5-90 deg 2theta grid (0.02 deg steps) at Cu Ka1, the model's
reference wavelength. pymatgen and xrayutilities are imported only for objects of their types.
"""

import os
import re
from pathlib import Path

import numpy as np

from .errors import PatternError
from .physics import (
    DEFAULT_WAVELENGTH,
    check_recorded_wavelength,
    convert_two_theta,
    lorentz_polarization,
    resolve_wavelength_for,
    same_wavelength,
    two_theta_to_d,
)

# The grid simulated patterns are rendered on (Cu Ka1); finer than the model grid.
RENDER_START, RENDER_STOP, RENDER_STEP = 5.0, 90.0, 0.02

# Files that are always structures (simulated); a .cif is one when it holds no powder profile.
STRUCTURE_SUFFIXES = (".mcif", ".vasp", ".poscar", ".cssr", ".xsf", ".res", ".pwmat")
STRUCTURE_NAMES = ("POSCAR", "CONTCAR")
_POWDER_CIF_TAGS = re.compile(rb"_pd_(meas|proc|calc)_(2theta|intensity|counts|angle)", re.IGNORECASE)

ACCEPTED = (
    "a file path (str or Path), a Pattern, (two_theta, intensity) arrays, a pymatgen Structure or "
    "DiffractionPattern, an xrayutilities Crystal, Powder, PowderDiffraction or PowderModel, or "
    "what xrayutilities.io readers return"
)


def to_pattern(obj, wavelength=None):
    """Turn ``obj`` into a :class:`Pattern`; ``wavelength`` (angstrom or a name) applies to inputs
    that do not carry their own (arrays, files without one).

    Accepted: a path to a pattern file (``Pattern.from_file``) or to a structure (a CIF without a
    powder profile, POSCAR...: simulated); a ``Pattern``; ``(two_theta, intensity[, esd])`` arrays or
    an (N, 2|3) array; a pymatgen ``Structure`` or ``DiffractionPattern``; an xrayutilities
    ``materials.Crystal``, ``simpack.Powder``, ``PowderDiffraction`` or ``PowderModel``; the
    arrays, record arrays and ``XRDMLFile``/``RASFile``/``pdCIF`` objects of ``xrayutilities.io``.
    Unusable data raise PatternError; objects of no known kind raise TypeError.
    """
    from .pattern import Pattern

    if isinstance(obj, Pattern):
        return obj if wavelength is None else _same_or_error(obj, wavelength)
    if isinstance(obj, (str, os.PathLike)):
        return _from_path(os.fspath(obj), wavelength)
    module = type(obj).__module__ or ""
    if module.startswith("pymatgen"):
        return _from_pymatgen(obj, wavelength)
    if module.startswith("xrayutilities"):
        return _from_xrayutilities(obj, wavelength)
    if isinstance(obj, np.ndarray) and obj.dtype.names:
        return _from_record_array(obj, wavelength, source=None)
    if isinstance(obj, (tuple, list, np.ndarray)):
        return _from_arrays(obj, wavelength)
    raise TypeError(f"cannot make a pattern from a {type(obj).__module__}.{type(obj).__qualname__}; expected {ACCEPTED}")


def _same_or_error(pattern, wavelength):
    wavelength = resolve_wavelength_for(pattern.source, wavelength)
    if same_wavelength(wavelength, pattern.wavelength):
        return pattern
    if pattern.metadata.get("wavelength_source") in ("default", "unknown"):
        return pattern.with_wavelength(wavelength)
    raise PatternError(
        pattern.source,
        f"the pattern is at {pattern.wavelength:g} A but wavelength {wavelength:g} A was given",
    )


# ----------------------------------------------------------------------------------------- files
def _is_structure_file(path: Path) -> bool:
    if path.name.upper().startswith(STRUCTURE_NAMES) or path.suffix.lower() in STRUCTURE_SUFFIXES:
        return True
    if path.suffix.lower() == ".cif" and path.is_file():
        try:
            return not _holds_powder_tags(path)  # no measured profile: a structure
        except OSError:
            return False  # the pattern readers report why the file cannot be read
    return False


def _holds_powder_tags(path, chunk=1 << 20) -> bool:
    """True when the file holds a _pd_meas/_pd_proc/_pd_calc profile tag: read in 1 MiB chunks
    (overlapping by a tag's length) up to the reader's size cap, never the whole file at once."""
    from .readers.base import MAX_FILE_BYTES

    overlap = 64
    tail = b""
    read = 0
    with open(path, "rb") as handle:
        while read < MAX_FILE_BYTES:
            block = handle.read(chunk)
            if not block:
                return False
            read += len(block)
            if _POWDER_CIF_TAGS.search(tail + block):
                return True
            tail = block[-overlap:]
    return False


def _from_path(path, wavelength):
    from .pattern import Pattern

    source = str(path)
    if _is_structure_file(Path(path)):
        from .synth.simulate import simulate_peaks

        from .readers.base import check_file

        check_file(source)  # a regular file within the size cap, before pymatgen opens it
        try:
            peaks = simulate_peaks(source, wavelength=DEFAULT_WAVELENGTH, two_theta_range=(0, RENDER_STOP + 2))
        except (ValueError, OSError) as error:  # StructureError is a ValueError
            raise PatternError(source, getattr(error, "problem", str(error))) from None
        except MemoryError:
            raise PatternError(source, "out of memory while simulating the structure's pattern") from None
        return _from_peaks(peaks.d, peaks.intensity, peaks.two_theta, source, "structure file")
    return Pattern.from_file(path, wavelength=wavelength)


# ---------------------------------------------------------------------------------------- arrays
def _monotonic(values) -> bool:
    steps = np.diff(np.asarray(values, dtype=float))
    return len(steps) > 0 and ((steps > 0).all() or (steps < 0).all())


def _from_arrays(arrays, wavelength, source=None, metadata=None):
    """(two_theta, intensity), (two_theta, intensity, esd), (scan motor, two_theta, intensity) as
    ``xrayutilities.io.getxrdml_scan(file, 'tt')`` returns, or an (N, 2|3) / (2|3, N) array."""
    from .pattern import Pattern

    if isinstance(arrays, tuple) and len(arrays) == 2 and isinstance(arrays[1], np.ndarray) and arrays[1].dtype.names:
        # xrayutilities.io.getras_scan(file, None, motor) -> (angles, record array)
        angles, records = arrays
        return _from_record_array(records, wavelength, source, two_theta=np.asarray(angles, dtype=float))
    if isinstance(arrays, np.ma.MaskedArray):
        raise PatternError(source, "a masked array: drop or fill the masked points first (np.ma.compressed or .filled)")
    if isinstance(arrays, np.ndarray) and arrays.ndim == 2:
        if arrays.shape[1] in (2, 3) and arrays.shape[0] > 3:
            columns = list(arrays.T)  # (N, 2|3): one row per point
        elif arrays.shape[0] in (2, 3):
            columns = list(arrays)  # (2|3, N): one row per quantity
        else:
            raise PatternError(
                source,
                f"expected an (N, 2) or (N, 3) array (two_theta, intensity[, esd]), got shape {arrays.shape}",
            )
    elif isinstance(arrays, np.ndarray):
        raise PatternError(source, f"expected (two_theta, intensity) arrays, got an array of shape {arrays.shape}")
    else:
        columns = list(arrays)
    esd = None
    if len(columns) == 2:
        two_theta, intensity = columns
    elif len(columns) == 3:
        try:
            motor_first = _monotonic(columns[1])
        except (TypeError, ValueError):
            raise PatternError(source, "the arrays are not numbers") from None
        if motor_first:  # (scan motor, two_theta, intensity)
            two_theta, intensity = columns[1], columns[2]
        else:  # (two_theta, intensity, esd)
            two_theta, intensity, esd = columns
    else:
        raise PatternError(source, f"expected 2 or 3 arrays (two_theta, intensity[, esd]), got {len(columns)}")
    return Pattern(two_theta, intensity, wavelength, source=source, metadata=metadata, esd=esd)


_TWO_THETA_FIELDS = ("2theta", "twotheta", "tth", "2th", "_pd_meas_2theta_scan", "_pd_proc_2theta_corrected", "angle")
_INTENSITY_FIELDS = (
    "int", "intensity", "counts", "detector", "cps", "_pd_proc_intensity_total", "_pd_meas_intensity_total",
    "_pd_meas_counts_total", "_pd_proc_intensity_net", "_pd_calc_intensity_total",
)


def _pick_field(names, wanted):
    lowered = {name.lower(): name for name in names}
    for candidate in wanted:
        if candidate in lowered:
            return lowered[candidate]
    for candidate in wanted:
        for low, name in lowered.items():
            if candidate in low:
                return name
    return None


def _from_record_array(records, wavelength, source, two_theta=None, metadata=None):
    """A numpy record array with a 2theta field (e.g. 'TwoTheta') and an intensity field ('int')."""
    names = records.dtype.names
    if two_theta is None:
        field = _pick_field(names, _TWO_THETA_FIELDS)
        if field is None:
            raise PatternError(source, f"no 2theta column among {', '.join(names)}")
        two_theta = records[field]
    intensity_field = _pick_field(names, _INTENSITY_FIELDS)
    if intensity_field is None:
        raise PatternError(source, f"no intensity column among {', '.join(names)}")
    return _from_arrays((two_theta, records[intensity_field]), wavelength, source, metadata)


# -------------------------------------------------------------------------------- simulated sticks
def render_grid() -> np.ndarray:
    """The 2theta grid (degrees, Cu Ka1) simulated patterns are rendered on."""
    return RENDER_START + RENDER_STEP * np.arange(int(round((RENDER_STOP - RENDER_START) / RENDER_STEP)) + 1)


def render_sticks(d, f2m) -> np.ndarray:
    """Profile (on ``render_grid()``) of reflections with d-spacings ``d`` and LP-free intensities
    ``f2m``: ``csn_plugin.synth.render`` with its clean config (simulated on request: the one place
    this layer reaches up into synth/)."""
    import torch

    from .synth.render import RenderConfig, render

    config = RenderConfig.clean()
    generator = torch.Generator().manual_seed(0)
    profile, _ = render(
        torch.as_tensor(np.asarray(d, dtype=np.float64)[None], dtype=torch.float32),
        torch.as_tensor(np.asarray(f2m, dtype=np.float64)[None], dtype=torch.float32),
        torch.as_tensor(render_grid(), dtype=torch.float32),
        generator,
        config=config,
    )
    return profile[0].double().cpu().numpy()


def _from_reflections(d, f2m, source, kind):
    """A rendered Pattern from d-spacings and LP-free intensities."""
    from .pattern import Pattern

    d = np.asarray(d, dtype=float)
    f2m = np.asarray(f2m, dtype=float)
    reachable = (d > two_theta_to_d(RENDER_STOP + 2, DEFAULT_WAVELENGTH)) & (f2m > 0)
    if not reachable.any():
        raise PatternError(source, f"the simulation gives no reflections between {RENDER_START:g} and {RENDER_STOP:g} deg 2theta")
    meta = {"simulated": True, "origin": kind, "wavelength_source": "simulation"}
    profile = render_sticks(d[reachable], f2m[reachable])
    return Pattern(render_grid(), profile, DEFAULT_WAVELENGTH, source=source, metadata=meta)


def _from_peaks(d, intensity, two_theta, source, kind):
    """A rendered Pattern from sticks whose ``intensity`` includes LP at angles ``two_theta``."""
    f2m = np.asarray(intensity, dtype=float) / lorentz_polarization(two_theta)
    return _from_reflections(d, f2m, source, kind)


# -------------------------------------------------------------------------------------- pymatgen
def _from_pymatgen(obj, wavelength):
    from pymatgen.analysis.diffraction.core import DiffractionPattern
    from pymatgen.core import IStructure, Structure

    if isinstance(obj, (Structure, IStructure)):
        from .synth.simulate import simulate_peaks

        source = f"{obj.composition.reduced_formula} (pymatgen Structure)"
        try:
            peaks = simulate_peaks(obj, wavelength=DEFAULT_WAVELENGTH, two_theta_range=(0, RENDER_STOP + 2))
        except ValueError as error:
            raise PatternError(source, getattr(error, "problem", str(error))) from None
        return _from_peaks(peaks.d, peaks.intensity, peaks.two_theta, source, "pymatgen Structure")
    if isinstance(obj, DiffractionPattern):
        source = "pymatgen DiffractionPattern"
        two_theta = np.asarray(obj.x, dtype=float)
        d = getattr(obj, "d_hkls", None)
        if d is None or len(d) != len(two_theta):
            stick_wavelength = DEFAULT_WAVELENGTH if wavelength is None else resolve_wavelength_for(source, wavelength)
            d = two_theta_to_d(two_theta, stick_wavelength)
        return _from_peaks(d, obj.y, two_theta, source, "pymatgen DiffractionPattern")
    raise TypeError(f"cannot make a pattern from a pymatgen {type(obj).__name__}; expected {ACCEPTED}")


# --------------------------------------------------------------------------------- xrayutilities
def _xrayutilities_sticks(powder_diffraction, source, kind):
    """Peaks of a PowderDiffraction: ``data[hkl]`` holds 'ang' (theta) and 'r' (with LP/V^2)."""
    wavelength = float(powder_diffraction.wavelength)
    lines = [line for line in powder_diffraction.data.values() if line.get("active", True)]
    theta = np.array([line["ang"] for line in lines], dtype=float)
    strength = np.array([line["r"] for line in lines], dtype=float)
    d = two_theta_to_d(2 * theta, wavelength)
    # xrayutilities' r holds (1 + cos^2 2theta)/2 / (sin^2 theta cos theta) / V^2: divide LP out.
    return _from_reflections(d, strength / lorentz_polarization(2 * theta), source, kind)


def _from_xrayutilities(obj, wavelength):
    import xrayutilities as xu

    materials, simpack, io = xu.materials, xu.simpack, xu.io
    name = getattr(obj, "name", None) or type(obj).__name__
    if isinstance(obj, (materials.Crystal, simpack.Powder)):
        source = f"{getattr(getattr(obj, 'material', None), 'name', None) or name} (xrayutilities {type(obj).__name__})"
        powder = simpack.PowderDiffraction(obj, tt_cutoff=RENDER_STOP + 2, wl=DEFAULT_WAVELENGTH)
        return _xrayutilities_sticks(powder, source, f"xrayutilities {type(obj).__name__}")
    if isinstance(obj, simpack.PowderDiffraction):
        source = f"{obj.mat.material.name} (xrayutilities PowderDiffraction)"
        if getattr(obj, "_enable_sim", False):
            return _simulate_profile(lambda grid: obj.Calculate(grid), float(obj.wavelength), source)
        return _xrayutilities_sticks(obj, source, "xrayutilities PowderDiffraction")
    if isinstance(obj, simpack.PowderModel):
        names = ", ".join(pd.mat.material.name for pd in obj.pdiff)
        return _simulate_profile(obj.simulate, float(obj.pdiff[0].wavelength), f"{names} (xrayutilities PowderModel)")
    source = None
    if isinstance(obj, io.XRDMLFile):
        source = obj.full_filename
        if obj.nscans != 1:
            raise PatternError(source, f"not a powder 2theta scan: the XRDML file holds {obj.nscans} scans")
        obj = obj.scan
    if isinstance(obj, io.panalytical_xml.XRDMLMeasurement):
        source = source or "xrayutilities XRDMLMeasurement"
        if "2Theta" not in obj.ddict:
            raise PatternError(source, "the XRDML scan has no 2Theta axis")
        two_theta = np.broadcast_to(np.asarray(obj["2Theta"], dtype=float), np.shape(obj["detector"]))
        if np.ndim(two_theta) != 1:
            raise PatternError(source, "not a powder 2theta scan (the XRDML file holds a 2-D map)")
        return _from_arrays((two_theta, obj["detector"]), wavelength, source)
    if isinstance(obj, io.RASFile):
        if not obj.scans:
            raise PatternError(obj.filename, "the RAS file holds no scan")
        obj = obj.scans[0]
    if isinstance(obj, io.RASScan):
        from .readers.rigaku import ras_header, ras_wavelength

        recorded = ras_wavelength(ras_header("".join(line if line.endswith("\n") else line + "\n" for line in obj.header)))
        chosen, metadata = _file_or_user_wavelength(recorded, wavelength, obj.filename)
        return _from_record_array(obj.data, chosen, obj.filename, metadata=metadata)
    if isinstance(obj, io.pdCIF):
        if obj.data is None:
            raise PatternError(obj.filename, "the powder CIF holds no profile")
        recorded = obj.header.get("_diffrn_radiation_wavelength")
        recorded = float(recorded) if isinstance(recorded, (int, float)) else None
        chosen, metadata = _file_or_user_wavelength(recorded, wavelength, obj.filename)
        return _from_record_array(obj.data, chosen, obj.filename, metadata=metadata)
    raise TypeError(f"cannot make a pattern from an xrayutilities {type(obj).__name__}; expected {ACCEPTED}")


def _file_or_user_wavelength(recorded, wavelength, source):
    """(wavelength, metadata): the file's value; the user's when the file has none; an error
    when both are known and differ by more than ``physics.WAVELENGTH_TOLERANCE``."""
    if recorded is None:
        return wavelength, None
    given = None if wavelength is None else resolve_wavelength_for(source, wavelength)
    check_recorded_wavelength(recorded, given, source)
    return recorded, {"wavelength_source": "file"}


def _simulate_profile(simulate, wavelength, source):
    """Evaluate an xrayutilities profile simulation on angles covering the render grid's d range."""
    from .pattern import Pattern

    angles = convert_two_theta(render_grid(), DEFAULT_WAVELENGTH, wavelength)
    angles = angles[np.isfinite(angles) & (angles < 179.0)]
    intensity = np.asarray(simulate(angles), dtype=float)
    meta = {"simulated": True, "origin": source, "wavelength_source": "simulation"}
    return Pattern(angles, intensity, wavelength, source=source, metadata=meta)
