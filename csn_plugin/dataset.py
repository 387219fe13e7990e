"""The training set on disk: peak lists of generated and real crystal structures.

A dataset is a directory of shards ``shard-00000.npz`` ... (``shard_size`` items each) and a
``manifest.json``. Each shard holds, for its items, the concatenated per-peak arrays ``d``
(angstrom), ``f2m`` (|F|^2 x multiplicity, no Lorentz-polarisation), ``cos2`` (mean cos^2 to
the item's preferred-orientation direction), all float32, sorted by d descending within an
item, and ``rank`` (int16: 0 = strongest peak of the item by f2m x LP at Cu Ka1); ``offsets``
(int64, N+1) delimit the items. Per item: ``space_group`` (int16, spglib's label of the
simulated structure), ``requested_group`` (int16, the group the generator aimed at),
``source`` (int8, see :data:`SOURCES`), ``n_atoms`` (int16, atoms in the cell) and
``po_direction`` (int8 x3, [uvw]). ``stats`` is a JSON string (skips by reason, timing).

Shard ``i`` draws its structures from ``numpy.random.default_rng([seed, i])``, so a build is
reproducible and resumable: finished shards are kept, a shard is written under a temporary
name and renamed when complete.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from csn_plugin.errors import CsnError

RECIPE_VERSION = 1  # bump when the generator or the stored arrays change meaning
SOURCES = ("random", "real", "variant")  # source code -> name
D_MIN = 0.889  # angstrom: 2theta = 120 deg at Cu Ka1
CU_KA1 = 1.5406
PEAKS_PER_ITEM = 384  # at most this many peaks stored per item (the strongest at Cu Ka1)
RELATIVE_INTENSITY_MIN = 1e-4  # peaks weaker than this x the item's strongest are dropped
MIN_PEAKS = 3  # an item needs at least this many peaks
SHARD_SIZE = 2000
_SHARD_GLOB = "shard-*.npz"
_PER_PEAK = ("d", "f2m", "cos2", "rank")
_PER_ITEM = ("space_group", "requested_group", "source", "n_atoms", "po_direction")


class DatasetError(CsnError):
    """A dataset directory that cannot be built or read; ``str()`` is one line."""


def shard_path(directory, index):
    return Path(directory) / f"shard-{index:05d}.npz"


def _cu_intensity(d, f2m):
    """f2m x Lorentz-polarisation at Cu Ka1 (pymatgen's LP formula)."""
    sin_theta = np.clip(CU_KA1 / (2.0 * d), 0.0, 1.0)
    cos_theta = np.sqrt(1.0 - sin_theta**2)
    cos_2theta = 1.0 - 2.0 * sin_theta**2
    with np.errstate(divide="ignore", invalid="ignore"):
        lp = (1.0 + cos_2theta**2) / (sin_theta**2 * cos_theta)
    return f2m * np.nan_to_num(lp, nan=0.0, posinf=0.0)


def peaks_of(crystal, po_direction):
    """(d, f2m, cos2, rank) of a crystal: reflections with d >= D_MIN, weak and extinct ones
    dropped, at most PEAKS_PER_ITEM kept (the strongest at Cu Ka1), sorted by d descending."""
    from csn_plugin.simulate import simulate_reflections

    reflections = simulate_reflections(
        crystal.lattice, crystal.frac_coords, crystal.atomic_numbers, d_min=D_MIN, po_direction=po_direction
    )
    return strongest_peaks(reflections.d, reflections.f2m, reflections.cos2)


def strongest_peaks(d, f2m, cos2):
    """(d, f2m, cos2, rank) of the reflections kept for a dataset item: weak and extinct ones
    dropped, at most PEAKS_PER_ITEM (the strongest at Cu Ka1), in the given order; rank 0 is the
    strongest. None when nothing diffracts."""
    intensity = _cu_intensity(d, f2m)
    if len(d) == 0 or not intensity.max() > 0:
        return None
    keep = np.flatnonzero(intensity >= RELATIVE_INTENSITY_MIN * intensity.max())
    if len(keep) > PEAKS_PER_ITEM:
        strongest = np.argpartition(-intensity[keep], PEAKS_PER_ITEM - 1)[:PEAKS_PER_ITEM]
        keep = np.sort(keep[strongest])
    by_strength = np.argsort(-intensity[keep], kind="stable")
    rank = np.empty(len(keep), dtype=np.int16)
    rank[by_strength] = np.arange(len(keep))
    return d[keep], f2m[keep], cos2[keep], rank


def shard_items(index, n_items, seed, distribution, skipped=None, source=None):
    """Yield (crystal, po_direction, label, (d, f2m, cos2, rank)) for shard ``index``: the same
    sequence the builder stores (at most ``n_items``). Failures are counted into the Counter
    ``skipped`` by reason, with ``skipped["attempts"]`` the number of structures tried.
    source: callable(rng) -> Crystal, default :func:`structures.sample_structure` with
    ``distribution``."""
    from csn_plugin import structures

    skipped = Counter() if skipped is None else skipped
    if source is None:
        def source(rng):
            return structures.sample_structure(rng, distribution)
    rng = np.random.default_rng([int(seed), int(index)])
    made = 0
    for _attempt in range(20 * n_items + 100):
        if made == n_items:
            return
        skipped["attempts"] += 1
        try:
            crystal = source(rng)
            po_direction = structures.sample_po_direction(rng)
            label = structures.space_group_of(crystal.lattice, crystal.frac_coords, crystal.atomic_numbers)
        except structures.StructureSkipped as skip:
            skipped[skip.reason] += 1
            continue
        except Exception:  # never crash a long build on one odd structure
            skipped["error"] += 1
            continue
        try:
            peaks = peaks_of(crystal, po_direction)
        except Exception:
            skipped["simulate"] += 1
            continue
        if peaks is None or len(peaks[0]) < MIN_PEAKS:
            skipped["few_peaks"] += 1
            continue
        made += 1
        yield crystal, po_direction, label, peaks


def build_shard(directory, index, n_items, seed, distribution):
    """Generate, label and simulate ``n_items`` structures into shard ``index`` (skipping
    failures, counted by reason). Returns the shard's stats dict."""
    from csn_plugin import structures

    started = time.perf_counter()
    peaks = {key: [] for key in _PER_PEAK}
    items = {key: [] for key in _PER_ITEM}
    skipped = Counter()
    for crystal, po_direction, label, result in shard_items(index, n_items, seed, distribution, skipped):
        for key, values in zip(_PER_PEAK, result):
            peaks[key].append(values)
        items["space_group"].append(label)
        items["requested_group"].append(crystal.requested_group)
        items["source"].append(structures.SOURCE_CODES[crystal.source])
        items["n_atoms"].append(len(crystal))
        items["po_direction"].append(po_direction)
    n_done = len(items["source"])
    counts = np.array([len(values) for values in peaks["d"]], dtype=np.int64)
    stats = {
        "requested": int(n_items),
        "items": n_done,
        "attempts": skipped.pop("attempts", 0),
        "skipped": dict(sorted(skipped.items())),
        "requested_group_found": int(np.sum(np.array(items["space_group"]) == np.array(items["requested_group"]))),
        "seconds": round(time.perf_counter() - started, 3),
    }
    arrays = {
        "d": np.concatenate(peaks["d"] or [np.zeros(0)]).astype(np.float32),
        "f2m": np.concatenate(peaks["f2m"] or [np.zeros(0)]).astype(np.float32),
        "cos2": np.concatenate(peaks["cos2"] or [np.zeros(0)]).astype(np.float32),
        "rank": np.concatenate(peaks["rank"] or [np.zeros(0, dtype=np.int16)]).astype(np.int16),
        "offsets": np.concatenate(([0], np.cumsum(counts))).astype(np.int64),
        "space_group": np.array(items["space_group"], dtype=np.int16),
        "requested_group": np.array(items["requested_group"], dtype=np.int16),
        "source": np.array(items["source"], dtype=np.int8),
        "n_atoms": np.array(items["n_atoms"], dtype=np.int16),
        "po_direction": np.array(items["po_direction"], dtype=np.int8).reshape(-1, 3),
        "stats": np.array(json.dumps(stats)),
    }
    final = shard_path(directory, index)
    temporary = final.with_name(f".{final.stem}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(temporary, final)
    return stats


def _shard_stats(path):
    with np.load(path) as shard:
        return json.loads(str(shard["stats"]))


def _shard_sizes(count, shard_size):
    return [min(shard_size, count - start) for start in range(0, count, shard_size)]


def _build_shard_job(job):
    directory, index, n_items, seed, distribution = job
    return index, build_shard(directory, index, n_items, seed, distribution)


def _worker_init():
    # Keep each worker single-threaded; the pool is the parallelism.
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")


def build_dataset(out_dir, count, seed=0, distribution="natural", workers=1, progress=True, shard_size=SHARD_SIZE):
    """Build (or finish) a peak-list dataset of ``count`` items in ``out_dir``; returns the manifest.

    distribution: ``natural`` (space groups at Materials Project frequencies) or ``balanced``
    (all 230 equally). Shards already complete (same seed, distribution, recipe, size) are kept,
    so rerunning after an interruption only builds what is missing. workers: processes.
    """
    if distribution not in ("natural", "balanced"):
        raise DatasetError(f"distribution must be 'natural' or 'balanced', not {distribution!r}")
    if int(count) < 1:
        raise DatasetError(f"count must be at least 1, got {count}")
    if int(workers) < 1:
        raise DatasetError(f"workers must be at least 1, got {workers}")
    if int(shard_size) < 1:
        raise DatasetError(f"shard_size must be at least 1, got {shard_size}")
    count, seed, workers, shard_size = int(count), int(seed), int(workers), int(shard_size)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    settings = {"seed": seed, "distribution": distribution, "recipe_version": RECIPE_VERSION, "shard_size": shard_size}
    manifest_path = out / "manifest.json"
    if manifest_path.exists():
        try:
            previous = json.loads(manifest_path.read_text())
        except ValueError:
            raise DatasetError(f"{manifest_path}: not valid JSON") from None
        different = {key: previous.get(key) for key in settings if previous.get(key) != settings[key]}
        if different:
            raise DatasetError(
                f"{out}: holds a build with other settings {different}; use another --out directory"
            )
    elif any(out.glob(_SHARD_GLOB)):
        raise DatasetError(f"{out}: has shards but no manifest.json; use another --out directory")

    started = time.perf_counter()
    sizes = _shard_sizes(count, shard_size)
    for stale in out.glob(_SHARD_GLOB):  # shards beyond a smaller count
        number = stale.stem.split("-")[-1]
        if number.isdigit() and int(number) >= len(sizes):
            stale.unlink()
    todo, stats = [], {}
    for index, size in enumerate(sizes):
        path = shard_path(out, index)
        if path.exists():
            try:
                shard_stats = _shard_stats(path)
                if shard_stats.get("requested") == size:
                    stats[index] = shard_stats
                    continue
            except (OSError, ValueError, KeyError):
                pass  # a damaged shard is rebuilt
        todo.append(index)
    manifest = {"count": count, **settings, "status": "building", "shards": len(sizes)}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")

    done_items = sum(int(s["items"]) for s in stats.values())
    bar = _progress_bar(count, done_items, progress)
    jobs = [(str(out), index, sizes[index], seed, distribution) for index in todo]
    try:
        if workers == 1 or len(jobs) <= 1:
            from csn_plugin.structures import real_structures

            real_structures()
            for job in jobs:
                index, shard_stats = _build_shard_job(job)
                stats[index] = shard_stats
                bar.update(shard_stats["items"])
        else:
            _run_parallel(jobs, workers, stats, bar)
    finally:
        bar.close()

    elapsed = time.perf_counter() - started
    skipped = Counter()
    for shard_stats in stats.values():
        skipped.update(shard_stats["skipped"])
    items = sum(int(s["items"]) for s in stats.values())
    found = sum(int(s.get("requested_group_found", 0)) for s in stats.values())
    manifest = {
        "count": items,
        "requested_count": count,
        **settings,
        "status": "complete",
        "shards": len(sizes),
        "skipped": dict(sorted(skipped.items())),
        "attempts": sum(int(s.get("attempts", 0)) for s in stats.values()),
        "requested_group_agreement": round(found / items, 4) if items else None,
        "elapsed_seconds": round(elapsed, 1),
        "shard_seconds": round(sum(float(s["seconds"]) for s in stats.values()), 1),
        "built_shards": len(todo),
        "workers": workers,
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _run_parallel(jobs, workers, stats, bar):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from csn_plugin.structures import real_structures

    context = multiprocessing.get_context("fork") if sys.platform.startswith("linux") else None
    if context is not None:
        real_structures()  # loaded once here, inherited by the forked workers
    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init) as pool:
        futures = [pool.submit(_build_shard_job, job) for job in jobs]
        try:
            for future in as_completed(futures):
                index, shard_stats = future.result()
                stats[index] = shard_stats
                bar.update(shard_stats["items"])
        except BrokenProcessPool:
            raise DatasetError(
                f"a worker process died (out of memory?) after {len(stats)} shards; rerun the same command to resume"
            ) from None


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _progress_bar(total, initial, enabled):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="item", file=sys.stderr, dynamic_ncols=True, smoothing=0.05)


# ----------------------------------------------------------------------------- reading


def _shard_files(directory):
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"{directory}: not a directory")
    files = sorted(directory.glob(_SHARD_GLOB))
    if not files:
        raise DatasetError(f"{directory}: no dataset shards (shard-*.npz) found")
    return files


class PeakDataset:
    """All shards of a dataset directory in memory, with fast padded batches for training.

    Attributes (numpy): ``space_groups`` (N,) int16, ``requested_groups``, ``sources`` (N,)
    int8 (codes of :data:`SOURCES`), ``n_atoms``, ``po_directions`` (N, 3), ``offsets`` (N+1,),
    and the concatenated per-peak ``d``, ``f2m``, ``cos2`` (float32) and ``rank`` (int16).
    """

    def __init__(self, directory):
        self.directory = Path(directory)
        parts = {key: [] for key in _PER_PEAK + _PER_ITEM}
        counts = []
        for path in _shard_files(self.directory):
            try:
                with np.load(path) as shard:
                    for key in parts:
                        parts[key].append(shard[key])
                    counts.append(np.diff(shard["offsets"]))
            except (OSError, ValueError, KeyError) as error:
                raise DatasetError(f"{path}: not a readable dataset shard ({error})") from None
        self.d = np.concatenate(parts["d"])
        self.f2m = np.concatenate(parts["f2m"])
        self.cos2 = np.concatenate(parts["cos2"])
        self.rank = np.concatenate(parts["rank"])
        self.space_groups = np.concatenate(parts["space_group"])
        self.requested_groups = np.concatenate(parts["requested_group"])
        self.sources = np.concatenate(parts["source"])
        self.n_atoms = np.concatenate(parts["n_atoms"])
        self.po_directions = np.concatenate(parts["po_direction"]).reshape(-1, 3)
        self.peak_counts = np.concatenate(counts).astype(np.int64)
        self.offsets = np.concatenate(([0], np.cumsum(self.peak_counts))).astype(np.int64)

    def __len__(self):
        return len(self.space_groups)

    def peaks(self, index):
        """(d, f2m, cos2) numpy arrays of one item, sorted by d descending."""
        start, stop = self.offsets[index], self.offsets[index + 1]
        return self.d[start:stop], self.f2m[start:stop], self.cos2[start:stop]

    def split(self, fraction=0.1, seed=0):
        """(train indices, validation indices): a random ``fraction`` of the items for validation."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be within [0, 1], got {fraction}")
        order = np.random.default_rng(seed).permutation(len(self))
        n_val = int(round(fraction * len(self)))
        return np.sort(order[n_val:]), np.sort(order[:n_val])

    def batch_arrays(self, indices, max_peaks=256):
        """Padded numpy (d, f2m, cos2), each (len(indices), max_peaks) float32; padding is 0.
        Items with more peaks keep their ``max_peaks`` strongest (f2m x LP at Cu Ka1), in d order."""
        indices = np.asarray(indices, dtype=np.int64).ravel()
        starts = self.offsets[indices]
        lengths = self.peak_counts[indices]
        total = int(lengths.sum())
        row = np.repeat(np.arange(len(indices)), lengths)
        within = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        flat = np.repeat(starts, lengths) + within
        if lengths.max(initial=0) > max_peaks:
            keep = self.rank[flat] < max_peaks
            flat, row = flat[keep], row[keep]
            kept = np.bincount(row, minlength=len(indices))
            column = np.arange(len(flat)) - np.repeat(np.cumsum(kept) - kept, kept)
        else:
            column = within
        shape = (len(indices), max_peaks)
        out = []
        for values in (self.d, self.f2m, self.cos2):
            padded = np.zeros(shape, dtype=np.float32)
            padded[row, column] = values[flat]
            out.append(padded)
        return tuple(out)

    def batch(self, indices, max_peaks=256):
        """Padded torch tensors (d, f2m, cos2), each (len(indices), max_peaks) float32 (0 = padding)."""
        import torch

        return tuple(torch.from_numpy(values) for values in self.batch_arrays(indices, max_peaks))


def dataset_info(directory):
    """``{"count": N, "space_groups": {"<n>": items, ...}}`` for a dataset directory."""
    labels = []
    for path in _shard_files(directory):
        try:
            with np.load(path) as shard:
                labels.append(shard["space_group"])
        except (OSError, ValueError, KeyError) as error:
            raise DatasetError(f"{path}: not a readable dataset shard ({error})") from None
    labels = np.concatenate(labels).astype(np.int64)
    counts = np.bincount(labels, minlength=231)
    return {
        "count": int(len(labels)),
        "space_groups": {str(group): int(counts[group]) for group in np.flatnonzero(counts)},
    }
