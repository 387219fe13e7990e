"""Test data with known answers for the crystallography tests and benchmarks (not a test module).

- :func:`aflow_structures`: pymatgen's AFLOW prototypes (real structure types), as arrays.
- :func:`mp_structures`: a deterministic sample of the Materials Project CIFs in ``../shared``.
- :func:`render_known`: a structure simulated (``simulate_reflections``) and rendered with
  ``csn_plugin.synth.render`` like a measured pattern on a fine 2theta grid, with the true Ka1 line
  positions and integrated intensities it was rendered from.
"""

from __future__ import annotations

import functools
import gzip
import json
import math
import tarfile
import warnings
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MP_TARBALL = SHARED / "structures" / "materials-project-144861-cifs.tar.xz"
CU_KA1 = 1.54056


def _arrays(structure):
    lattice = np.asarray(structure.lattice.matrix, dtype=float)
    frac, numbers, occ = [], [], []
    for site in structure:
        for species, occupancy in site.species.items():
            frac.append(site.frac_coords)
            numbers.append(species.Z)
            occ.append(occupancy)
    return lattice, np.asarray(frac), np.asarray(numbers), np.asarray(occ, dtype=float)


def space_group_number(lattice, frac, numbers, symprec=1e-3):
    import spglib

    data = spglib.get_symmetry_dataset((lattice, frac, numbers), symprec=symprec)
    return int(data.number if hasattr(data, "number") else data["number"])


@functools.lru_cache(maxsize=1)
def aflow_structures(max_sites=120):
    """[(label, lattice, frac, Z, occupancy, space group)] of the AFLOW prototypes."""
    import pymatgen.analysis.prototypes as prototypes
    from pymatgen.core import Structure

    path = Path(prototypes.__file__).parent / "aflow_prototypes.json.gz"
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for entry in json.loads(gzip.open(path).read()):
            if len(entry["snl"]["sites"]) > max_sites:
                continue
            structure = Structure.from_dict(entry["snl"])
            if not structure.is_ordered:
                continue
            lattice, frac, numbers, occ = _arrays(structure)
            out.append((entry["tags"]["aflow"], lattice, frac, numbers, occ,
                        space_group_number(lattice, frac, numbers)))
    return out


def mp_structures(count=200, stride=97, max_sites=120, offset=0):
    """[(mp-id, lattice, frac, Z, occupancy, space group)]: every ``stride``-th CIF of the
    Materials Project tarball (in archive order) with at most ``max_sites`` sites."""
    from pymatgen.core import Structure

    out = []
    with tarfile.open(MP_TARBALL, "r:xz") as tar, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for index, member in enumerate(tar):
            if not member.isfile() or (index - offset) % stride:
                continue
            text = tar.extractfile(member).read().decode()
            try:
                structure = Structure.from_str(text, fmt="cif")
            except Exception:
                continue
            if len(structure) > max_sites or not structure.is_ordered:
                continue
            lattice, frac, numbers, occ = _arrays(structure)
            try:
                sg = space_group_number(lattice, frac, numbers)
            except Exception:
                continue
            out.append((Path(member.name).stem, lattice, frac, numbers, occ, sg))
            if len(out) >= count:
                break
    return out


def measured_like_config(zero_shift=0.0, impurities=True, **changes):
    """The renderer's realistic defaults with a fixed zero shift and no displacement or
    wavelength error (so the true line positions are known), whole 5-90 deg range."""
    from csn_plugin.synth.render import RenderConfig

    config = RenderConfig().replace(
        zero_shift=(zero_shift, zero_shift), displacement=(0.0, 0.0), wavelength_error=(0.0, 0.0),
        p_full_range=1.0, b_iso=(0.0, 0.0), polarisation_k=(1.0, 1.0), p_preferred_orientation=0.0,
        step=(0.01, 0.01))
    if not impurities:
        config = config.replace(p_impurity=0.0)
    return config.replace(**changes) if changes else config


def render_known(lattice, frac, numbers, occupancy=None, seed=0, config=None, wavelength=CU_KA1,
                 start=5.0, stop=90.0, step=0.01):
    """(two_theta, intensity, truth) of one rendered pattern; truth: "two_theta" (Ka1 lines,
    zero shift included), "intensity" (integrated, relative to the strongest = 100), "d"."""
    import torch

    from csn_plugin.synth.render import render
    from csn_plugin.synth.simulate import simulate_reflections

    config = measured_like_config() if config is None else config
    d_min = wavelength / (2 * math.sin(math.radians(min(stop + 2, 179) / 2)))
    refl = simulate_reflections(lattice, frac, numbers, occupancy, d_min=d_min)
    grid = np.arange(start, stop + step / 2, step)
    generator = torch.Generator().manual_seed(int(seed))
    d = torch.tensor(refl.d[None, :], dtype=torch.float64)
    f2m = torch.tensor(refl.f2m[None, :], dtype=torch.float64)
    pattern, _ = render(d, f2m, grid, generator, config, wavelength=wavelength)
    y = pattern[0].numpy().astype(float) * 1000
    zero = float(config.zero_shift[0])
    sin = np.clip(wavelength / (2 * refl.d), 0, 0.9999)
    theta = np.arcsin(sin)
    lp = (1 + np.cos(2 * theta) ** 2) / (sin**2 * np.cos(theta))
    inten = refl.f2m * lp
    two_theta = np.degrees(2 * theta) + zero
    inside = (two_theta > start) & (two_theta < stop) & (inten > 0)
    inten = inten[inside]
    truth = {"two_theta": two_theta[inside], "intensity": 100 * inten / inten.max(), "d": refl.d[inside],
             "zero_shift": zero}
    return grid, y, truth
