"""The real-structure development test set: structures of the test split (structure types and
minerals never in train) with their true cells and spglib labels.

Written by ``csn dataset real build`` to ``OUT/devset.npz`` (see :mod:`.splits` for how it is
drawn). Used by evaluation (render each structure like measured data, score network-only) and by
the indexing work (``true cell`` = ``std_lattice``, spglib's conventional standardised cell at
symprec 0.1, and ``lattice``, the cell as stored).

    from csn_plugin.synth.devset import load_devset
    items = load_devset("/work/datasets/real/devset.npz")             # all
    balanced = load_devset("/work/datasets/real", balanced=True)       # class-balanced subset
    item = items[0]; item.space_group, item.cell_parameters, item.record.frac
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .sources import StructureRecord

DEFAULT_DIR_VARIABLE = "CSN_REAL_DATA"  # a build directory (holding devset.npz) or the file itself


@dataclass
class DevStructure:
    record: StructureRecord  # the structure (lattice, numbers, frac, occupancies, id, formula, mineral)
    space_group: int  # spglib at symprec 0.1 (the label)
    space_group_fine: int  # spglib at symprec 1e-3 (0: none found)
    std_lattice: np.ndarray  # (3, 3) conventional standardised cell, angstrom (rows)
    type_key: str
    balanced: bool  # in the class-balanced subset
    store_index: int

    @property
    def id(self):
        return self.record.id

    @property
    def cell_parameters(self):
        """(a, b, c, alpha, beta, gamma) of the conventional cell (angstrom, degrees)."""
        lengths = np.linalg.norm(self.std_lattice, axis=1)

        def angle(u, v):
            return float(np.degrees(np.arccos(np.clip(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)), -1, 1))))

        rows = self.std_lattice
        return (*lengths.tolist(), angle(rows[1], rows[2]), angle(rows[0], rows[2]), angle(rows[0], rows[1]))


def devset_path(path=None):
    """The devset file: ``path`` (a file or a build directory), else $CSN_REAL_DATA."""
    path = path or os.environ.get(DEFAULT_DIR_VARIABLE)
    if not path:
        raise FileNotFoundError(f"no dev set given: pass a path or set ${DEFAULT_DIR_VARIABLE} "
                                "(build it with csn dataset real build --out DIR)")
    path = Path(path)
    if path.is_dir():
        path = path / "devset.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (build it with csn dataset real build --out DIR)")
    return path


def load_devset(path=None, balanced=False):
    """The dev set as a list of :class:`DevStructure` (only the class-balanced subset with ``balanced``)."""
    from .arrays import SOURCE_ORDER, load_arrays

    arrays = load_arrays(devset_path(path))
    offsets = arrays["offsets"]
    items = []
    for i in range(len(offsets) - 1):
        if balanced and not arrays["balanced"][i]:
            continue
        start, stop = offsets[i], offsets[i + 1]
        record = StructureRecord(
            id=str(arrays["id"][i]), source=SOURCE_ORDER[int(arrays["source"][i])],
            lattice=arrays["lattice"][i].astype(np.float64), numbers=arrays["numbers"][start:stop].astype(np.int64),
            frac=arrays["frac"][start:stop].astype(np.float64), occupancies=arrays["occupancies"][start:stop].astype(np.float64),
            formula=str(arrays["formula"][i]), mineral=str(arrays["mineral"][i]), declared_group=int(arrays["declared_group"][i]),
        )
        items.append(DevStructure(record, int(arrays["space_group"][i]), int(arrays["space_group_fine"][i]),
                                  arrays["std_lattice"][i].astype(np.float64), str(arrays["type_key"][i]),
                                  bool(arrays["balanced"][i]), int(arrays["store_index"][i])))
    return items


def devset_peaks(items, seed=0, max_peaks=256, b_iso=1.0):
    """Padded (d, f2m, cos2) float32 arrays (len(items), max_peaks) of the dev structures as
    stored (occupancies kept, overall B ``b_iso``, a preferred-orientation direction drawn from
    ``seed``), and their labels; deterministic. Items that give no peaks are all-zero rows."""
    from .store import padded_peaks, peaks_with_occupancy
    from .structures import sample_po_direction

    rng = np.random.default_rng([int(seed), 2027])

    def peaks_of(record):
        po = sample_po_direction(rng)
        try:
            return peaks_with_occupancy(record.lattice, record.frac, record.numbers, record.occupancies, po, b_iso)
        except ValueError:
            return None

    rows = [peaks_of(item.record) for item in items]
    return padded_peaks(rows, max_peaks), np.array([item.space_group for item in items], dtype=np.int64)


def devset_patterns(items, grid, seed=0, batch=256):
    """(values, masks, labels) of the dev structures rendered on ``grid`` (a ModelGrid) with the
    default instrument model (``csn_plugin.synth.render``, seeded: the same seed gives the same set),
    ready for network-only scoring like ``csn_plugin.evaluation.sets.measured_set``."""
    import torch

    from .render import render

    (d, f2m, cos2), labels = devset_peaks(items, seed)
    generator = torch.Generator().manual_seed(int(seed) + 12345)
    two_theta = torch.tensor(grid.two_theta, dtype=torch.float32)
    values, masks = [], []
    for start in range(0, len(items), batch):
        part = slice(start, start + batch)
        v, m = render(torch.from_numpy(d[part]), torch.from_numpy(f2m[part]), two_theta, generator,
                      cos2=torch.from_numpy(cos2[part]))
        values.append(v.numpy())
        masks.append(m.numpy())
    return np.concatenate(values), np.concatenate(masks), labels
