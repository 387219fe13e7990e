"""Extinction analysis (csn_plugin.crystallography.extinction): the true absence class of
rendered real structures ranks first with the true cell, a forbidden-peak pattern built by
hand decides the centring, the mapping/probability interface, extinction symbols."""

import math

import numpy as np
import pytest

from csn_plugin.crystallography import Cell, PeakSet, extinction_probabilities, find_peaks, index_pattern
from csn_plugin.crystallography.extinction import compatible_classes, extinction_symbol, _hall_numbers_by_group
from csn_plugin.symmetry import absence_class, space_group

import crystallography_cases as cases  # the shared cases, registered by conftest.py

pytestmark = pytest.mark.one_thread
CU_KA1 = 1.54056


def _rendered_with_true_cell(label, seed=7):
    import spglib

    for name, lattice, frac, numbers, occ, sg in cases.aflow_structures():
        if name == label:
            break
    else:
        raise LookupError(label)
    config = cases.measured_like_config(zero_shift=0.0, impurities=False, peak_counts=(3e4, 3e4))
    x, y, _ = cases.render_known(lattice, frac, numbers, occ, seed=seed, config=config)
    data = spglib.get_symmetry_dataset((lattice, frac, numbers), symprec=1e-3)
    return x, y, Cell.from_matrix(data.std_lattice), space_group(sg).bravais, sg


@pytest.mark.parametrize("label", ["AB3C6_cI80_206_a_d_e", "A4B_tI10_139_de_a", "A_hR12_166_2h", "A_hP2_194_c",
                                   "A2B_tI12_141_e_a"])
def test_true_class_ranks_first_with_the_true_cell(label):
    x, y, cell, lattice, sg = _rendered_with_true_cell(label)
    peaks = find_peaks(x, y, "CuKa")
    result = extinction_probabilities(peaks, cell, lattice=lattice)
    assert absence_class(sg) in result.classes
    assert result.top_class == absence_class(sg), (result.top_symbol, result.probabilities[:3])
    assert result[absence_class(sg)] > 0.3
    assert sg in result.members[0]
    assert abs(sum(result.values()) - 1) < 1e-9
    assert result.informative > 0 and result.groups > 10


def test_indexed_cell_and_space_group_probabilities():
    x, y, cell, lattice, sg = _rendered_with_true_cell("AB3C6_cI80_206_a_d_e")
    peaks = find_peaks(x, y, "CuKa")
    indexed = index_pattern(peaks, time_limit=20)
    assert indexed.best is not None and indexed.best.lattice == "cI"
    result = extinction_probabilities(peaks, indexed.best)
    assert result.top_class == absence_class(206)
    groups = result.space_group_probabilities("icsd")
    assert groups.sum() == pytest.approx(1.0)
    assert int(np.argmax(groups)) + 1 == 206  # Ia-3 is the commonest group of its class
    assert set(result.as_dict()) == set(result.classes)


def _cubic_peaks(a, rule):
    """A PeakSet at the Cu Ka1 positions of the cubic hkl that ``rule`` allows (intensity 100
    for each), with a detection limit of 1."""
    hkl = [(h, k, l) for h in range(6) for k in range(h + 1) for l in range(k + 1) if (h, k, l) != (0, 0, 0)]
    m = sorted({h * h + k * k + l * l for h, k, l in hkl if rule(h, k, l)})
    d = a / np.sqrt(m)
    tt = 2 * np.degrees(np.arcsin(CU_KA1 / (2 * d[CU_KA1 / (2 * d) < 0.99])))
    tt = tt[(tt > 10) & (tt < 89)]
    return PeakSet.from_positions(tt, CU_KA1, intensity=np.full(len(tt), 100.0), sigma=0.003, fwhm=0.08,
                                  detection_limit=1.0)


@pytest.mark.parametrize("rule,centring", [
    (lambda h, k, l: True, "P"),
    (lambda h, k, l: (h + k + l) % 2 == 0, "I"),
    (lambda h, k, l: (h % 2 == k % 2 == l % 2), "F"),
])
def test_centring_from_present_and_absent_positions(rule, centring):
    a = 6.0
    peaks = _cubic_peaks(a, rule)
    # analysed in a primitive cubic cell: the data must decide the centring
    result = extinction_probabilities(peaks, Cell(a, a, a), lattice="cP")
    top = result.members[0]
    assert {space_group(n).symbol[0] for n in top} == {centring}


def test_compatible_classes_and_symbols():
    mono = compatible_classes("monoclinic", "P")
    assert absence_class(14) in mono and absence_class(15) not in mono
    assert absence_class(15) in compatible_classes("monoclinic", "C")
    assert absence_class(62) in compatible_classes("orthorhombic", "P")
    first = {n: _hall_numbers_by_group()[n][0][0] for n in (14, 62, 19, 15)}
    assert extinction_symbol(first[14], "monoclinic") == "P 1 21/c 1"
    assert extinction_symbol(first[62], "orthorhombic") == "P n - a"
    assert extinction_symbol(first[19], "orthorhombic") == "P 21 21 21"
    assert extinction_symbol(first[15], "monoclinic") == "C 1 c 1"


def test_temperature_softens_the_class_posterior_without_reordering_it():
    x, y, cell, lattice, sg = _rendered_with_true_cell("A2B_tI12_141_e_a")
    peaks = find_peaks(x, y, "CuKa")
    sharp = extinction_probabilities(peaks, cell, lattice=lattice, temperature=1.0)
    soft = extinction_probabilities(peaks, cell, lattice=lattice)  # LIKELIHOOD_TEMPERATURE
    assert sharp.classes == soft.classes
    assert np.allclose(sharp.log_likelihoods, soft.log_likelihoods)
    assert soft.probabilities[0] < sharp.probabilities[0]
    assert soft.top_class == absence_class(sg)


def test_unseen_probability_falls_with_the_expected_weight():
    from csn_plugin.crystallography.extinction import _unseen_model

    # groups every class allows: the light ones unseen, the heavy ones seen
    w = np.array([1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0])
    unseen = w < 6
    p = _unseen_model(w, unseen)(np.array([1.0, 10.0, 300.0]))
    assert p[0] > 0.5 > p[2] and p[0] > p[1] > p[2]
    # the same weights all seen: an allowed group is rarely unseen at any weight
    assert (_unseen_model(w, np.zeros(10, bool))(np.array([1.0, 300.0])) < 0.2).all()


def test_absences_with_the_shared_rotation_cache_equal_the_direct_ones():
    # one analysis scores ~100 settings on one hkl list and caches, per rotation, the hkl it
    # leaves unchanged: every setting (all 530 Hall numbers) must give the same absences as
    # without the cache, whichever settings filled it first
    from csn_plugin.crystallography.extinction import _absent

    rng = np.random.default_rng(0)
    hkl = rng.integers(-6, 7, size=(400, 3))
    hkl = np.vstack([hkl, [[0, 0, l] for l in range(1, 9)], [[h, 0, l] for h in range(-3, 4) for l in range(3)],
                     [[h, h, l] for h in range(1, 4) for l in range(4)]])
    cache = {}
    mismatches = [hall for hall in rng.permutation(np.arange(1, 531)).tolist()
                  if not np.array_equal(_absent(hkl, hall, cache), _absent(hkl, hall))]
    assert mismatches == []
    assert any(_absent(hkl, hall).any() for hall in range(1, 531))  # the check sees absences at all
