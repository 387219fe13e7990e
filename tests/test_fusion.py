"""Fusion of the crystallographic evidence with the network, on real simulated patterns."""

import json
import math

import numpy as np
import pytest

from csn_plugin.inference.fusion import FusionParams, class_posterior, fuse, reliability


def _rocksalt_pattern(a=5.64):
    """NaCl (Fm-3m) simulated with the project's simulator and drawn as a Cu Ka1 step scan."""
    from pymatgen.core import Lattice, Structure

    from csn_plugin.pattern import Pattern
    from csn_plugin.synth.simulate import simulate_peaks

    structure = Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    peaks = simulate_peaks(structure, wavelength=1.5406, two_theta_range=(10, 90))
    two_theta = np.arange(10, 90, 0.01)
    sigma = 0.05 / 2.355
    intensity = np.full_like(two_theta, 2.0)
    for position, height in zip(peaks.two_theta, peaks.intensity):
        intensity += height * np.exp(-0.5 * ((two_theta - position) / sigma) ** 2)
    noise = np.random.default_rng(0).normal(0, 0.3, two_theta.size)
    return Pattern(two_theta, np.clip(intensity + noise, 0, None), wavelength=1.5406, source="NaCl-simulated")


@pytest.fixture(scope="module")
def classifier():
    from csn_plugin.inference.classifier import SpaceGroupClassifier

    clf = SpaceGroupClassifier(device="cpu", time_limit=20.0, workers=1)
    yield clf
    clf.close()


def test_params_refuse_nonsense():
    with pytest.raises(ValueError, match="finite"):
        FusionParams(beta=math.nan)
    with pytest.raises(ValueError, match="out of range"):
        FusionParams(max_weight=1.5)
    with pytest.raises(ValueError, match="out of range"):
        FusionParams(temperature=0)


class _Cell:
    def __init__(self, m20, crystal_system="cubic"):
        self.M20, self.crystal_system = m20, crystal_system


class _Extinction:
    """The two fields fuse() reads, for classes given as member lists."""

    def __init__(self, probabilities, members):
        self.probabilities = np.asarray(probabilities, dtype=float)
        self.members = tuple(tuple(m) for m in members)

    def __len__(self):
        return len(self.members)


class _Evidence:
    def __init__(self, cell, extinction):
        self.cell, self.extinction = cell, extinction


def test_reliability_rises_with_the_figure_of_merit():
    params = FusionParams(m20_mid=10, slope=3, max_weight=0.9)
    weights = [reliability(_Cell(m), params) for m in (2, 10, 50, 500)]
    assert weights == sorted(weights) and weights[0] < 0.05 and abs(weights[1] - 0.45) < 1e-9 and weights[-1] > 0.89
    assert reliability(None, params) == 0.0
    assert reliability(_Cell(float("nan")), params) == 0.0
    with pytest.raises(ValueError, match="out of range"):
        FusionParams(m20_per_param=-0.1)


def test_a_cell_of_more_free_parameters_needs_a_higher_m20_for_the_same_trust():
    plain = FusionParams(m20_mid=10, slope=3, max_weight=0.9)
    occam = FusionParams(m20_mid=10, slope=3, max_weight=0.9, m20_per_param=0.3)
    for system in ("cubic", "tetragonal", "orthorhombic", "monoclinic", "triclinic"):
        assert reliability(_Cell(20, system), plain) == reliability(_Cell(20, "cubic"), plain)
    assert reliability(_Cell(20, "cubic"), occam) == reliability(_Cell(20, "cubic"), plain)
    weights = [reliability(_Cell(20, s), occam) for s in ("cubic", "tetragonal", "orthorhombic", "monoclinic", "triclinic")]
    assert weights == sorted(weights, reverse=True) and weights[-1] < weights[0] / 2
    # the triclinic midpoint is 10 x e^(5 x 0.3): at that M20 the weight is half the cap
    assert abs(reliability(_Cell(10 * math.exp(1.5), "triclinic"), occam) - 0.45) < 1e-9


def test_fusion_moves_mass_into_the_evidenced_class_and_keeps_the_network_order_inside():
    prior = np.full(230, 1 / 230)
    p_net = np.full(230, 0.5 / 228)
    p_net[[13, 61]] = 0.25  # the network likes P2_1/c (14) and Pnma (62)
    cubic = [221, 225, 229]
    evidence = _Evidence(_Cell(1000.0), _Extinction([1.0], [cubic]))
    fused, weight = fuse(p_net, evidence, prior, FusionParams(max_weight=0.9, beta=1.0))
    assert weight == pytest.approx(0.9, abs=1e-3)
    assert fused.sum() == pytest.approx(1.0)
    assert fused[np.array(cubic) - 1].sum() == pytest.approx(0.9 + 0.1 * p_net[np.array(cubic) - 1].sum(), abs=1e-3)
    # with beta = 0 the prior alone orders the class
    prior2 = prior.copy()
    prior2[224] *= 50
    p_x = class_posterior(p_net, evidence.extinction, prior2 / prior2.sum(), beta=0.0)
    assert np.argmax(p_x) == 224


def test_gamma_lets_the_network_reweight_the_evidenced_classes():
    prior = np.full(230, 1 / 230)
    p_net = np.full(230, 0.2 / 226)
    p_net[[13, 14]] = 0.4  # the network is sure of class {14} (P2_1/c) over {15} (C2/c)
    evidence = _Evidence(_Cell(1000.0), _Extinction([0.3, 0.7], [[14], [15]]))
    alone = class_posterior(p_net, evidence.extinction, prior, beta=1.0, gamma=0.0)
    assert alone[13] == pytest.approx(0.3) and alone[14] == pytest.approx(0.7)
    both = class_posterior(p_net, evidence.extinction, prior, beta=1.0, gamma=1.0)
    assert both.sum() == pytest.approx(1.0)
    assert both[13] == pytest.approx(0.3) and both[14] == pytest.approx(0.7)  # equal network mass: no change
    p_net[13], p_net[14] = 0.7, 0.1
    both = class_posterior(p_net, evidence.extinction, prior, beta=1.0, gamma=1.0)
    assert both[13] == pytest.approx(0.3 * 0.7 / (0.3 * 0.7 + 0.7 * 0.1))
    with pytest.raises(ValueError, match="out of range"):
        FusionParams(gamma=2.0)


def test_no_cell_means_the_network_alone():
    p_net = np.random.default_rng(1).dirichlet(np.ones(230))
    fused, weight = fuse(p_net, _Evidence(None, None), np.full(230, 1 / 230), FusionParams())
    assert weight == 0.0 and np.array_equal(fused, p_net)


def test_rocksalt_is_indexed_and_its_evidence_reported(classifier):
    pattern = _rocksalt_pattern()
    result = classifier.predict(pattern, top_k=5)
    assert result.cell is not None, result.evidence.note
    assert result.cell.lattice == "cF"
    assert result.cell.a == pytest.approx(5.64, rel=0.005)
    assert result.cell.M20 > 20
    assert result.evidence_weight > 0 and result.method == "network+crystallography"
    assert result.extinction is not None and 225 in result.extinction.members[0]
    record = json.loads(result.to_json())
    assert record["cell"]["lattice"] == "cF" and set(record["cell"]) >= {
        "a", "b", "c", "alpha", "beta", "gamma", "volume", "lattice", "figure_of_merit", "peaks_indexed", "peaks_used"}
    assert record["extinction_symbol"] == result.extinction_symbol and record["extinction_symbol"]
    # the evidence put the answer in the cubic F class
    assert result.crystal_system[0] == "cubic"
    assert result.predictions[0].space_group in result.extinction.members[0]
    assert "cell cF" in str(result)


def test_network_only_is_the_network_posterior(classifier):
    from csn_plugin.inference.classifier import SpaceGroupClassifier

    pattern = _rocksalt_pattern()
    fast = SpaceGroupClassifier(device="cpu", network_only=True).predict(pattern)
    full = classifier.predict(pattern)
    assert fast.cell is None and fast.evidence is None and fast.method == "network"
    assert np.allclose(fast.probabilities, full.network_probabilities)
    assert json.loads(fast.to_json())["cell"] is None


def test_time_limit_is_checked():
    from csn_plugin.inference.classifier import SpaceGroupClassifier

    with pytest.raises(ValueError, match="time_limit"):
        SpaceGroupClassifier(device="cpu", time_limit=-1)


def test_cli_network_only_and_cell_columns(tmp_path):
    from click.testing import CliRunner

    from csn_plugin.cli.main import cli

    pattern = _rocksalt_pattern()
    path = tmp_path / "nacl.xy"
    np.savetxt(path, np.column_stack([pattern.two_theta, pattern.intensity]), header="Wavelength = 1.5406 A")
    runner = CliRunner()
    fast = runner.invoke(cli, ["classify", "--network-only", "--format", "json", str(path)])
    assert fast.exit_code == 0, fast.output
    assert json.loads(fast.output)[0]["cell"] is None
    full = runner.invoke(cli, ["classify", "--format", "csv", "--time-limit", "20", str(path)])
    assert full.exit_code == 0, full.output
    header, first = full.output.splitlines()[:2]
    row = dict(zip(header.split(","), first.split(",")))
    assert row["cell_lattice"] == "cF" and float(row["a"]) == pytest.approx(5.64, rel=0.005)


def test_plot_marks_indexed_peaks_and_allowed_reflections(tmp_path, classifier):
    from csn_plugin.cli.classify import plot_result
    from csn_plugin.crystallography.extinction import allowed_two_theta

    pattern = _rocksalt_pattern()
    result = classifier.predict(pattern)
    ticks = allowed_two_theta(result.cell, 225, 1.5406, (10, 90))
    # Fm-3m allows 111, 200, 220, 311, 222, 400, 331, 420, 422 ... and forbids 100, 110, 210
    expected = np.degrees(2 * np.arcsin(1.5406 * np.sqrt(np.array([3, 4, 8, 11, 12, 16])) / (2 * result.cell.a))) + result.cell.zero_shift
    assert np.all(np.min(np.abs(ticks[:, None] - expected[None, :]), axis=0) < 0.01)
    forbidden = np.degrees(2 * np.arcsin(1.5406 * np.sqrt(np.array([1, 2, 5])) / (2 * result.cell.a)))
    assert np.all(np.min(np.abs(ticks[:, None] - forbidden[None, :]), axis=0) > 0.05)
    path = tmp_path / "plot.png"
    plot_result(pattern, result, path)
    assert path.stat().st_size > 10_000


def test_evidence_says_when_the_safety_limit_cut_the_search():
    from csn_plugin.crystallography.evidence import analyse

    pattern = _rocksalt_pattern()
    full = analyse(pattern.two_theta, pattern.intensity, pattern.wavelength)
    assert full.indexed and "safety limit" not in full.note and not full.indexing.timed_out
    cut = analyse(pattern.two_theta, pattern.intensity, pattern.wavelength, time_limit=1e-6)
    assert cut.indexing.timed_out and "cut short by the 1e-06 s safety limit" in cut.note


@pytest.fixture(scope="module")
def near_tie_pattern():
    """A real hexagonal prototype (AFLOW AB_hP4_186_b_a, wurtzite type) rendered like a measured
    pattern: its best cell is hP, and cells of other families index it nearly as well."""
    import crystallography_cases as cases

    from csn_plugin.pattern import Pattern

    entry = next(e for e in cases.aflow_structures() if e[0] == "AB_hP4_186_b_a")
    _, lattice, frac, numbers, occupancy, _ = entry
    x, y, _ = cases.render_known(lattice, frac, numbers, occupancy, seed=0,
                                 config=cases.measured_like_config(impurities=False))
    return Pattern(x, y, wavelength=cases.CU_KA1, source="AB_hP4_186_b_a-rendered")


@pytest.fixture(scope="module")
def near_tie_evidence(near_tie_pattern):
    from csn_plugin.crystallography.evidence import analyse

    return analyse(near_tie_pattern.two_theta, near_tie_pattern.intensity, near_tie_pattern.wavelength)


def test_alternative_cells_are_near_ties_of_other_families(near_tie_evidence):
    from csn_plugin.crystallography.evidence import SCORE_WINDOW, alternative_cells

    evidence = near_tie_evidence
    assert evidence.cell is not None and evidence.cell.crystal_system == "hexagonal", evidence.note
    alternatives = alternative_cells(evidence.indexing)
    assert alternatives, [(c.lattice, c.score) for c in evidence.indexing.candidates]
    families = [c.crystal_system for c in alternatives]
    assert "hexagonal" not in families and len(set(families)) == len(families)
    ranks = [evidence.indexing.candidates.index(c) for c in alternatives]
    assert ranks == sorted(ranks) and all(c.score >= evidence.cell.score - SCORE_WINDOW and c.M20 >= 6 for c in alternatives)
    assert alternative_cells(evidence.indexing, window=0.0) == []
    # each alternative carries its own extinction analysis, in its own crystal family
    assert [c for c, _ in evidence.alternatives] == alternatives
    assert all(x.family == c.crystal_system for c, x in evidence.alternatives)


def test_an_alternative_cell_the_network_believes_can_carry_the_answer(near_tie_evidence):
    from csn_plugin.symmetry import CRYSTAL_SYSTEMS, group_to_crystal_system

    evidence = near_tie_evidence
    system_of = [CRYSTAL_SYSTEMS[i] for i in group_to_crystal_system()]
    other, other_extinction = evidence.alternatives[0]
    prior = np.full(230, 1 / 230)
    groups = np.array([g for members in other_extinction.members for g in members]) - 1
    p_net = np.full(230, 0.1 / (230 - len(groups)))
    p_net[groups] = 0.9 / len(groups)  # the network is sure of the alternative's crystal family
    family = lambda g: "hexagonal" if system_of[g] in ("trigonal", "hexagonal") else system_of[g]  # noqa: E731
    best_only, _ = fuse(p_net, evidence, prior, FusionParams(max_weight=0.95, beta=1.0, gamma=1.0, cell_spread=0.0))
    assert family(int(np.argmax(best_only))) == "hexagonal"
    spread, _ = fuse(p_net, evidence, prior, FusionParams(max_weight=0.95, beta=1.0, gamma=1.0, cell_spread=1e3))
    top = int(np.argmax(spread))
    assert family(top) == other.crystal_system and top + 1 in groups
    assert spread.sum() == pytest.approx(1.0)
    # the result then shows the cell the answer rests on
    moved = evidence.supporting(system_of[top])
    assert moved.cell is other and moved.extinction is other_extinction and "alternative" in moved.note
    assert (evidence.cell, evidence.extinction) in moved.alternatives
    assert evidence.supporting("hexagonal") is evidence


def test_the_classifier_analyses_alternatives_only_where_the_fusion_can_weigh_them(near_tie_pattern, near_tie_evidence):
    import dataclasses

    from csn_plugin.inference.classifier import SpaceGroupClassifier
    from csn_plugin.inference.fusion import cell_window

    bundled = FusionParams.bundled()
    assert cell_window(dataclasses.replace(bundled, cell_spread=0.0)) == 0.0
    assert cell_window(dataclasses.replace(bundled, cell_spread=2.0)) == pytest.approx(2 * math.log(100))
    gaps = [near_tie_evidence.cell.score - c.score for c, _ in near_tie_evidence.alternatives]
    for spread, expected in ((0.0, 0), (max(gaps) / math.log(100) * 1.01, len(gaps))):
        clf = SpaceGroupClassifier(device="cpu", workers=1, fusion=dataclasses.replace(bundled, cell_spread=spread))
        try:
            result = clf.predict(near_tie_pattern)
        finally:
            clf.close()
        evidence = result.evidence
        assert evidence is not None and evidence.cell is not None
        assert len(evidence.alternatives) == expected, (spread, gaps)
        rows = json.loads(result.to_json())["evidence"]["alternative_cells"]  # the JSON shows them too
        assert [r["lattice"] for r in rows] == [c.lattice for c, _ in evidence.alternatives]
        assert all(r["extinction_symbol"] == x.top_symbol and r["figure_of_merit"]["M20"] > 0
                   for r, (_, x) in zip(rows, evidence.alternatives))
