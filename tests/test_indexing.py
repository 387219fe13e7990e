"""Indexing (csn_plugin.crystallography.indexing and .cells): lattice symmetry and cell
comparison, indexing of line positions simulated from real structures (with a zero shift and
an impurity line), rendered patterns through the peak search, a measured lab pattern, and the
"not indexed" outcome."""

import math

import numpy as np
import pytest

from csn_plugin.crystallography import Cell, PeakSet, find_peaks, index_pattern
from csn_plugin.crystallography.cells import compare_lattices, lattice_symmetry, niggli_reduce
from csn_plugin.synth.simulate import simulate_reflections

import crystallography_cases as cases  # the shared cases, registered by conftest.py

pytestmark = pytest.mark.one_thread
CU_KA1 = 1.54056


def _structure(label):
    for row in cases.aflow_structures():
        if row[0] == label:
            return row
    raise LookupError(label)


def _standard_cell(lattice, frac, numbers):
    """spglib's conventional cell of a structure (symprec 1e-3)."""
    import spglib

    return Cell.from_matrix(spglib.get_symmetry_dataset((lattice, frac, numbers), symprec=1e-3).std_lattice)


def _prototype_lines(label, family, min_significance):
    """(space group, spglib conventional cell, the family's true parameters, the first line
    positions, the indexing's lines) of an AFLOW prototype."""
    from csn_plugin.crystallography import indexing

    name, lattice, frac, numbers, occ, sg = _structure(label)
    cell = _standard_cell(lattice, frac, numbers)
    tt = _positions(lattice, frac, numbers, occ)
    return (sg, cell, indexing.cell_to_params(family, cell), tt,
            indexing._prepare_lines(tt, CU_KA1, 25, 0.03, min_significance))


def _positions(lattice, frac, numbers, occ, n=25, min_rel=1.0, low=8.0, high=120.0):
    """The first n line positions (deg 2theta, Cu Ka1, between ``low`` and ``high``) of a
    structure with relative intensity (|F|^2 m LP) above min_rel %."""
    refl = simulate_reflections(lattice, frac, numbers, occ, d_min=CU_KA1 / (2 * math.sin(math.radians(high / 2))))
    theta = np.arcsin(CU_KA1 / (2 * refl.d))
    lp = (1 + np.cos(2 * theta) ** 2) / (np.sin(theta) ** 2 * np.cos(theta))
    inten = refl.f2m * lp
    tt = np.degrees(2 * theta)
    keep = (inten > min_rel / 100 * inten.max()) & (tt > low)
    return np.sort(tt[keep])[:n]


def _lines(label, n=25, zero=0.0, min_rel=1.0, impurity=None):
    """The first n line positions (deg, Cu Ka1) of a structure with relative intensity
    (|F|^2 m LP) above min_rel %, shifted by ``zero``, plus an optional impurity line."""
    name, lattice, frac, numbers, occ, sg = _structure(label)
    tt = _positions(lattice, frac, numbers, occ, n, min_rel) + zero
    if impurity is not None:
        tt = np.sort(np.append(tt, impurity))
    return tt, Cell.from_matrix(lattice)


def test_lattice_symmetry_finds_the_highest_lattice():
    # a tI cell with c/a = sqrt(2) is cF; a hexagonal-metric oC cell is hP; R is found in hexagonal axes
    cf = lattice_symmetry(Cell(3.5355339, 3.5355339, 5.0), "I")[0]
    assert cf.bravais == "cF" and cf.cell.a == pytest.approx(5.0, rel=1e-4)
    hp = lattice_symmetry(Cell(4.0, 4.0 * math.sqrt(3), 7.0), "C")[0]
    assert hp.bravais == "hP" and hp.cell.gamma == pytest.approx(120)
    hr = lattice_symmetry(Cell(4.76, 4.76, 12.99, 90, 90, 120), "R")[0]
    assert hr.bravais == "hR" and hr.cell.c == pytest.approx(12.99, rel=1e-4)
    assert lattice_symmetry(Cell(5, 6, 7, 80, 100, 95), "P")[0].bravais == "aP"
    mono = lattice_symmetry(Cell(5, 6, 7, 90, 100, 90), "P")[0]
    assert mono.bravais == "mP" and mono.cell.alpha == pytest.approx(90) and mono.cell.gamma == pytest.approx(90)


def test_compare_lattices():
    assert compare_lattices(Cell(5, 5, 5), "F", Cell(3.5355339, 3.5355339, 5.0), "I") == ("equivalent", 1)
    assert compare_lattices(Cell(10, 5, 5), "P", Cell(5, 5, 5), "P") == ("supercell", 2)
    assert compare_lattices(Cell(5, 5, 5), "P", Cell(5, 5, 5), "F") == ("supercell", 4)
    assert compare_lattices(Cell(5, 5, 5), "P", Cell(10, 5, 5), "P") == ("subcell", 2)
    assert compare_lattices(Cell(5.1, 5, 5), "P", Cell(5, 5, 5), "P")[0] == "different"
    reduced, t = niggli_reduce(Cell(5, 6, 7, 90, 100, 90))
    assert abs(round(np.linalg.det(t))) == 1 and reduced.volume == pytest.approx(Cell(5, 6, 7, 90, 100, 90).volume)


@pytest.mark.parametrize("label,lattice", [
    ("AB_cF8_225_a_b", "cF"),       # rock salt
    ("AB3C6_cI80_206_a_d_e", "cI"),  # bixbyite-type Ia-3
    ("A4B_tI10_139_de_a", "tI"),
    ("A2B_tI12_141_e_a", "tI"),
    ("A_hP2_194_c", "hP"),
    ("A2B3_hR10_167_c_e", "hR"),    # corundum-type
    ("A2B_oP12_62_2c_c", "oP"),
])
def test_indexes_simulated_lines(label, lattice):
    tt, true = _lines(label, zero=0.03)
    result = index_pattern(tt, CU_KA1, time_limit=20)
    assert result.indexed, result.reason
    best = result.best
    assert best.lattice == lattice
    assert compare_lattices(best.cell, best.centring, true, "P") == ("equivalent", 1)
    assert best.zero_shift == pytest.approx(0.03, abs=0.01)
    assert best.M20 > 20 and best.F_N > 10
    assert best.peaks_indexed == best.peaks_used
    # hkl are reported for every indexed line and reproduce its position
    hkl = best.hkl[best.indexed]
    q = best.cell.q(hkl)
    calc = 2 * np.degrees(np.arcsin(CU_KA1 * np.sqrt(q) / 2)) + best.zero_shift
    assert np.allclose(calc, best.line_two_theta[best.indexed], atol=0.02)
    d = best.to_dict()
    assert d["lattice"] == lattice and d["figure_of_merit"]["M20"] > 20


def test_one_impurity_line_is_tolerated():
    tt, true = _lines("AB_cF8_225_a_b", zero=0.0)
    result = index_pattern(np.sort(np.append(tt, 33.3)), CU_KA1, time_limit=20)
    best = result.best
    assert best is not None and best.lattice == "cF"
    assert best.peaks_indexed == best.peaks_used - 1
    assert not best.indexed[np.argmin(np.abs(best.line_two_theta - 33.3))]


def test_short_axis_with_impurity_lines_among_the_first():
    # A3B2 oP20 (Pnma, 11.2 x 3.83 x 11.3 A): the first lines are all h0l (the short b axis's
    # lines start late), and two impurity lines sit among the first seven; the cell comes from
    # completing the h0l zone (before: a wrong oS cell with M20 60 was ranked first)
    tt, true = _lines("A3B2_oP20_62_3c_2c", zero=0.03, impurity=[15.2, 17.9])
    best = index_pattern(tt, CU_KA1).best
    assert best is not None and best.lattice == "oP"
    assert compare_lattices(best.cell, best.centring, true, "P") == ("equivalent", 1)
    assert best.peaks_indexed == best.peaks_used - 2


def test_tetragonal_with_late_l_lines():
    # the rutile structure with a and b stretched 3.4 times (a = 15.6, c = 2.96 A, a needle-like
    # tunnel cell such as hollandite's): the first ten lines are all hk0, so no pair of the first
    # lines fixes c; two impurity lines among them (before: c came out 5.53 or 6.26 A)
    name, lattice, frac, numbers, occ, sg = _structure("A2B_tP6_136_f_a")
    lattice = np.asarray(lattice) @ np.diag([3.4, 3.4, 1.0])
    tt = _positions(lattice, frac, numbers, occ) + 0.03
    best = index_pattern(np.sort(np.append(tt, [14.1, 16.2])), CU_KA1).best
    assert best is not None and best.lattice == "tP"
    assert compare_lattices(best.cell, best.centring, Cell.from_matrix(lattice), "P") == ("equivalent", 1)
    assert best.c == pytest.approx(2.957, abs=0.005) and best.zero_shift == pytest.approx(0.03, abs=0.01)


def test_monoclinic_whose_first_five_lines_fix_no_hl_term():
    # a P2_1/c cell (13.73 x 7.42 x 9.55 A, beta 121 deg) with the weak 110, 2-12, 22-1 and 220
    # lines unobserved: none of the first five lines has h and l both non-zero, so no subset of
    # them fixes the angle, and the h0l zone has too few lines to rank among the zones (before:
    # an aP cell was ranked first; the 4-subsets of the first six lines find it)
    cell = Cell(13.7291, 7.42217, 9.54608, 90.0, 120.966, 90.0)
    grid = np.arange(-6, 7)
    hkl = np.array([(h, k, l) for h in grid for k in range(0, 9) for l in grid if (h, k, l) != (0, 0, 0)])
    hidden = {(1, 1, 0), (2, 1, -2), (2, 2, -1), (2, 2, 0)}
    keep = [not ((k == 0 and l % 2) or (h == 0 and l == 0 and k % 2))  # the c glide and the 2_1 screw
            and (abs(h), k, l * (1 if h >= 0 else -1)) not in hidden for h, k, l in hkl]
    s = CU_KA1 * np.sqrt(cell.q(hkl[keep])) / 2
    tt = np.unique(np.round(np.degrees(2 * np.arcsin(s[s < 1])), 4))
    tt = tt[tt > 5][:25]
    best = index_pattern(tt, CU_KA1).best
    assert best is not None and best.lattice == "mP"
    assert compare_lattices(best.cell, best.centring, cell, "P") == ("equivalent", 1)


def test_large_cubic_cell_beyond_the_volume_limit():
    # the Si136 clathrate (Fd-3m) stretched 1.5 times: a = 22.3 A, V = 11,100 A^3, beyond
    # max_volume (4,000 A^3), as many Fd-3m cells of the val split (16-22 A); the outer cubic
    # volume shell finds it (before: an oI cell was ranked first)
    name, lattice, frac, numbers, occ, sg = _structure("A_cF136_227_aeg")
    lattice = np.asarray(lattice) * 1.5  # the primitive cell: a quarter of the conventional
    assert 4 * abs(np.linalg.det(lattice)) > 8000
    best = index_pattern(_positions(lattice, frac, numbers, occ, low=5.0, high=80.0), CU_KA1).best
    assert best is not None and best.lattice == "cF"
    assert compare_lattices(best.cell, best.centring, Cell.from_matrix(lattice), "P") == ("equivalent", 1)
    assert best.peaks_indexed == best.peaks_used
    # the outer shell is not searched when the inner one holds a cubic cell
    small = index_pattern(_lines("AB_cF8_225_a_b")[0], CU_KA1).best
    assert small.lattice == "cF" and small.volume < 4000


def test_supercell_of_a_subcell_fit_explains_the_weak_lines():
    # an Immm cell (4.32 x 8.72 x 16.39 A) whose k-odd lines are weak: the b-halved subcell fits
    # the first lines with a high M20 and leaves three of the four weak lines over; its b-doubled
    # supercell indexes them all (in the val split such a subcell was ranked first, 2 of 30)
    from csn_plugin.crystallography import indexing

    cell = Cell(4.324, 8.716, 16.39)
    grid = np.arange(0, 12)
    hkl = np.array([(h, k, l) for h in grid for k in grid for l in grid if (h, k, l) != (0, 0, 0) and (h + k + l) % 2 == 0])
    s = CU_KA1 * np.sqrt(cell.q(hkl)) / 2
    hkl, tt = hkl[s < 1], np.degrees(2 * np.arcsin(s[s < 1]))
    main = np.unique(np.round(tt[(hkl[:, 1] % 2 == 0) & (tt > 5)], 4))[:21]
    weak = np.unique(np.round(tt[(hkl[:, 1] % 2 == 1) & (tt > main[6])], 4))[[0, 2, 4, 6]]
    lines = indexing._prepare_lines(np.sort(np.concatenate([main, weak])), CU_KA1, 25, 0.03, 4.0)
    sub = indexing._best_centring("orthorhombic", indexing.cell_to_params("orthorhombic", Cell(4.324, 4.358, 16.39)),
                                  lines, 0.0, 0.75)
    assert 21 <= sub.n_indexed < 25  # (one weak line falls on a subcell line)
    found = indexing._supercell_fits([(sub, "orthorhombic")], lines, 0.75)
    assert len(found) == 1 and found[0][0].n_indexed == 25
    fit = found[0][0]
    assert compare_lattices(Cell.from_reciprocal_metric(indexing.params_to_rmetric("orthorhombic", fit.params)),
                            fit.centring, cell, "I") == ("equivalent", 1)
    # a right cell with two impurity lines: no supercell gains the margin
    impure = indexing._prepare_lines(np.sort(np.concatenate([main, weak, [23.37, 31.9]])), CU_KA1, 27, 0.03, 4.0)
    right = indexing._best_centring("orthorhombic", indexing.cell_to_params("orthorhombic", cell), impure, 0.0, 0.75)
    assert right.n_indexed == 25
    assert indexing._supercell_fits([(right, "orthorhombic")], impure, 0.75) == []


@pytest.mark.parametrize("label", ["A_aP4_2_aci", "A2B_aP6_2_2i_i"])
def test_triclinic_prototypes_are_indexed(label):
    # two AFLOW triclinic prototypes: the zone pairs sharing their first axis only gave an aP cell
    # of M20 11-14 (wrong) for both
    tt, true = _lines(label)
    best = index_pattern(tt, CU_KA1).best
    assert best is not None and best.lattice == "aP" and best.M20 > 50
    assert compare_lattices(best.cell, best.centring, true, "P") == ("equivalent", 1)


def _reduced_reciprocal(cell):
    """The reduced basis of the reciprocal lattice as the triclinic parameters (A, B, C, D, E, F)."""
    from csn_plugin.crystallography import indexing

    rec, _ = niggli_reduce(Cell.from_matrix(np.linalg.inv(cell.matrix).T))
    return indexing.cell_to_params("triclinic", Cell.from_reciprocal_metric(rec.metric))


def test_zones_are_distinct_reduced_planes():
    # one plane comes from many pairs of its lines (and as +-R): each is listed once, in its
    # reduced basis, so that the zone list holds several planes of the lattice
    from csn_plugin.crystallography import indexing, zones

    tt, true = _lines("A_aP4_2_aci")
    lines = indexing._prepare_lines(tt, CU_KA1, 25, 0.03, 4.0)
    q, tolq = lines.q(), lines.tol * lines.dq() * 1.5
    found, counts = zones._zones(q, tolq, n_keep=40)
    assert (found[:, 0] <= found[:, 1]).all() and (found[:, 2] >= 0).all() and (found[:, 2] <= found[:, 0] * 1.0001).all()
    tz = np.median(tolq)
    close = (np.abs(found[:, None, :] - found[None, :, :]) <= tz).all(axis=2)
    assert close.sum() == len(found)  # each zone is close to itself only
    assert (np.diff(counts) <= 0).all()
    # the three planes of the reduced reciprocal basis (pairs of a*, b*, c*) are among them
    p = _reduced_reciprocal(true)
    planes = [(p[0], p[1], abs(p[3])), (p[0], p[2], abs(p[4])), (p[1], p[2], abs(p[5]))]
    found_planes = [any((np.abs(zones._reduced(np.array([plane]))[0] - z) <= 2 * tz).all() for z in found)
                    for plane in planes]
    assert sum(found_planes) >= 2


def test_third_axis_completes_one_zone():
    # c* from a line the zone leaves unexplained, (2a*.c*, 2b*.c*) from two more: given the true
    # (a*, b*) plane, some trial refines to the true cell
    from csn_plugin.crystallography import indexing, zones

    tt, true = _lines("A2B_aP6_2_2i_i")
    lines = indexing._prepare_lines(tt, CU_KA1, 25, 0.03, 4.0)
    q, tolq = lines.q(), lines.tol * lines.dq() * 1.5
    p = _reduced_reciprocal(true)
    trials = zones._third_axis(np.array([p[0], p[1], p[3]]), q, tolq)
    assert 0 < len(trials) < 1000
    right = [t for t in trials[indexing._valid_params("triclinic", trials)]
             if compare_lattices(Cell.from_reciprocal_metric(indexing.params_to_rmetric("triclinic", t)), "P", true, "P",
                                 length_tol=0.02, angle_tol=2.0)[0] == "equivalent"]
    assert right
    fit = indexing._refine("triclinic", right[0], "P", lines, 0.0, 0.75)
    assert fit.n_indexed == len(tt) and fit.m20 > 50


def test_half_cell_of_a_triclinic_fit():
    # a triclinic fit with a* halved (a doubled) indexes every line with h even: the cell of half
    # its volume comes back, refined, and scores better
    from csn_plugin.crystallography import indexing

    tt, true = _lines("A2B_aP6_2_2i_i")
    lines = indexing._prepare_lines(tt, CU_KA1, 25, 0.03, 4.0)
    p = _reduced_reciprocal(true)
    double = indexing._refine("triclinic", p * np.array([0.25, 1, 1, 0.5, 0.5, 1]), "P", lines, 0.0, 0.75)
    assert double.n_indexed == len(tt) and (double.hkl[:, 0] % 2 == 0).all()
    halves = indexing._primitive_subcells(double, lines, 0.75)
    assert halves and halves[0].score > double.score
    cell = Cell.from_reciprocal_metric(indexing.params_to_rmetric("triclinic", halves[0].params))
    assert compare_lattices(cell, "P", true, "P") == ("equivalent", 1)
    # the true cell obeys no parity condition: nothing is halved
    assert indexing._primitive_subcells(indexing._refine("triclinic", p, "P", lines, 0.0, 0.75), lines, 0.75) == []


@pytest.mark.parametrize("family, cell", [
    ("orthorhombic", Cell(3.1, 7.9, 24.5)),
    ("monoclinic", Cell(4.2, 19.7, 8.3, 90, 117.0, 90)),
    ("triclinic", Cell(5.3, 7.1, 22.8, 78.0, 101.0, 95.0)),
    ("hexagonal", Cell(3.2, 3.2, 26.0, 90, 90, 120)),
])
def test_reflection_list_holds_every_form_below_q_max(family, cell):
    # the box of the longest axis's limit (|h| <= sqrt(Q) a) loses nothing against a box far beyond it
    from csn_plugin.crystallography import indexing

    g = cell.reciprocal_metric
    if family == "triclinic":
        p = np.array([g[0, 0], g[1, 1], g[2, 2], 2 * g[0, 1], 2 * g[0, 2], 2 * g[1, 2]])
    else:
        p = indexing.cell_to_params(family, cell)
    q_max = 0.6
    _, forms, _ = indexing._reflections_for(family, p, q_max)
    r = np.arange(-40, 41)
    hkl = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    hkl = hkl[(hkl != 0).any(axis=1)]
    q = np.einsum("ni,ij,nj->n", hkl, g, hkl)
    expected = {tuple(f) for f in indexing._forms(family, hkl[q <= q_max * 0.9999])}
    got = {tuple(f) for f in forms}
    assert expected <= got and len(got) > 50


def test_centring_letters_of_conventional_bases():
    # each centred lattice's conventional basis in its primitive basis gets its letter; a
    # sublattice of index 2 that is no centring (a doubled axis) gets none
    from csn_plugin.crystallography.cells import _PRIMITIVE, _centrings_of

    bases = {letter: np.rint(np.linalg.inv(prim)) for letter, prim in _PRIMITIVE.items()}
    letters = _centrings_of(np.stack(list(bases.values())))
    assert list(letters) == list(bases)
    assert _centrings_of(np.diag([2.0, 1.0, 1.0])[None])[0] == ""
    assert _centrings_of(np.array([[[1.0, 1, 0], [-1, 1, 0], [0, 0, 1]]]))[0] == "C"


def test_rendered_pattern_through_the_peak_search():
    name, lattice, frac, numbers, occ, sg = _structure("A2B_tI12_141_e_a")
    config = cases.measured_like_config(zero_shift=-0.02, impurities=False, peak_counts=(2e4, 2e4))
    x, y, _ = cases.render_known(lattice, frac, numbers, occ, seed=11, config=config)
    peaks = find_peaks(x, y, "CuKa")
    result = index_pattern(peaks, time_limit=20)
    assert result.indexed
    assert compare_lattices(result.best.cell, result.best.centring, Cell.from_matrix(lattice), "P")[0] == "equivalent"
    assert result.best.lattice == "tI"


def test_random_lines_are_not_indexed():
    rng = np.random.default_rng(5)
    tt = np.sort(rng.uniform(10, 70, 25))
    result = index_pattern(tt, CU_KA1, time_limit=10, systems=["cubic", "tetragonal", "hexagonal"])
    assert not result.indexed and result.best is None and result.reason


def test_too_few_lines_and_time_limit():
    result = index_pattern(np.array([20.0, 30.0]), CU_KA1)
    assert not result.indexed and "lines" in result.reason
    tt, _ = _lines("A2B_oP12_62_2c_c")
    fast = index_pattern(tt, CU_KA1, time_limit=0.0)
    assert fast.timed_out and not fast.indexed


@pytest.mark.skipif(not (cases.SHARED / "examples" / "MnO.xy").is_file(), reason="shared examples not found")
def test_measured_mno_is_cubic_f():
    data = np.loadtxt(cases.SHARED / "examples" / "MnO.xy", comments="#")
    peaks = find_peaks(data[:, 0], data[:, 1], "CuKa")
    result = index_pattern(peaks, time_limit=20)
    assert result.indexed
    assert result.best.lattice == "cF"
    assert result.best.a == pytest.approx(4.445, abs=0.02)


@pytest.mark.parametrize("family", ["orthorhombic", "monoclinic"])
def test_fast_screen_counts_what_brute_force_counts(family):
    """The fast screen (nearest integer h of every (k, l) row, rows out of reach skipped) finds the
    same indexed lines and the same number of calculated lines as enumerating every hkl."""
    from csn_plugin.crystallography import indexing

    rng = np.random.default_rng(5)
    tt = np.sort(rng.uniform(12, 48, 9))
    lines = indexing._prepare_lines(tt, CU_KA1, 25, 0.03, 0.0)
    q, tolq = lines.q(), lines.tol * lines.dq() * 1.5
    # trials through the observed lines: A from a line, the rest random, so hits are not rare
    n_par = indexing.N_PARAMS[family]
    params = rng.uniform(0.005, 0.12, (400, n_par))
    params[:, 0] = q[rng.integers(0, 3, 400)] / rng.integers(1, 4, 400) ** 2
    if family == "monoclinic":
        params[:, 3] = rng.uniform(-0.8, 0.8, 400) * np.sqrt(params[:, 0] * params[:, 2])  # beta within range
    ok, merit, n_hit, _ = indexing._fast_pass1(family, params, lines, 0.0, len(q), 9, (0.0, np.inf), 0.75, 4)
    r = np.arange(-40, 41)
    h, k, l = np.meshgrid(r, np.arange(0, 5), np.arange(0, 5), indexing="ij")
    h, k, l = h.ravel(), k.ravel(), l.ravel()
    keep = ~((h == 0) & (k == 0) & (l == 0)) & ~((l == 0) & (h < 0))
    if family == "orthorhombic":
        keep &= h >= 0
    h, k, l = h[keep], k[keep], l[keep]
    checked = 0
    for row, (p, hits) in enumerate(zip(params[ok], n_hit)):
        qc = p[0] * h * h + p[1] * k * k + p[2] * l * l + (p[3] * h * l if family == "monoclinic" else 0)
        expected = int((np.abs(qc[:, None] - q[None, :]) < tolq[None, :]).any(axis=0).sum())
        assert hits == expected, (row, p)
        checked += hits > 0
    assert ok.sum() > 300 and checked > 100


def _greedy_vote(values, scale, width, top, min_votes=2):
    """The vote written plainly for one row: windows [v, v + width x scale] by support, each
    start not yet used, median of its window."""
    values = np.sort(values)
    right = np.searchsorted(values, values + width * scale, side="right")
    counts = right - np.arange(len(values))
    out, used = [], np.zeros(len(values), dtype=bool)
    for i in np.argsort(-counts, kind="stable"):
        if len(out) >= top or counts[i] < min_votes:
            break
        if not used[i]:
            out.append(float(np.median(values[i:right[i]])))
            used[i:right[i]] = True
    return out


def test_batched_vote_equals_the_vote_of_each_row():
    # the triclinic search votes for Rbc in all zone pairs at once: the same picks, in the same
    # order, as the plain one-row vote, on rows with clusters, ties, out-of-range and too few values
    from csn_plugin.crystallography.zones import _vote_signed

    rng = np.random.default_rng(3)
    rows, scale = [], []
    for r in range(60):
        lim = rng.uniform(0.001, 0.05)
        v = rng.uniform(-1.5 * lim, 1.5 * lim, size=40)
        for centre in rng.uniform(-lim, lim, size=r % 4):  # clusters of near-equal values
            v[rng.integers(0, 40, size=3 + r % 5)] = centre + rng.normal(0, 0.001 * lim, size=1)
        if r % 7 == 0:
            v[:] = 2 * lim  # nothing in range
        rows.append(v)
        scale.append(lim)
    values, scale = np.array(rows), np.array(scale)
    batched = _vote_signed(values, scale, 0.004, top=3)
    expected = [(i, f) for i in range(len(values))
                for f in _greedy_vote(values[i][np.abs(values[i]) <= scale[i]], scale[i], 0.004, top=3)]
    assert [i for i, _ in batched] == [i for i, _ in expected]
    assert np.allclose([f for _, f in batched], [f for _, f in expected], rtol=1e-12, atol=0)
    assert len(expected) > 40  # the rows do vote


def test_family_prior_term_is_added_to_the_ranking_merit():
    # the Occam term: every candidate's score is its lines' merit plus strength x ln P(family)
    # under the domain prior, and the ranking follows the new score
    from csn_plugin.crystallography.cells import SYSTEM_RANK
    from csn_plugin.crystallography.indexing import family_log_prior

    log_p = family_log_prior("icsd")
    assert math.isclose(sum(math.exp(v) for v in log_p.values()), 1.0, rel_tol=1e-9)
    assert min(log_p, key=log_p.get) == "triclinic"  # 4.5 % of ICSD
    tt, _ = _lines("A2B_mP12_14_2e_e", impurity=[24.7, 31.9])
    plain = index_pattern(tt, CU_KA1, prior_strength=0.0)
    strong = index_pattern(tt, CU_KA1, prior_strength=2.0)
    assert all(c.score == c.evidence for c in plain.candidates)
    for cand in strong.candidates:
        assert math.isclose(cand.score, cand.evidence + 2.0 * log_p[cand.crystal_system], abs_tol=1e-9)
    merit = [c.score + 0.3 * SYSTEM_RANK[c.crystal_system] for c in strong.candidates]
    assert merit == sorted(merit, reverse=True)
    none = index_pattern(tt, CU_KA1, family_prior=None, prior_strength=2.0)
    assert [c.score for c in none.candidates] == [c.evidence for c in none.candidates]


def test_rerank_gives_what_a_search_at_that_strength_gives():
    from csn_plugin.crystallography.indexing import rerank

    tt, _ = _lines("A2B_mP12_14_2e_e", impurity=[24.7, 31.9])
    plain = index_pattern(tt, CU_KA1, prior_strength=0.0)
    strong = index_pattern(tt, CU_KA1, prior_strength=3.0)
    again = rerank(plain, "icsd", 3.0)
    assert [(c.lattice, round(c.score, 9)) for c in again.candidates] == [(c.lattice, round(c.score, 9)) for c in strong.candidates]
    assert (again.indexed, again.reason) == (strong.indexed, strong.reason)
    back = rerank(strong, None)
    assert [(c.lattice, c.score) for c in back.candidates] == [(c.lattice, c.score) for c in plain.candidates]


def _primitive_monoclinic_lines(cell, n=25):
    """The first n line positions (deg, Cu Ka1) of every reflection of a primitive monoclinic
    cell (no intensities: every line observed)."""
    grid = np.arange(-8, 9)
    hkl = np.array([(h, k, l) for h in grid for k in range(0, 9) for l in grid if (h, k, l) != (0, 0, 0)])
    s = CU_KA1 * np.sqrt(cell.q(hkl)) / 2
    tt = np.unique(np.round(np.degrees(2 * np.arcsin(s[s < 1])), 4))
    return tt[tt > 5][:n]


@pytest.mark.parametrize("centring", ["P", "C", "A", "I"])
def test_monoclinic_setting_is_reduced_with_an_obtuse_beta(centring):
    # random cells in any basis of their a*c* plane: the standard setting allows the same
    # reflection positions (the centring letter carried along), with beta in [90, 120] deg
    from csn_plugin.crystallography import indexing
    from csn_plugin.crystallography.cells import allowed_by_centring

    grid = np.arange(-25, 26)
    hkl = np.array([(h, k, l) for h in grid for k in range(0, 8) for l in grid if (h, k, l) != (0, 0, 0)])
    forms = indexing._forms("monoclinic", hkl)

    def positions(p, cen, q_max):
        q = forms @ p
        return np.unique(np.round(q[allowed_by_centring(hkl, cen) & (q < q_max)], 9))

    rng = np.random.default_rng(7)
    changed = 0
    for _ in range(60):
        cell = Cell(*rng.uniform(3, 15, 3), 90.0, rng.uniform(15, 165), 90.0)
        p = indexing.cell_to_params("monoclinic", cell)
        new, letter = indexing._monoclinic_setting(p, centring)
        q_max = 8 * p[:3].min()
        assert np.allclose(positions(p, centring, q_max), positions(new, letter, q_max), rtol=1e-7)
        beta = Cell.from_reciprocal_metric(indexing.params_to_rmetric("monoclinic", new)).beta
        assert 90.0 - 1e-6 <= beta <= 120.0 + 1e-6
        changed += letter != centring
    assert centring == "P" or changed > 0  # the letter does follow the basis


def test_reported_monoclinic_cell_is_the_standard_one():
    # a P2_1/c cell fitted in a basis of beta 15 deg is reported reduced (beta 90-120 deg) with the
    # same lines indexed, the same M20, and indices that give the lines' positions
    from csn_plugin.crystallography import indexing

    cell = Cell(13.7291, 7.42217, 9.54608, 90.0, 120.966, 90.0)
    tt = _primitive_monoclinic_lines(cell)
    lines = indexing._prepare_lines(tt, CU_KA1, 25, 0.03, 4.0)
    g = cell.reciprocal_metric
    t = np.array([[1, 0, 0], [0, 1, 0], [3, 0, 1]])  # c*' = c* + 3 a*: the same lattice, beta far from 90
    odd = Cell.from_reciprocal_metric(t @ g @ t.T)
    assert odd.beta < 30 or odd.beta > 150
    fit = indexing._evaluate("monoclinic", indexing.cell_to_params("monoclinic", odd), "P", lines, 0.0, 0.75)
    assert fit.n_indexed == len(tt)
    cand = indexing._to_candidate(fit, lines, "monoclinic")
    assert 90.0 <= cand.beta <= 120.0
    assert compare_lattices(cand.cell, "P", cell, "P") == ("equivalent", 1)
    assert cand.peaks_indexed == fit.n_indexed and cand.M20 == pytest.approx(fit.m20, rel=1e-9)
    assert cand.score == fit.score
    q = Cell(cand.a, cand.b, cand.c, cand.alpha, cand.beta, cand.gamma).q(cand.hkl[cand.indexed])
    calc = np.degrees(2 * np.arcsin(CU_KA1 * np.sqrt(q) / 2))
    assert np.abs(calc - cand.line_two_theta[cand.indexed]).max() < 0.01


def test_monoclinic_from_a_rectangular_zone():
    # the AFLOW P2_1/c prototype A_mP64_14_16e (15.02 x 14.71 x 8.79 A, beta 93.6): its first
    # lines hold no h0l plane a zone search finds, and no 4-subset of the first six lines with
    # indices <= 1 fixes the cell (an aP cell of M20 8.5 was ranked first); a rectangular zone
    # containing b* does, completed by two lines it leaves over (C + D h from each)
    from csn_plugin.crystallography import indexing, zones

    _, cell, true, tt, lines = _prototype_lines("A_mP64_14_16e", "monoclinic", 4.0)
    q, tolq = lines.q(0.0), lines.tol * lines.dq(0.0) * 1.5

    def holds_true(trials):
        trials = trials[indexing._valid_params("monoclinic", trials)]  # (linear trials hold invalid rows)
        if not len(trials):
            return False
        red = zones._reduced(trials[:, [0, 2, 3]])
        t = zones._reduced(true[None, [0, 2, 3]])[0]
        return bool(((np.abs(red[:, :2] / t[:2] - 1) < 0.01).all(axis=1) & (np.abs(red[:, 2] - t[2]) < 0.01 * np.sqrt(t[0] * t[1]))
                     & (np.abs(trials[:, 1] / true[1] - 1) < 0.01)).any())

    found, counts = zones._zones(q, tolq, n_keep=40)
    rect = zones._rectangular_completion(found[counts >= 4], q, tolq)
    every = zones.trials("monoclinic", lines, 0.0)
    assert holds_true(rect)
    assert not holds_true(every[:len(every) - len(rect)])  # the h0l-zone trials
    assert not holds_true(indexing._trials_linear("monoclinic", lines, 0.0, 6, 1))
    best = index_pattern(tt, CU_KA1).best
    assert best is not None and best.lattice == "mP" and 90.0 <= best.beta <= 120.0
    assert compare_lattices(best.cell, best.centring, cell, "P") == ("equivalent", 1)


def test_reported_triclinic_cell_is_the_niggli_cell():
    # the AFLOW aP prototype A_aP4_2_aci fitted in a skewed basis of its lattice is reported as its
    # Niggli-reduced cell (angles all acute or all obtuse), with the same lines, M20 and merit
    from csn_plugin.crystallography import indexing

    name, lattice, frac, numbers, occ, sg = _structure("A_aP4_2_aci")
    tt = _positions(lattice, frac, numbers, occ)
    lines = indexing._prepare_lines(tt, CU_KA1, 25, 0.03, 4.0)
    reduced, _ = niggli_reduce(Cell.from_matrix(lattice))
    t = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 1]])  # a*' = a* + b*, c*' = a* + c*: the same lattice
    skew = Cell.from_reciprocal_metric(t @ reduced.reciprocal_metric @ t.T)
    fit = indexing._evaluate("triclinic", indexing.cell_to_params("triclinic", skew), "P", lines, 0.0, 0.75)
    assert fit.n_indexed >= len(tt) - 1
    cand = indexing._to_candidate(fit, lines, "triclinic")
    angles = np.array([cand.alpha, cand.beta, cand.gamma])
    assert (angles <= 90 + 1e-6).all() or (angles >= 90 - 1e-6).all()
    assert np.allclose(sorted([cand.a, cand.b, cand.c]), sorted([reduced.a, reduced.b, reduced.c]), rtol=1e-6)
    assert not np.allclose([skew.a, skew.b, skew.c], [cand.a, cand.b, cand.c], rtol=1e-3)  # (it did change)
    assert cand.peaks_indexed == fit.n_indexed and cand.M20 == pytest.approx(fit.m20, rel=1e-9) and cand.score == fit.score


def test_long_c_axis_from_two_lines_of_one_row():
    # the AFLOW R3m prototype AB_hR6_160_3a_3a (a 3.02, c 22.18 A): its first lines are 00l and
    # 10l / 01l reflections of l up to 10 and more, which no trial basis of indices <= 3 and no
    # completion of its (nearly empty) hk0 zone reaches (an oI cell of M20 159 was ranked first);
    # two lines taken as one row (h k fixed, Q = m A + C l^2) give the cell
    from csn_plugin.crystallography import indexing, zones
    from csn_plugin.symmetry import space_group

    sg, cell, true, tt, lines = _prototype_lines("AB_hR6_160_3a_3a", "hexagonal", 3.0)

    def holds_true(trials):
        return bool(len(trials) and (np.abs(trials / true - 1).max(axis=1) < 0.01).any())

    assert not holds_true(zones.completion_trials("hexagonal", lines, 0.0))
    assert not holds_true(indexing._trials_linear("hexagonal", lines, 0.0, 6, 3))
    assert holds_true(zones.row_trials("hexagonal", lines, 0.0))
    top = index_pattern(tt, CU_KA1).candidates[0]
    assert top.lattice == "hR"
    assert compare_lattices(top.cell, top.centring, cell, space_group(sg).symbol[0])[0] == "equivalent"


def test_weak_lines_of_a_sparse_pattern_are_used():
    # rock salt rendered at 60 counts on its strongest peak: the peak search reports 7 lines,
    # one of them between 3 and 4 sigma; without it the 6 left are fitted by a primitive
    # subcell, with it the F cell indexes them all. Lines down to the peak search's own
    # threshold are used (measured on val-split renders, docs/benchmarks.md)
    name, lattice, frac, numbers, occ, sg = _structure("AB_cF8_225_a_b")
    cell = _standard_cell(lattice, frac, numbers)
    x, y, _ = cases.render_known(lattice, frac, numbers, occ, seed=2,
                                 config=cases.measured_like_config(peak_counts=(60.0, 60.0)))
    peaks = find_peaks(x, y, "CuKa")
    assert ((peaks.significance >= 3.0) & (peaks.significance < 4.0)).any()
    strict = index_pattern(peaks, min_significance=4.0).candidates[0]
    assert compare_lattices(strict.cell, strict.centring, cell, "F")[0] == "subcell"
    result = index_pattern(peaks)
    assert result.indexed and result.candidates[0].peaks_used == len(peaks)
    top = result.candidates[0]
    assert top.lattice == "cF" and compare_lattices(top.cell, top.centring, cell, "F")[0] == "equivalent"
