"""Realism of rendered patterns: the same statistics on measured rruff-dev patterns and on patterns
rendered with the default RenderConfig from real mineral structures (robocrys' mineral_db).

    nice -n 10 python benchmarks/compare_realism.py [--count 150] [--seed 0] [--figure docs/img/measured_vs_rendered.png]

Prints markdown tables (median, 10th, 90th percentile of each statistic), on rruff-dev's own 0.01 deg
grid and on the model grid (5-90 deg, 0.05 deg; measured files resampled with ModelGrid.resample).
Also timing of render (one thread) for a training-sized batch.
"""

import argparse
import glob
import gzip
import json
import os
import time
from pathlib import Path

import numpy as np

from _shared import SHARED  # noqa: E402  (../shared/data)
PO_DIRECTIONS = [(0, 0, 1), (1, 0, 0), (0, 1, 0), (1, 1, 0), (1, 1, 1), (1, 0, 1)]


def mineral_structures(count):
    """The first ``count`` ordered-or-not structures of robocrys' mineral database (name, Structure)."""
    import robocrys
    from pymatgen.core import Structure

    path = os.path.join(os.path.dirname(robocrys.__file__), "condense", "mineral_db.json.gz")
    with gzip.open(path, "rt") as handle:
        table = json.load(handle)
    columns = table["columns"]
    rows = table["data"][:count]
    return [(row[columns.index("mineral")], Structure.from_dict(row[columns.index("structure")])) for row in rows]


def structure_peaks(structures, max_peaks=256, seed=0):
    """Padded (d, f2m, cos2) float32 arrays for pymatgen structures, strongest max_peaks by f2m x LP."""
    from csn_plugin.physics import lorentz_polarization
    from csn_plugin.synth.simulate import simulate_reflections

    rng = np.random.default_rng(seed)
    lists = []
    for structure in structures:
        numbers, coords, occupancies = [], [], []
        for site in structure:
            for species, occupancy in site.species.items():
                numbers.append(species.Z)
                coords.append(site.frac_coords)
                occupancies.append(occupancy)
        direction = PO_DIRECTIONS[rng.integers(len(PO_DIRECTIONS))]
        refl = simulate_reflections(structure.lattice.matrix, np.array(coords), np.array(numbers),
                                    np.array(occupancies), po_direction=direction)
        two_theta = np.degrees(2 * np.arcsin(np.clip(1.5406 / (2 * refl.d), 0, 1)))
        order = np.argsort(-refl.f2m * lorentz_polarization(two_theta))[:max_peaks]
        lists.append((refl.d[order], refl.f2m[order], refl.cos2[order]))
    width = max(len(item[0]) for item in lists)
    arrays = np.zeros((3, len(lists), width), np.float32)
    for i, item in enumerate(lists):
        for k in range(3):
            arrays[k, i, : len(item[k])] = item[k]
    return arrays


def measured_patterns():
    files = sorted(glob.glob(str(SHARED / "rruff-dev" / "*.xy")))
    return [np.loadtxt(f) for f in files]


def summarise(stats):
    """{statistic: (median, p10, p90)} over patterns; fwhm pooled over the 10 strongest peaks."""
    out = {}
    for key in ("fwhm", "fwhm_pooled", "n_peaks", "noise", "zeros"):
        if key == "fwhm_pooled":
            values = np.concatenate([s["fwhms"] for s in stats])
        else:
            values = np.array([s[key] for s in stats], float)
        values = values[np.isfinite(values)]
        out[key] = (np.median(values), np.percentile(values, 10), np.percentile(values, 90))
    return out


LABELS = {
    "fwhm": "FWHM of the 10 strongest peaks, per-pattern median (deg)",
    "fwhm_pooled": "FWHM of the 10 strongest peaks, pooled (deg)",
    "n_peaks": "peaks with prominence > 10 % of max",
    "noise": "noise: median abs first difference / max",
    "zeros": "fraction of points exactly 0",
}


def table(measured, rendered, title):
    lines = [f"**{title}**", "", "| statistic | measured median (10-90 %) | rendered median (10-90 %) |",
             "| --- | --- | --- |"]
    for key, label in LABELS.items():
        m, r = measured[key], rendered[key]
        fmt = "{:.0f}" if key == "n_peaks" else "{:.3f}" if key.startswith("fwhm") else "{:.4f}"
        cell = lambda v: f"{fmt.format(v[0])} ({fmt.format(v[1])}-{fmt.format(v[2])})"  # noqa: E731
        lines.append(f"| {label} | {cell(m)} | {cell(r)} |")
    return "\n".join(lines)


# (measured file, wavelength it is read at, mineral_db row, title): same mineral, measured and rendered
FIGURE_PAIRS = [
    ("rruff-dev/rruff-0675.xy", 1.5418, "Rutile", "rutile TiO2 (P4_2/mnm): rruff-0675"),
    ("rruff-dev/rruff-0346.xy", 1.5418, "Spinel", "spinel MgAl2O4 (Fd-3m): rruff-0346"),
    ("examples/TiO2.xy", 1.5418, "anatase", "anatase TiO2 (I4_1/amd): examples/TiO2 (raw lab scan)"),
]


def draw_figure(path, seed):
    """Measured patterns beside rendered ones of the same mineral (default config), model grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from csn_plugin.grid import ModelGrid
    from csn_plugin.synth.render import RenderConfig, render

    grid = ModelGrid()
    x = grid.two_theta
    from pymatgen.core import Lattice, Structure

    names = {name: structure for name, structure in mineral_structures(200)}
    # robocrys' "Anatase" has idealised coordinates (its strongest peak is (103), not (101)): use
    # the refined structure (a 3.785, c 9.514 A, O z 0.2081; pymatgen's origin choice 1)
    names["anatase"] = Structure.from_spacegroup(
        "I4_1/amd", Lattice.tetragonal(3.785, 9.514), ["Ti", "O"], [[0, 0, 0], [0, 0, 0.2081]])
    fig, axes = plt.subplots(len(FIGURE_PAIRS), 2, figsize=(13, 2.6 * len(FIGURE_PAIRS)), sharex=True)
    for row, (file, wavelength, mineral, title) in enumerate(FIGURE_PAIRS):
        data = np.loadtxt(SHARED / file)
        measured, mask = grid.resample(data[:, 0], data[:, 1], wavelength)
        d, f2m, cos2 = (torch.from_numpy(a) for a in structure_peaks([names[mineral]], seed=seed))
        # align the database cell with the sample's (an isotropic scale within +-1.5 %)
        clean = RenderConfig.clean().replace(caglioti_w=(0.01, 0.01))
        scales = torch.linspace(0.985, 1.015, 121)
        profiles, _ = render(d * scales[:, None], f2m.expand(len(scales), -1), torch.tensor(x, dtype=torch.float32),
                             torch.Generator().manual_seed(0), clean)
        best = float(scales[int((profiles.numpy() @ (measured * mask)).argmax())])
        rendered, rmask = render(d * best, f2m, torch.tensor(x, dtype=torch.float32),
                                 torch.Generator().manual_seed(seed + row), RenderConfig().replace(p_full_range=1.0),
                                 cos2=cos2)
        left, right = axes[row]
        left.plot(x[mask > 0], measured[mask > 0], lw=0.6, color="black")
        left.set_title(f"measured: {title}", fontsize=9, loc="left")
        right.plot(x[rmask[0] > 0], rendered[0][rmask[0] > 0], lw=0.6, color="tab:blue")
        source = "refined structure" if mineral == "anatase" else "robocrys mineral_db"
        right.set_title(f"rendered: {mineral} from {source} (cell x {best:.4f}), default config, seed {seed + row}",
                        fontsize=9, loc="left")
        for ax in (left, right):
            ax.set_ylim(-0.03, 1.05)
            ax.set_yticks([0, 0.5, 1])
    for ax in axes[-1]:
        ax.set_xlabel("2theta (deg, Cu Ka1 grid, 0.05 deg)")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"figure written to {path}")


def dense_reference(d, f2m, x):
    """The straightforward render (timing reference): every peak at every grid point, Ka1 only."""
    import torch

    position = torch.rad2deg(2 * torch.asin((1.5406 / (2 * d.clamp_min(0.5))).clamp(max=0.9999)))
    delta = (x[None, None, :] - position[:, :, None]) / 0.05
    profile = 0.5 / (1 + delta**2) + 0.5 * torch.exp(-0.6931 * delta**2)
    return (f2m[:, :, None] * profile).sum(dim=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--figure", help="also draw measured vs rendered patterns into this PNG")
    args = parser.parse_args()

    import torch

    from csn_plugin.grid import ModelGrid
    from csn_plugin.synth.render import RenderConfig, pattern_statistics, render

    torch.set_num_threads(1)
    structures = [s for _, s in mineral_structures(args.count)]
    d, f2m, cos2 = (torch.from_numpy(a) for a in structure_peaks(structures, seed=args.seed))
    measured = measured_patterns()
    config = RenderConfig()

    # rruff-dev's own grid: 5-89.99 deg, 0.01 deg
    fine = np.round(np.arange(5.0, 90.0, 0.01), 2)
    generator = torch.Generator().manual_seed(args.seed)
    rendered, mask = render(d, f2m, torch.tensor(fine, dtype=torch.float32), generator, config, cos2=cos2)
    rendered_stats = [pattern_statistics(fine[m > 0], p[m > 0]) for p, m in zip(rendered.numpy(), mask.numpy())]
    measured_stats = [pattern_statistics(a[:, 0], a[:, 1]) for a in measured]
    print(table(summarise(measured_stats), summarise(rendered_stats),
                f"0.01 deg grid (rruff-dev native): {len(measured)} measured, {len(structures)} rendered"))
    print()

    # the model grid: measured files resampled as at inference
    grid = ModelGrid()
    model_x = grid.two_theta
    generator = torch.Generator().manual_seed(args.seed + 1)
    rendered, mask = render(d, f2m, torch.tensor(model_x, dtype=torch.float32), generator, config, cos2=cos2)
    rendered_stats = [pattern_statistics(model_x[m > 0], p[m > 0]) for p, m in zip(rendered.numpy(), mask.numpy())]
    measured_stats = []
    for a in measured:
        values, m = grid.resample(a[:, 0], a[:, 1], 1.5418)
        measured_stats.append(pattern_statistics(model_x[m > 0], values[m > 0]))
    print(table(summarise(measured_stats), summarise(rendered_stats),
                f"model grid {grid.start:g}-{grid.stop:g} deg, {grid.step:g} deg (ModelGrid.resample)"))

    if not args.no_timing:
        print()
        batch = 256
        index = torch.arange(batch) % d.shape[0]
        db, fb, cb = d[index][:, :150], f2m[index][:, :150], cos2[index][:, :150]
        x = torch.tensor(model_x, dtype=torch.float32)
        rows = []
        for name, cfg in (("default", config), ("clean", RenderConfig.clean())):
            render(db, fb, x, torch.Generator().manual_seed(0), cfg, cos2=cb)
            times = []
            for i in range(7):
                start = time.perf_counter()
                render(db, fb, x, torch.Generator().manual_seed(i), cfg, cos2=cb)
                times.append(time.perf_counter() - start)
            rows.append(f"| {name} | {batch} x {db.shape[1]} peaks -> {len(model_x)} points | "
                        f"{min(times) * 1000:.0f} ms | {np.median(times) * 1000:.0f} ms |")
        times = []
        for i in range(3):
            start = time.perf_counter()
            dense_reference(db, fb, x)
            times.append(time.perf_counter() - start)
        rows.append(f"| dense reference (all peaks x all points, Ka1, no artifacts) | {batch} x {db.shape[1]} "
                    f"peaks -> {len(model_x)} points | {min(times) * 1000:.0f} ms | {np.median(times) * 1000:.0f} ms |")
        print("one CPU thread (torch.set_num_threads(1))\n")
        print("| render | batch | best | median |\n| --- | --- | --- | --- |")
        print("\n".join(rows))
    if args.figure:
        draw_figure(args.figure, args.seed)


if __name__ == "__main__":
    main()
