"""csn_plugin.synth.simulate against pymatgen's XRDCalculator on varied real structures."""

import functools
import gzip
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

CRYSTAL_SYSTEMS = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic")


def crystal_system(space_group: int) -> str:
    for upper, name in zip((2, 15, 74, 142, 167, 194, 230), CRYSTAL_SYSTEMS):
        if space_group <= upper:
            return name
    raise ValueError(space_group)


def _spread(items, count):
    """`count` items at evenly spaced ranks (first and last included)."""
    if len(items) <= count:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


def _disordered(structure):
    """A partially occupied variant: the first element shares its sites 60/40 with the next
    element (Z + 1); the second element's sites are 90 % occupied (vacancies)."""
    from pymatgen.core import Element, Structure

    elements = [element for element in structure.composition.elements]
    first, second = elements[0], elements[1] if len(elements) > 1 else None
    species = []
    for site in structure:
        element = site.specie
        if element == first:
            species.append({first: 0.6, Element.from_Z(first.Z + 1): 0.4})
        elif element == second:
            species.append({second: 0.9})
        else:
            species.append({element: 1.0})
    return Structure(structure.lattice, species, structure.frac_coords)


@functools.lru_cache(maxsize=1)
def comparison_structures():
    """[(name, Structure)]: the deterministic comparison set shared with benchmarks/bench_simulate.py.

    - AFLOW prototypes (pymatgen): per crystal system (from the space group in the AFLOW label),
      5 entries of at most 200 sites at evenly spaced ranks of (sites, label);
    - robocrys minerals: every 20th by mineral name (only with the optional extra
      ``csn-plugin[minerals]``; without it the set has no minerals);
    - pyxtal's database CIFs: every 6th readable file by name with at most 220 sites, plus every
      such file with 100 or more sites;
    - pyxtal random crystals (seed 7) in P-1, P2_1/c, R-3 and P1;
    - partially occupied variants (see _disordered) of the first 4 multi-element AFLOW picks.
    """
    import pymatgen.analysis.prototypes as prototypes
    import pyxtal
    from pymatgen.core import Structure

    from csn_plugin.synth.structures import mineral_db_path

    picks = []
    aflow_path = Path(prototypes.__file__).parent / "aflow_prototypes.json.gz"
    by_system = {name: [] for name in CRYSTAL_SYSTEMS}
    for entry in json.loads(gzip.open(aflow_path).read()):
        label = entry["tags"]["aflow"]
        space_group = int(label.split("_")[2])
        sites = len(entry["snl"]["sites"])
        if sites <= 200:
            by_system[crystal_system(space_group)].append((sites, label, entry["snl"]))
    aflow_picks = []
    for system in CRYSTAL_SYSTEMS:
        for sites, label, snl in _spread(sorted(by_system[system], key=lambda row: row[:2]), 5):
            structure = Structure.from_dict({**snl, "@class": "Structure", "@module": "pymatgen.core.structure"})
            aflow_picks.append((f"aflow:{label}", structure))
    picks += aflow_picks

    if mineral_db_path() is not None:
        minerals = json.loads(gzip.open(mineral_db_path()).read())
        column = {name: i for i, name in enumerate(minerals["columns"])}
        rows = sorted(minerals["data"], key=lambda row: row[column["mineral"]])
        for row in rows[::20]:
            picks.append((f"mineral:{row[column['mineral']]}", Structure.from_dict(row[column["structure"]])))

    readable = []
    for path in sorted((Path(pyxtal.__file__).parent / "database" / "cifs").glob("*.cif")):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                structure = Structure.from_file(path)
        except Exception:
            continue
        if len(structure) <= 220:
            readable.append((f"pyxtal-cif:{path.name}", structure))
    picks += [pick for i, pick in enumerate(readable) if i % 6 == 0 or len(pick[1]) >= 100]

    from pyxtal import pyxtal as PyXtal

    for group, species, counts in [
        (2, ["Si", "O"], [4, 8]),
        (14, ["Ca", "C", "O"], [4, 4, 12]),
        (148, ["Fe", "Ti", "O"], [6, 6, 18]),
        (1, ["Zn", "S", "Cl"], [6, 6, 8]),
    ]:
        crystal = PyXtal()
        crystal.from_random(3, group, species, counts, seed=7)
        picks.append((f"random:{group}", crystal.to_pymatgen()))

    multi = [(name, s) for name, s in aflow_picks if len(s.composition.elements) > 1][:4]
    picks += [(f"disordered:{name}", _disordered(s)) for name, s in multi]
    return picks


def assert_peaks_agree(reference_x, reference_y, x, y, what, two_theta_tol=0.005, intensity_tol=1.0):
    """Every peak above 0.5 in either list has a partner within the tolerances in the other."""
    for (ax, ay, bx, by, side) in [(reference_x, reference_y, x, y, "pymatgen"), (x, y, reference_x, reference_y, "csn")]:
        ax, ay, bx, by = map(np.asarray, (ax, ay, bx, by))
        for position, height in zip(ax[ay > 0.5], ay[ay > 0.5]):
            near = np.abs(bx - position) <= two_theta_tol
            assert near.any() and np.abs(by[near] - height).min() <= intensity_tol, (
                f"{what}: {side} peak at {position:.4f} deg, intensity {height:.2f} has no partner"
            )


@pytest.fixture(scope="module")
def structures():
    return comparison_structures()


def test_comparison_set_is_varied(structures):
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    assert len(structures) >= 50
    systems = {SpacegroupAnalyzer(s, symprec=0.01).get_crystal_system() for _, s in structures}
    assert systems == set(CRYSTAL_SYSTEMS)
    sizes = [len(s) for _, s in structures]
    assert min(sizes) == 1 and max(sizes) >= 150
    assert sum(not s.is_ordered for _, s in structures) >= 4


def test_agrees_with_pymatgen_cu(structures):
    from pymatgen.analysis.diffraction.xrd import XRDCalculator

    from csn_plugin.synth.simulate import simulate_peaks

    calculator = XRDCalculator(1.5406)
    for name, structure in structures:
        reference = calculator.get_pattern(structure)
        peaks = simulate_peaks(structure, 1.5406)
        assert_peaks_agree(reference.x, reference.y, peaks.x, peaks.y, name)
        assert peaks.intensity.max() == pytest.approx(100)
        assert np.all(np.diff(peaks.two_theta) > 0)
        np.testing.assert_allclose(peaks.d, 1.5406 / (2 * np.sin(np.radians(peaks.two_theta / 2))), rtol=1e-9)


def _pymatgen_families(pattern):
    """pymatgen's hkl families per peak as sets of 3-index tuples (hkil -> hkl)."""
    families, multiplicities = [], []
    for peak in pattern.hkls:
        families.append({(f["hkl"][0], f["hkl"][1], f["hkl"][-1]) for f in peak})
        multiplicities.append(sum(f["multiplicity"] for f in peak))
    return families, multiplicities


def test_hkl_families_and_multiplicities_match_pymatgen(structures):
    from pymatgen.analysis.diffraction.xrd import XRDCalculator

    from csn_plugin.synth.simulate import simulate_peaks

    calculator = XRDCalculator(1.5406)
    checked_hexagonal = 0
    for name, structure in structures[::3]:
        reference = calculator.get_pattern(structure)
        peaks = simulate_peaks(structure)
        families, multiplicities = _pymatgen_families(reference)
        assert len(peaks) == len(families), name
        assert [set(f) for f in peaks.hkls] == families, name
        assert peaks.multiplicity.tolist() == multiplicities, name
        checked_hexagonal += structure.lattice.is_hexagonal()
    assert checked_hexagonal >= 2


def test_textbook_multiplicities_rock_salt():
    from pymatgen.core import Lattice, Structure

    from csn_plugin.synth.simulate import simulate_peaks

    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    peaks = simulate_peaks(nacl, two_theta_range=(0, 120))
    by_family = {peak_hkls[0]: m for peak_hkls, m in zip(peaks.hkls, peaks.multiplicity) if len(peak_hkls) == 1}
    assert by_family[(1, 1, 1)] == 8 and by_family[(2, 0, 0)] == 6 and by_family[(2, 2, 0)] == 12
    assert by_family[(3, 1, 1)] == 24 and by_family[(2, 2, 2)] == 8
    assert (1, 0, 0) not in by_family and (1, 1, 0) not in by_family  # F-centring absences
    # (511) and (333) share d (h^2 + k^2 + l^2 = 27) and merge into one peak of 24 + 8 reflections
    merged = [m for peak_hkls, m in zip(peaks.hkls, peaks.multiplicity) if set(peak_hkls) == {(5, 1, 1), (3, 3, 3)}]
    assert merged == [32]


@pytest.mark.parametrize("wavelength, pymatgen_wavelength, high", [("MoKa", "MoKa", 60), (0.5, 0.5, 40)])
def test_other_wavelengths(structures, wavelength, pymatgen_wavelength, high):
    from pymatgen.analysis.diffraction.xrd import XRDCalculator

    from csn_plugin.synth.simulate import simulate_peaks

    calculator = XRDCalculator(pymatgen_wavelength)
    for name, structure in structures[::5]:
        reference = calculator.get_pattern(structure, two_theta_range=(5, high))
        peaks = simulate_peaks(structure, wavelength, two_theta_range=(5, high))
        assert peaks.wavelength == pytest.approx(calculator.wavelength)
        assert peaks.two_theta.min() >= 5 and peaks.two_theta.max() <= high
        assert_peaks_agree(reference.x, reference.y, peaks.x, peaks.y, f"{name} at {wavelength}")


def test_whole_sphere_when_range_is_none(structures):
    from pymatgen.analysis.diffraction.xrd import XRDCalculator

    from csn_plugin.synth.simulate import simulate_peaks

    name, structure = next((n, s) for n, s in structures if n.startswith("random:2"))
    reference = XRDCalculator("CrKa").get_pattern(structure, two_theta_range=None)
    peaks = simulate_peaks(structure, "CrKa", two_theta_range=None)
    assert peaks.two_theta.max() > 150
    assert_peaks_agree(reference.x, reference.y, peaks.x, peaks.y, name, intensity_tol=1.5)


def test_cif_path_input(tmp_path, structures):
    from pymatgen.analysis.diffraction.xrd import XRDCalculator
    from pymatgen.io.cif import CifWriter

    from csn_plugin.synth.simulate import simulate_peaks

    name, structure = next((n, s) for n, s in structures if n.startswith("random:14"))
    path = tmp_path / "written.cif"
    CifWriter(structure).write_file(path)
    from_file = simulate_peaks(path)
    from_object = simulate_peaks(structure)
    assert_peaks_agree(from_object.x, from_object.y, from_file.x, from_file.y, name, two_theta_tol=1e-3, intensity_tol=0.1)
    assert len(simulate_peaks(str(path))) == len(from_file)

    measured_cifs = sorted((SHARED_DATA / "pdcif").glob("*.cif"))
    if not measured_cifs:
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    for cif in measured_cifs[:5]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pymatgen.core import Structure

            reference = XRDCalculator(1.5406).get_pattern(Structure.from_file(cif))
        peaks = simulate_peaks(cif)
        assert_peaks_agree(reference.x, reference.y, peaks.x, peaks.y, cif.name)


def _arrays(structure):
    coords, numbers, occupancies = [], [], []
    for site in structure:
        for species, occupancy in site.species.items():
            coords.append(site.frac_coords)
            numbers.append(species.Z)
            occupancies.append(occupancy)
    return structure.lattice.matrix, np.array(coords), np.array(numbers), np.array(occupancies)


def test_reflections_times_lp_give_pymatgen_intensities(structures):
    from pymatgen.analysis.diffraction.xrd import XRDCalculator

    from csn_plugin.physics import lorentz_polarization
    from csn_plugin.synth.simulate import simulate_reflections

    wavelength, d_min = 1.5406, 0.889
    calculator = XRDCalculator(wavelength)
    two_theta_max = 2 * np.degrees(np.arcsin(wavelength / (2 * d_min)))
    for name, structure in structures[1::4]:
        reflections = simulate_reflections(*_arrays(structure), d_min=d_min)
        assert np.all(np.diff(reflections.d) < 0) and reflections.d.min() >= d_min
        assert np.all(reflections.multiplicity % 2 == 0) and reflections.cos2 is None
        two_theta = 2 * np.degrees(np.arcsin(wavelength / (2 * reflections.d)))
        intensity = reflections.f2m * lorentz_polarization(two_theta)
        intensity = intensity / intensity.max() * 100
        keep = intensity > 1e-3
        reference = calculator.get_pattern(structure, two_theta_range=(0, two_theta_max))
        assert_peaks_agree(reference.x, reference.y, two_theta[keep], intensity[keep], name)


def test_reflections_po_direction_cos2():
    from pymatgen.core import Lattice, Structure

    from csn_plugin.synth.simulate import simulate_reflections

    rutile = Structure.from_spacegroup(
        "P4_2/mnm", Lattice.tetragonal(4.594, 2.959), ["Ti", "O"], [[0, 0, 0], [0.3053, 0.3053, 0]]
    )
    matrix, coords, numbers, occupancies = _arrays(rutile)
    plain = simulate_reflections(matrix, coords, numbers, occupancies, d_min=0.8)
    along_c = simulate_reflections(matrix, coords, numbers, occupancies, d_min=0.8, po_direction=[0, 0, 1])
    np.testing.assert_array_equal(plain.f2m, along_c.f2m)
    assert np.all((along_c.cos2 >= 0) & (along_c.cos2 <= 1))
    c, a = 2.959, 4.594
    for d, cos2 in zip(along_c.d, along_c.cos2):
        if any(abs(d - c / n) < 1e-9 for n in (1, 2, 3)):  # (00l) alone at this d: parallel to c
            assert cos2 == pytest.approx(1.0)
        if any(abs(d - a / np.sqrt(n)) < 1e-9 for n in (1, 2, 4, 5)):  # (hk0): perpendicular to c
            assert cos2 == pytest.approx(0.0, abs=1e-12)
    # (101), (011) and their equivalents: cos^2 = (1/c)^2 / (1/a^2 + 1/c^2)
    d_101 = 1 / np.sqrt(1 / a**2 + 1 / c**2)
    index = np.argmin(np.abs(along_c.d - d_101))
    assert along_c.cos2[index] == pytest.approx((1 / c**2) / (1 / a**2 + 1 / c**2))
    assert along_c.multiplicity[index] == 8


def test_reflections_chunking_does_not_change_results(monkeypatch, structures):
    import csn_plugin.synth.simulate as simulate

    name, structure = max(structures, key=lambda pick: len(pick[1]))
    arrays = _arrays(structure)
    whole = simulate.simulate_reflections(*arrays, d_min=1.0)
    monkeypatch.setattr(simulate, "_CHUNK_ENTRIES", 1000)
    chunked = simulate.simulate_reflections(*arrays, d_min=1.0)
    np.testing.assert_array_equal(whole.d, chunked.d)
    np.testing.assert_allclose(whole.f2m, chunked.f2m, rtol=1e-9, atol=1e-9 * whole.f2m.max())


def test_lorentz_polarization_values():
    from csn_plugin.physics import lorentz_polarization

    # at 2theta = 90: (1 + 0) / (1/2 * sqrt(1/2)); at 60: (1 + 1/4) / (1/4 * sqrt(3)/2)
    np.testing.assert_allclose(lorentz_polarization([90.0, 60.0]), [2 * np.sqrt(2), 10 / np.sqrt(3)])


def test_bad_inputs_raise_clear_errors(tmp_path):
    from csn_plugin.synth.simulate import StructureError, simulate_peaks, simulate_reflections

    with pytest.raises(StructureError, match="expected a pymatgen Structure"):
        simulate_peaks(42)
    with pytest.raises(StructureError, match="no such file"):
        simulate_peaks(tmp_path / "missing.cif")
    not_a_structure = tmp_path / "notes.cif"
    not_a_structure.write_text("this is not a crystal structure\n")
    with pytest.raises(StructureError) as caught:
        simulate_peaks(not_a_structure)
    message = str(caught.value)
    assert message.startswith(f"{not_a_structure}: ") and "\n" not in message
    from pymatgen.core import Lattice, Structure

    iron = Structure(Lattice.cubic(2.87), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(ValueError, match="unknown wavelength"):
        simulate_peaks(iron, "Unobtainium")
    with pytest.raises(ValueError, match="two_theta_range"):
        simulate_peaks(iron, two_theta_range=(90, 10))
    cubic = np.eye(3) * 4.0
    with pytest.raises(ValueError, match="atomic numbers"):
        simulate_reflections(cubic, [[0, 0, 0]], [26, 8])
    with pytest.raises(ValueError, match="scattering factors"):
        simulate_reflections(cubic, [[0, 0, 0]], [0])
    with pytest.raises(ValueError, match="singular"):
        simulate_reflections(np.zeros((3, 3)), [[0, 0, 0]], [26])


def test_cli_prints_and_writes_peak_table(tmp_path, structures):
    from click.testing import CliRunner
    from pymatgen.io.cif import CifWriter

    from csn_plugin.cli.main import cli
    from csn_plugin.synth.simulate import simulate_peaks

    name, structure = next((n, s) for n, s in structures if n.startswith("random:148"))
    cif = tmp_path / "trigonal.cif"
    CifWriter(structure).write_file(cif)
    expected = simulate_peaks(cif, "MoKa", two_theta_range=(5, 40))

    printed = CliRunner().invoke(cli, ["simulate", str(cif), "--wavelength", "MoKa", "--two-theta-range", "5", "40"])
    assert printed.exit_code == 0, printed.output
    rows = [line.split() for line in printed.output.splitlines() if not line.startswith("#")]
    assert len(rows) == len(expected)
    np.testing.assert_allclose([float(row[0]) for row in rows], expected.two_theta, atol=1e-4)
    assert [int(row[-1]) for row in rows] == expected.multiplicity.tolist()

    table = tmp_path / "peaks.csv"
    written = CliRunner().invoke(
        cli, ["simulate", str(cif), "-o", str(table), "--wavelength", "MoKa", "--two-theta-range", "5", "40"]
    )
    assert written.exit_code == 0, written.output
    lines = table.read_text().splitlines()
    assert lines[0] == "two_theta,d,intensity,hkl,multiplicity" and len(lines) == len(expected) + 1
    values = np.array([[float(cell) for cell in line.split(",")[:3]] for line in lines[1:]])
    np.testing.assert_allclose(values[:, 2], expected.intensity, atol=1e-3)
    np.testing.assert_allclose(values[:, 1], expected.d, rtol=1e-5)


@pytest.mark.parametrize("content", [None, "data_broken\n_cell_length_a 5\nloop_\n_atom_site_label\n"])
def test_cli_bad_structure_file_is_one_line_error(tmp_path, content):
    from click.testing import CliRunner

    from csn_plugin.cli.main import cli

    path = tmp_path / "broken.cif"
    if content is not None:
        path.write_text(content)
    result = CliRunner().invoke(cli, ["simulate", str(path)])
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    message = result.output.strip()
    assert message.startswith(f"Error: {path}: ") and "\n" not in message and "Traceback" not in message


@pytest.mark.parametrize("a", [300.0, 3000.0])
def test_huge_cells_are_refused_before_allocating(a):
    """a = 300 A or 3000 A: a clear error naming the cell, at once, instead of a box of
    hundreds of GB (the bound is checked before any reciprocal-space array exists)."""
    import resource
    import time

    from csn_plugin.synth.simulate import MAX_REFLECTIONS, ReflectionLimitError, simulate_reflections

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(ReflectionLimitError) as caught:
        simulate_reflections(np.eye(3) * a, [[0, 0, 0], [0.5, 0.5, 0.5]], [11, 17])
    assert time.perf_counter() - started < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB
    message = str(caught.value)
    assert f"a={a:g} b={a:g} c={a:g} A" in message and f"{MAX_REFLECTIONS:,}" in message


def test_large_but_allowed_cell_is_simulated():
    from csn_plugin.synth.simulate import MAX_REFLECTIONS, simulate_reflections

    reflections = simulate_reflections(np.eye(3) * 40.0, [[0, 0, 0]], [6], d_min=1.0)
    # every d of a primitive cubic cell is a / sqrt(h^2 + k^2 + l^2)
    assert reflections.d.max() == pytest.approx(40.0)
    assert 0 < len(reflections) < MAX_REFLECTIONS


def test_unknown_element_in_a_cif_is_named(tmp_path):
    from csn_plugin.synth.simulate import StructureError, simulate_peaks

    path = tmp_path / "qq.cif"
    path.write_text(
        "data_q\n_cell_length_a 5\n_cell_length_b 5\n_cell_length_c 5\n_cell_angle_alpha 90\n_cell_angle_beta 90\n"
        "_cell_angle_gamma 90\n_symmetry_space_group_name_H-M 'P 1'\nloop_\n_atom_site_label\n_atom_site_type_symbol\n"
        "_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nQq1 Qq 0 0 0\n"
    )
    with pytest.raises(StructureError) as caught:
        simulate_peaks(path)
    assert str(caught.value) == f"{path}: unknown element 'Qq' (site 1): not in the periodic table"


def test_nonsense_atomic_numbers_are_refused():
    from csn_plugin.synth.simulate import simulate_reflections

    with pytest.raises(ValueError, match=r"Z=-5: not an element"):
        simulate_reflections(np.eye(3) * 4, [[0, 0, 0]], [-5])
    with pytest.raises(ValueError, match=r"whole numbers"):
        simulate_reflections(np.eye(3) * 4, [[0, 0, 0]], [np.nan])
