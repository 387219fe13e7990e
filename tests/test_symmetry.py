"""Crystallographic facts that csn_plugin.symmetry must reproduce from spglib's operations."""

import numpy as np
import pytest

from csn_plugin import symmetry as sym

# The 11 enantiomorphic pairs of space-group types (right-handed screw first).
ENANTIOMORPHIC_PAIRS = [(76, 78), (91, 95), (92, 96), (144, 145), (151, 153), (152, 154),
                        (169, 170), (171, 172), (178, 179), (180, 181), (213, 212)]
SIGNED_RULES = ("3_1/3_2", "4_1/4_3", "6_1/6_5", "6_2/6_4")


def field(record, name):
    """A field of spglib's SpaceGroupType (a dict before spglib 2.5)."""
    return record[name] if isinstance(record, dict) else getattr(record, name)


def rules_of(n):
    """{rule name: value} of the non-zero rules of group n."""
    return {name: int(value) for name, value in zip(sym.RULE_NAMES, sym.symmetry_rules(n)) if value}


def test_rule_names_are_32_operation_rules_then_14_lattices():
    assert len(sym.RULE_NAMES) == 46 and len(set(sym.RULE_NAMES)) == 46
    assert sym.RULE_NAMES[32:] == tuple(f"lattice {b}" for b in sym.BRAVAIS_LATTICES)
    assert not any(name.startswith("lattice") for name in sym.RULE_NAMES[:32])


def test_space_group_facts():
    assert sym.space_group(14).symbol == "P2_1/c"
    assert sym.space_group(194).symbol == "P6_3/mmc"
    assert sym.space_group(225).symbol == "Fm-3m"
    info = sym.space_group(14)
    assert (info.crystal_system, info.bravais, info.point_group, info.laue_class) == \
        ("monoclinic", "mP", "2/m", "2/m")
    assert info.centrosymmetric and not sym.space_group(4).centrosymmetric
    assert sym.space_group(166).bravais == "hR" and sym.space_group(160).laue_class == "-3m"
    assert sym.space_group(38).bravais == "oS"  # A-centred orthorhombic
    assert sym.space_group(12).bravais == "mS"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_hall_numbers_are_the_default_settings():
    import spglib

    for n in range(1, 231):
        record = spglib.get_spacegroup_type(sym.space_group(n).hall_number)
        assert field(record, "number") == n
    assert field(spglib.get_spacegroup_type(sym.space_group(166).hall_number), "choice") == "H"
    assert field(spglib.get_spacegroup_type(sym.space_group(14).hall_number), "international_full") \
        == "P 1 2_1/c 1"


@pytest.mark.parametrize("bad", [0, 231, -5, "14", 14.0, True, None])
def test_bad_numbers_are_rejected(bad):
    with pytest.raises(ValueError):
        sym.space_group(bad)
    with pytest.raises(ValueError):
        sym.symmetry_rules(bad)


@pytest.mark.parametrize("n, system", [(1, "triclinic"), (2, "triclinic"), (3, "monoclinic"),
                                       (15, "monoclinic"), (16, "orthorhombic"), (74, "orthorhombic"),
                                       (75, "tetragonal"), (142, "tetragonal"), (143, "trigonal"),
                                       (167, "trigonal"), (168, "hexagonal"), (194, "hexagonal"),
                                       (195, "cubic"), (230, "cubic")])
def test_crystal_system_boundaries(n, system):
    assert sym.space_group(n).crystal_system == system
    assert sym.CRYSTAL_SYSTEMS[sym.crystal_system_index(n)] == system
    assert sym.group_to_crystal_system()[n - 1] == sym.CRYSTAL_SYSTEMS.index(system)


def test_groups_per_crystal_system_and_lattice():
    # Textbook counts: space-group types per crystal system and per Bravais lattice.
    assert np.bincount(sym.group_to_crystal_system(), minlength=7).tolist() == [2, 13, 59, 68, 25, 27, 36]
    per_lattice = dict(zip(sym.BRAVAIS_LATTICES, np.bincount(sym.group_to_bravais(), minlength=14).tolist()))
    assert per_lattice == {"aP": 2, "mP": 8, "mS": 5, "oP": 30, "oS": 15, "oF": 5, "oI": 9, "tP": 49,
                           "tI": 19, "hR": 7, "hP": 45, "cP": 15, "cF": 11, "cI": 10}
    # summing 230 probabilities into lattices keeps the total
    p = np.random.default_rng(0).dirichlet(np.ones(230))
    assert np.bincount(sym.group_to_bravais(), weights=p, minlength=14).sum() == pytest.approx(1.0)


def test_point_groups_laue_classes_centrosymmetry():
    infos = [sym.space_group(n) for n in range(1, 231)]
    assert len({i.point_group for i in infos}) == 32
    assert len({i.laue_class for i in infos}) == 11
    assert sum(i.centrosymmetric for i in infos) == 92
    for i in infos:  # a group is centrosymmetric exactly when its point group is its Laue class
        assert i.centrosymmetric == (i.point_group == i.laue_class)


def test_triclinic():
    assert rules_of(1) == {"lattice aP": 1}
    assert rules_of(2) == {"-1": 1, "lattice aP": 1}


def test_monoclinic():
    assert rules_of(14) == {"-1": 1, "2_1 primary": 1, "a/b/c glide primary": 1, "c glide": 1,
                            "non-symmorphic": 1, "lattice mP": 1}
    assert rules_of(3) == {"2 primary": 1, "lattice mP": 1}
    c2 = rules_of(5)  # C centring puts 2_1 axes between the 2-fold axes
    assert c2["2 primary"] == 1 and c2["2_1 primary"] == 1 and c2["lattice mS"] == 1


def test_orthorhombic():
    pnma = rules_of(62)
    for name in ("2_1 primary", "2_1 secondary", "2_1 tertiary", "n glide primary", "m secondary",
                 "a/b/c glide tertiary", "-1", "lattice oP"):
        assert pnma[name] == 1
    assert not {"2 primary", "2 secondary", "2 tertiary", "m primary"} & set(pnma)
    assert rules_of(19) == {"2_1 primary": 1, "2_1 secondary": 1, "2_1 tertiary": 1,
                            "non-symmorphic": 1, "lattice oP": 1}
    assert "d glide primary" in rules_of(43) and "d glide secondary" in rules_of(43)  # Fdd2
    assert "c glide" in rules_of(27) and "c glide" not in rules_of(32)  # Pcc2 vs Pba2


def test_tetragonal():
    assert rules_of(75) == {"4": 1, "2 primary": 1, "lattice tP": 1}
    assert rules_of(77)["4_2"] == 1
    assert rules_of(81) == {"-4": 1, "2 primary": 1, "lattice tP": 1}
    i41amd = rules_of(141)
    assert i41amd["4_1/4_3"] == 1 and i41amd["d glide tertiary"] == 1 and i41amd["lattice tI"] == 1
    # P-42m has 2-fold axes along <100> and mirrors normal to <110>; P-4m2 the other way round
    assert {"2 secondary", "m tertiary"} <= set(rules_of(111)) and "m secondary" not in rules_of(111)
    assert {"2 tertiary", "m secondary"} <= set(rules_of(115)) and "m tertiary" not in rules_of(115)


def test_trigonal_and_hexagonal():
    assert rules_of(166)["lattice hR"] == 1 and rules_of(166)["m secondary"] == 1
    assert rules_of(143) == {"3": 1, "lattice hP": 1}
    # P321 has 2_1 axes between its 2-fold axes; the rule (like the symbol) keeps the simplest: 2
    assert "2 secondary" in rules_of(150) and "2_1 secondary" not in rules_of(150)
    assert "2 tertiary" in rules_of(149) and "2 secondary" not in rules_of(149)  # P312
    assert rules_of(173)["6_3"] == 1 and "6" not in rules_of(173)
    p6, p6m, p6mmm = (sym.symmetry_rules(n) for n in (168, 175, 191))
    assert len({p6.tobytes(), p6m.tobytes(), p6mmm.tobytes()}) == 3
    assert "m primary" not in rules_of(168)
    assert "m primary" in rules_of(175) and "m secondary" not in rules_of(175)
    assert {"m primary", "m secondary", "m tertiary"} <= set(rules_of(191))


def test_cubic():
    fm3m = rules_of(225)
    for name in ("lattice cF", "4", "m primary", "m tertiary", "-1", "3"):
        assert fm3m[name] == 1
    assert rules_of(227)["d glide primary"] == 1  # Fd-3m
    assert "d glide tertiary" in rules_of(230)  # Ia-3d
    assert rules_of(221)["lattice cP"] == 1 and "4_2" in rules_of(223)  # Pm-3n


def test_d_glides():
    d_rules = [sym.RULE_NAMES.index(f"d glide {p}") for p in ("primary", "secondary", "tertiary")]
    with_d = {n for n in range(1, 231) if sym.symmetry_rules(n)[d_rules].any()}
    assert {43, 70, 109, 110, 122, 141, 142, 203, 220, 227, 228, 230} <= with_d  # 'd' in the symbol
    assert all(sym.space_group(n).bravais[1] in "SFI" for n in with_d)  # d needs a centred lattice
    # F centring adds (1/4,1/4,1/2) glides to the diagonal mirrors of Fm-3m: not d glides
    assert 225 not in with_d and 216 not in with_d


@pytest.mark.parametrize("right, left", ENANTIOMORPHIC_PAIRS)
def test_enantiomorphs_differ_only_in_screw_handedness(right, left):
    a, b = sym.symmetry_rules(right), sym.symmetry_rules(left)
    signed = [sym.RULE_NAMES.index(name) for name in SIGNED_RULES]
    unsigned = [i for i in range(46) if i not in signed]
    assert (a[unsigned] == b[unsigned]).all()
    assert (a[signed] == -b[signed]).all() and a[signed].any()


def test_enantiomorph_signs_follow_the_symbols():
    assert rules_of(76)["4_1/4_3"] == 1 and rules_of(78)["4_1/4_3"] == -1
    assert rules_of(144)["3_1/3_2"] == 1 and rules_of(145)["3_1/3_2"] == -1
    assert rules_of(169)["6_1/6_5"] == 1 and rules_of(170)["6_1/6_5"] == -1
    assert rules_of(178)["6_1/6_5"] == 1 and rules_of(179)["6_1/6_5"] == -1
    assert rules_of(180)["6_2/6_4"] == 1 and rules_of(181)["6_2/6_4"] == -1
    assert rules_of(213)["4_1/4_3"] == 1 and rules_of(212)["4_1/4_3"] == -1
    # only members of enantiomorphic pairs have a handed rule at -1
    members = {n for pair in ENANTIOMORPHIC_PAIRS for n in pair}
    assert {n for n in range(1, 231) if (sym.symmetry_rules(n) == -1).any()} <= members


def test_rule_matrix_consistency():
    matrix = sym.rule_matrix()
    assert matrix.shape == (230, 46) and matrix.dtype == np.int8
    assert set(np.unique(matrix)) <= {-1, 0, 1}
    assert (matrix[:, 32:].sum(axis=1) == 1).all() and (matrix[:, 32:] >= 0).all()
    assert (matrix[:, 32:].argmax(axis=1) == sym.group_to_bravais()).all()
    assert (matrix[:, 32:] != 0).any(axis=0).all()  # all 14 lattices used
    inversion = matrix[:, sym.RULE_NAMES.index("-1")]
    assert ((inversion == 1) == [sym.space_group(n).centrosymmetric for n in range(1, 231)]).all()
    assert len({row.tobytes() for row in matrix}) == 230  # every group has its own vector
    matrix[0, 0] = 5  # a copy: the cached table stays intact
    assert sym.symmetry_rules(1)[0] == 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_symmorphic_groups_one_per_arithmetic_class():
    import spglib

    column = sym.rule_matrix()[:, sym.RULE_NAMES.index("non-symmorphic")]
    symmorphic = [n for n in range(1, 231) if column[n - 1] == 0]
    assert len(symmorphic) == 73
    classes = [field(spglib.get_spacegroup_type(sym.space_group(n).hall_number),
                     "arithmetic_crystal_class_number") for n in symmorphic]
    assert sorted(classes) == list(range(1, 74))
    assert column[22] == 0 and column[23] == 1  # I222 vs I2_12_12_1
    assert column[196] == 0 and column[198] == 1  # I23 vs I2_13


def test_rule_targets_round_trip():
    for n in range(1, 231):
        targets = sym.rule_targets(n)
        assert targets.shape == (46, 2) and targets.dtype == np.float32
        assert set(np.unique(targets)) <= {0.0, 1.0}
        assert (sym.rules_from_targets(targets) == sym.symmetry_rules(n)).all()
    batch = np.stack([sym.rule_targets(n) for n in range(1, 231)])
    assert (sym.rules_from_targets(batch) == sym.rule_matrix()).all()
    soft = np.clip(batch * 0.8 + 0.1, 0, 1)  # probabilities on the right side of 0.5
    assert (sym.rules_from_targets(soft) == sym.rule_matrix()).all()
    assert sym.rule_targets(170)[sym.RULE_NAMES.index("6_1/6_5")].tolist() == [1.0, 0.0]
    assert sym.rule_targets(1)[0].tolist() == [0.0, 1.0]
    with pytest.raises(ValueError):
        sym.rules_from_targets(np.zeros((46, 3)))


def test_absence_classes():
    classes = sym.absence_classes()
    assert classes.shape == (230,)
    count = classes.max() + 1
    assert 80 <= count <= 130
    assert sorted(set(classes.tolist())) == list(range(count))

    def same(*groups):
        return len({sym.absence_class(n) for n in groups}) == 1

    assert same(1, 2) and same(3, 6, 10) and same(4, 11) and same(5, 8, 12) and same(7, 13)
    assert same(16, 25, 47) and same(23, 24, 44, 71)  # I222 and I2_12_12_1 cannot be told apart
    assert same(195, 200, 207, 215, 221) and same(196, 202, 209, 216, 225)
    assert same(197, 199) and same(203, 227)
    assert same(159, 163, 186, 190, 194)  # P--c
    for right, left in ENANTIOMORPHIC_PAIRS:
        assert same(right, left)
    assert sym.absence_class_members(sym.absence_class(14)) == [14]
    assert sym.absence_class_members(sym.absence_class(230)) == [230]
    assert not same(3, 4) and not same(221, 225) and not same(225, 229) and not same(3, 5)
    assert not same(158, 159)  # P3c1 and P31c: the c glide on different planes
    for k in range(count):
        members = sym.absence_class_members(k)
        assert members and len({sym.crystal_family(n) for n in members}) == 1
    with pytest.raises(ValueError):
        sym.absence_class_members(count)


def test_markdown_mentions_every_rule():
    text = sym.rules_markdown()
    for name in sym.RULE_NAMES:
        assert f"`{name}`" in text
    assert f"**{sym.absence_classes().max() + 1}** absence classes" in text
