"""The structure store's arrays on disk: npz files written without pickle, read back as one
:class:`StructureStore` (all structures of a build directory in memory). The lowest piece of the
real-structure store, shared by :mod:`.store` (the build, augmentation, peak shards) and
:mod:`.splits` (train / val / test and the development set); it imports neither.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .sources import SOURCES, StructureRecord

SOURCE_ORDER = tuple(SOURCES)  # source name -> code (index) in stored arrays
PER_STRUCTURE = ("id", "source", "formula", "mineral", "mineral_key", "type_key", "wyckoff", "space_group",
                 "space_group_fine", "declared_group", "lattice", "std_lattice", "n_sites")
PER_ROW = ("numbers", "frac", "occupancies")


class StoreError(RuntimeError):
    """A store directory that cannot be built or read; ``str()`` is one line."""


# ----------------------------------------------------------------------------- arrays on disk


def records_to_arrays(records, labels):
    """The stored arrays of a list of records with their :class:`~.labels.Labels`."""
    counts = np.array([len(r) for r in records], dtype=np.int64)
    empty3 = np.zeros((0, 3, 3))
    return {
        "id": np.array([r.id for r in records], dtype=str),
        "source": np.array([SOURCE_ORDER.index(r.source) for r in records], dtype=np.int8),
        "formula": np.array([r.formula for r in records], dtype=str),
        "mineral": np.array([r.mineral for r in records], dtype=str),
        "mineral_key": np.array([lab.mineral_key for lab in labels], dtype=str),
        "type_key": np.array([lab.type_key for lab in labels], dtype=str),
        "wyckoff": np.array([lab.wyckoff for lab in labels], dtype=str),
        "space_group": np.array([lab.space_group for lab in labels], dtype=np.int16),
        "space_group_fine": np.array([lab.space_group_fine for lab in labels], dtype=np.int16),
        "declared_group": np.array([r.declared_group for r in records], dtype=np.int16),
        "lattice": np.array([r.lattice for r in records], dtype=np.float64).reshape(-1, 3, 3) if records else empty3,
        "std_lattice": np.array([lab.std_lattice for lab in labels], dtype=np.float32).reshape(-1, 3, 3) if records else empty3.astype(np.float32),
        "n_sites": np.array([lab.n_sites for lab in labels], dtype=np.int32),
        "offsets": np.concatenate(([0], np.cumsum(counts))).astype(np.int64),
        "numbers": np.concatenate([r.numbers for r in records] or [np.zeros(0)]).astype(np.uint8),
        "frac": np.concatenate([r.frac for r in records] or [np.zeros((0, 3))]).astype(np.float32).reshape(-1, 3),
        "occupancies": np.concatenate([r.occupancies for r in records] or [np.zeros(0)]).astype(np.float32),
    }


def save_arrays(path, arrays, stats=None):
    """Write ``arrays`` (+ JSON ``stats``) to ``path`` atomically (npz, no pickle)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = dict(arrays)
    if stats is not None:
        payload["stats"] = np.array(json.dumps(stats))
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        np.savez(handle, **payload)
    os.replace(temporary, path)


def load_arrays(path):
    """{name: array} of an npz written by :func:`save_arrays` (``allow_pickle=False``)."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def concatenate_arrays(parts):
    """One arrays dict from several (offsets re-based)."""
    if not parts:
        raise StoreError("no structure slices to concatenate")
    out = {}
    for key in parts[0]:
        if key == "stats":
            continue
        if key == "offsets":
            sizes = [np.diff(p["offsets"]) for p in parts]
            out[key] = np.concatenate(([0], np.cumsum(np.concatenate(sizes)))).astype(np.int64)
        else:
            out[key] = np.concatenate([p[key] for p in parts])
    return out


def subset_arrays(arrays, indices):
    """The arrays of structures ``indices`` (rows gathered, offsets re-based)."""
    indices = np.asarray(indices, dtype=np.int64)
    offsets = arrays["offsets"]
    starts, stops = offsets[indices], offsets[indices + 1]
    lengths = stops - starts
    rows = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)] or [np.zeros(0, dtype=np.int64)])
    out = {}
    n = len(arrays["offsets"]) - 1
    for key, values in arrays.items():
        if key == "stats":
            continue
        if key == "offsets":
            out[key] = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        elif key in PER_ROW:
            out[key] = values[rows]
        elif len(values) == n:
            out[key] = values[indices]
    return out


class StructureStore:
    """All structures of a build directory (or of one npz file) in memory as arrays.

    ``len(store)``; ``store.record(i)`` -> :class:`~.sources.StructureRecord`; per-structure
    arrays as attributes (``space_group``, ``type_key``, ``id``, ...).
    """

    def __init__(self, path):
        path = Path(path)
        if path.is_file():
            files = [path]
        else:
            files = sorted((path / "structures").glob("*.npz"), key=_slice_order)
            if not files:
                raise StoreError(f"{path}: no structure slices (structures/*.npz); run csn dataset real build")
        self.path = path
        self.arrays = concatenate_arrays([_normalised(load_arrays(f)) for f in files])
        for key, values in self.arrays.items():
            setattr(self, key, values)
        self.source_names = np.array(SOURCE_ORDER)[self.arrays["source"].astype(np.int64)]

    def __len__(self):
        return len(self.arrays["offsets"]) - 1

    def n_rows(self, index):
        return int(self.offsets[index + 1] - self.offsets[index])

    def record(self, index):
        start, stop = self.offsets[index], self.offsets[index + 1]
        return StructureRecord(
            id=str(self.id[index]), source=str(self.source_names[index]), lattice=self.lattice[index].astype(np.float64),
            numbers=self.numbers[start:stop].astype(np.int64), frac=self.frac[start:stop].astype(np.float64),
            occupancies=self.occupancies[start:stop].astype(np.float64), formula=str(self.formula[index]),
            mineral=str(self.mineral[index]), declared_group=int(self.declared_group[index]),
        )


def _normalised(arrays):
    """Arrays of a slice with the Wyckoff part of its keys in compact form (slices written before
    the compact form listed every letter: a P1 cell's key grew with its atoms), and mineral keys
    recomputed with the current :func:`~.labels.mineral_key` (AMCSD's "<missing>" is no name)."""
    from .labels import compact_type_key, compact_wyckoff, mineral_key

    if "mineral" in arrays and len(arrays["mineral"]):  # AMCSD's "<missing>" is no name
        arrays["mineral"] = np.array([m if mineral_key(m) else "" for m in arrays["mineral"].tolist()], dtype=str)
        arrays["mineral_key"] = np.array([mineral_key(m) for m in arrays["mineral"].tolist()], dtype=str)
    if "type_key" in arrays and len(arrays["type_key"]):
        arrays["type_key"] = np.array([compact_type_key(k) for k in arrays["type_key"].tolist()], dtype=str)
        arrays["wyckoff"] = np.array([compact_wyckoff(k) for k in arrays["wyckoff"].tolist()], dtype=str)
    return arrays


def _slice_order(path):
    stem = Path(path).stem  # <source>-<part>-of-<parts>
    source = stem.rsplit("-", 3)[0]
    order = SOURCE_ORDER.index(source) if source in SOURCE_ORDER else len(SOURCE_ORDER)
    return (order, stem)
