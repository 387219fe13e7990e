"""to_pattern: files, arrays, pymatgen and xrayutilities objects -> Pattern."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from csn_plugin.inputs import render_grid, to_pattern
from csn_plugin.errors import PatternError
from csn_plugin.pattern import Pattern
from csn_plugin.physics import DEFAULT_WAVELENGTH, WAVELENGTHS

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared development data not found at {SHARED}")


def bragg_two_theta(d, wavelength=DEFAULT_WAVELENGTH):
    return math.degrees(2 * math.asin(wavelength / (2 * d)))


def strongest_peaks(pattern, count):
    """2theta of the ``count`` highest local maxima."""
    y = pattern.intensity
    is_max = np.r_[False, (y[1:-1] > y[:-2]) & (y[1:-1] >= y[2:]), False]
    index = np.flatnonzero(is_max)
    return pattern.two_theta[index[np.argsort(-y[index])[:count]]]


@pytest.fixture(scope="module")
def rocksalt():
    from pymatgen.core import Lattice, Structure

    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


@pytest.fixture(scope="module")
def rocksalt_pattern(rocksalt):
    return to_pattern(rocksalt)


# ------------------------------------------------------------------------------------- pymatgen
def test_structure_is_rendered_at_bragg_angles(rocksalt_pattern):
    pattern = rocksalt_pattern
    assert pattern.wavelength == pytest.approx(DEFAULT_WAVELENGTH)
    assert pattern.metadata["simulated"] is True
    np.testing.assert_allclose(pattern.two_theta, render_grid())
    # NaCl: (200) is the strongest line, (220) the second; d = a / sqrt(h^2 + k^2 + l^2)
    top_two = strongest_peaks(pattern, 2)
    assert top_two[0] == pytest.approx(bragg_two_theta(5.64 / 2), abs=0.03)
    assert top_two[1] == pytest.approx(bragg_two_theta(5.64 / math.sqrt(8)), abs=0.03)
    assert pattern.intensity.max() == pytest.approx(1.0)


def test_structure_peaks_agree_with_pymatgen_xrdcalculator():
    from pymatgen.analysis.diffraction.xrd import XRDCalculator
    from pymatgen.core import Lattice, Structure

    rutile = Structure.from_spacegroup(
        "P4_2/mnm", Lattice.tetragonal(4.594, 2.959), ["Ti", "O"], [[0, 0, 0], [0.3048, 0.3048, 0]]
    )
    sticks = XRDCalculator(wavelength=DEFAULT_WAVELENGTH).get_pattern(rutile, two_theta_range=(5, 90))
    expected = sticks.x[np.argsort(-sticks.y)[:3]]
    found = strongest_peaks(to_pattern(rutile), 3)
    for angle in expected:
        assert np.min(np.abs(found - angle)) < 0.04, (angle, found)


def test_diffraction_pattern_is_rendered_from_its_d_spacings(rocksalt, rocksalt_pattern):
    from pymatgen.analysis.diffraction.xrd import XRDCalculator

    sticks = XRDCalculator(wavelength="CuKa").get_pattern(rocksalt)  # 1.54184 A, not the reference
    pattern = to_pattern(sticks)
    assert pattern.wavelength == pytest.approx(DEFAULT_WAVELENGTH)
    strongest_stick = sticks.x[np.argmax(sticks.y)]
    peak = strongest_peaks(pattern, 1)[0]
    assert peak == pytest.approx(bragg_two_theta(5.64 / 2), abs=0.03)
    assert abs(peak - strongest_stick) > 0.03  # moved to the reference wavelength, not copied
    # same sticks, same rendering: equal to the Structure route
    np.testing.assert_allclose(pattern.intensity, rocksalt_pattern.intensity, atol=2e-3)


def test_structure_cif_path_is_simulated(tmp_path, rocksalt, rocksalt_pattern):
    path = tmp_path / "NaCl.cif"
    rocksalt.to(filename=str(path))
    pattern = to_pattern(path)
    assert pattern.source == str(path)
    assert pattern.metadata["simulated"] is True
    np.testing.assert_allclose(pattern.intensity, rocksalt_pattern.intensity, atol=2e-3)


def test_structure_file_that_is_not_a_structure(tmp_path):
    path = tmp_path / "broken.cif"
    path.write_text("data_x\n_cell_length_a 5\n")
    with pytest.raises(PatternError) as caught:
        to_pattern(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


@needs_shared
def test_powder_cif_with_measured_profile_is_read_not_simulated():
    path = SHARED / "pdcif" / "gw5052Mg2Si_100K_LTsup2.rtv.combined.cif"
    pattern = to_pattern(path)
    assert not pattern.metadata.get("simulated")
    assert pattern.wavelength == pytest.approx(0.49935, abs=1e-4)
    assert len(pattern) > 500


# -------------------------------------------------------------------------------- xrayutilities
@pytest.fixture(scope="module")
def xu():
    import xrayutilities

    return xrayutilities


def test_xrayutilities_crystal(xu):
    silicon = xu.materials.Si
    pattern = to_pattern(silicon)
    a = silicon.lattice.a
    assert pattern.metadata["simulated"] is True
    assert strongest_peaks(pattern, 1)[0] == pytest.approx(bragg_two_theta(a / math.sqrt(3)), abs=0.03)
    # the same crystal through a PowderDiffraction at another wavelength: the same profile, up to
    # xrayutilities' wavelength-dependent anomalous scattering (< 1 %)
    powder = xu.simpack.PowderDiffraction(silicon, tt_cutoff=95, wl=1.0)
    np.testing.assert_allclose(to_pattern(powder).intensity, pattern.intensity, atol=1e-2)


def test_xrayutilities_and_pymatgen_silicon_agree(xu):
    from pymatgen.core import Lattice, Structure

    a = xu.materials.Si.lattice.a
    silicon = Structure.from_spacegroup("Fd-3m", Lattice.cubic(a), ["Si"], [[0, 0, 0]])  # origin choice 1
    ours, theirs = to_pattern(silicon), to_pattern(xu.materials.Si)
    np.testing.assert_allclose(np.sort(strongest_peaks(ours, 4)), np.sort(strongest_peaks(theirs, 4)), atol=0.03)


def test_xrayutilities_powder_model(xu):
    model = xu.simpack.PowderModel(xu.simpack.Powder(xu.materials.Si, 1))
    try:
        pattern = to_pattern(model)
    finally:
        model.close()
    assert pattern.wavelength == pytest.approx(WAVELENGTHS["CuKa1"], abs=1e-4)
    a = xu.materials.Si.lattice.a
    assert strongest_peaks(pattern, 1)[0] == pytest.approx(bragg_two_theta(a / math.sqrt(3), pattern.wavelength), abs=0.03)


@needs_shared
def test_xrayutilities_io_xrdml_matches_csn_reader(xu):
    path = SHARED / "formats" / "XRD-918-16_10.xrdml"
    from_file = xu.io.XRDMLFile(str(path))
    from_arrays = xu.io.getxrdml_scan(str(path), "tt")  # [scan motor, 2theta, intensity]
    ours = Pattern.from_file(path)
    for obj in (from_file, from_arrays):
        pattern = to_pattern(obj)
        np.testing.assert_allclose(pattern.two_theta, ours.two_theta, atol=1e-6)
        np.testing.assert_allclose(pattern.intensity / pattern.intensity.max(), ours.intensity / ours.intensity.max(), atol=1e-6)


@needs_shared
def test_xrayutilities_io_ras_file(tmp_path, xu):
    data = np.loadtxt(SHARED / "rruff-dev" / "rruff-0002.xy")[::5]
    lines = ["*RAS_DATA_START", "*RAS_HEADER_START", '*MEAS_SCAN_AXIS_X_INTERNAL "TwoThetaTheta"',
             f'*MEAS_DATA_COUNT "{len(data)}"', '*HW_XG_WAVE_LENGTH_ALPHA1 "1.540593"', "*RAS_HEADER_END",
             "*RAS_INT_START", *(f"{t:.4f} {y:.3f} 1.0000" for t, y in data), "*RAS_INT_END", "*RAS_DATA_END"]
    path = tmp_path / "scan.ras"
    path.write_text("\n".join(lines) + "\n")
    pattern = to_pattern(xu.io.RASFile(str(path)))
    assert pattern.wavelength == pytest.approx(1.540593)
    assert pattern.metadata["wavelength_source"] == "file"
    np.testing.assert_allclose(pattern.two_theta, data[:, 0], atol=1e-4)
    np.testing.assert_allclose(pattern.intensity, data[:, 1], atol=1e-3)
    assert to_pattern(xu.io.RASFile(str(path)), wavelength="CuKa1").wavelength == pytest.approx(1.540593)
    with pytest.raises(PatternError, match="records wavelength 1.54059"):
        to_pattern(xu.io.RASFile(str(path)), wavelength="MoKa1")


@needs_shared
def test_xrayutilities_io_powder_cif(tmp_path, xu):
    data = np.loadtxt(SHARED / "rruff-dev" / "rruff-0002.xy")[::10]
    lines = ["data_test", "_diffrn_radiation_wavelength 0.7093", "loop_", "_pd_meas_2theta_scan",
             "_pd_meas_intensity_total", *(f"{t:.3f} {y:.2f}" for t, y in data)]
    path = tmp_path / "profile.cif"
    path.write_text("\n".join(lines) + "\n")
    pattern = to_pattern(xu.io.pdcif.pdCIF(str(path)))
    assert pattern.wavelength == pytest.approx(0.7093)
    np.testing.assert_allclose(pattern.intensity, data[:, 1], atol=1e-2)
    # the same file by path: csn's own pdCIF reader, not a structure simulation
    by_path = to_pattern(path)
    assert not by_path.metadata.get("simulated")
    np.testing.assert_allclose(by_path.two_theta, pattern.two_theta)


# ---------------------------------------------------------------------------------------- arrays
def test_arrays_with_a_named_wavelength():
    two_theta = np.linspace(5, 60, 400)
    intensity = np.exp(-((two_theta - 20) / 0.1) ** 2) + 0.01
    pattern = to_pattern((two_theta, intensity), wavelength="MoKa1")
    assert pattern.wavelength == pytest.approx(WAVELENGTHS["MoKa1"])
    np.testing.assert_array_equal(pattern.intensity, intensity)
    for shaped in (np.c_[two_theta, intensity], np.vstack([two_theta, intensity])):
        np.testing.assert_array_equal(to_pattern(shaped).intensity, intensity)
    with_esd = to_pattern((two_theta, intensity, np.sqrt(intensity)))
    np.testing.assert_allclose(with_esd.esd, np.sqrt(intensity))
    motor_first = to_pattern([two_theta / 2, two_theta, intensity])  # (scan motor, 2theta, intensity)
    np.testing.assert_array_equal(motor_first.two_theta, two_theta)


def test_pattern_passes_through_and_wavelength_conflicts_are_errors():
    two_theta = np.linspace(5, 60, 400)
    pattern = Pattern(two_theta, np.cos(two_theta) ** 2 + 0.1, wavelength="CuKa1", source="p")
    assert to_pattern(pattern) is pattern
    assert to_pattern(pattern, wavelength=1.5406) is pattern
    with pytest.raises(PatternError, match="0.7"):
        to_pattern(pattern, wavelength=0.71)


@pytest.mark.parametrize("bad", [
    (np.linspace(5, 60, 100), np.full(100, np.nan)),
    (np.linspace(5, 60, 100), np.ones(99)),
    ([1.0, 2.0], [3.0, 4.0]),
    (np.ones((4, 4, 4)),),
    np.ones((5, 7)),
    (["a"] * 80, ["b"] * 80),
])
def test_bad_arrays_raise_pattern_error(bad):
    with pytest.raises(PatternError):
        to_pattern(bad[0] if len(bad) == 1 else bad)


@pytest.mark.parametrize("obj", [42, {"two_theta": [1, 2]}, object(), 3.5])
def test_unknown_objects_raise_type_error(obj):
    with pytest.raises(TypeError, match="cannot make a pattern from"):
        to_pattern(obj)


def test_arrays_do_not_import_pymatgen_or_xrayutilities():
    code = (
        "import sys, numpy as np\n"
        "from csn_plugin.inputs import to_pattern\n"
        "t = np.linspace(5, 60, 200)\n"
        "to_pattern((t, np.sin(t) ** 2 + 1))\n"
        "print(sorted(m for m in ('pymatgen', 'xrayutilities', 'torch') if m in sys.modules))\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


@pytest.mark.parametrize("shape", [(9001, 4), (4, 9001), (5, 5)])
def test_arrays_of_no_pattern_shape_are_refused_by_shape(shape):
    from csn_plugin.inputs import to_pattern
    from csn_plugin.errors import PatternError

    with pytest.raises(PatternError) as caught:
        to_pattern(np.ones(shape))
    assert f"got shape {shape}" in str(caught.value) and "(N, 2) or (N, 3)" in str(caught.value)


def test_huge_cell_structure_file_is_a_pattern_error(tmp_path):
    from csn_plugin.inputs import to_pattern
    from csn_plugin.errors import PatternError

    path = tmp_path / "huge.cif"
    path.write_text(
        "data_h\n_cell_length_a 300\n_cell_length_b 300\n_cell_length_c 300\n_cell_angle_alpha 90\n_cell_angle_beta 90\n"
        "_cell_angle_gamma 90\n_symmetry_space_group_name_H-M 'P 1'\nloop_\n_atom_site_label\n_atom_site_type_symbol\n"
        "_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nNa1 Na 0 0 0\n"
    )
    with pytest.raises(PatternError) as caught:
        to_pattern(path)
    assert str(caught.value).startswith(f"{path}: the cell (a=300 b=300 c=300 A")
