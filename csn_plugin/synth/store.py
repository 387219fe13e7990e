"""The real-structure store: build it from the sources, read it, augment and simulate from it.

Layout of a build directory ``OUT`` (``csn dataset real build --out OUT``):

- ``OUT/structures/<source>-<part>-of-<parts>.npz``: one slice of one source, structure arrays
  (numpy, ``allow_pickle=False``; see :data:`PER_STRUCTURE`); each slice is written under a
  temporary name and renamed when complete, so a rerun resumes slice by slice.
- ``OUT/store.json``: settings, per-slice counts (parsed / labelled / skipped by reason), time.
- ``OUT/splits.npz`` + ``OUT/splits.json``: train / val / test of every structure (:mod:`.splits`).
- ``OUT/devset.npz``: the development test set (:mod:`.devset`); ``OUT/heldout_minerals.json``.
- ``OUT/peaks/``: PeakDataset-compatible peak-list shards (:func:`write_peak_shards`), so that
  ``csn train --dataset OUT/peaks`` trains on the train split unchanged.

Augmentation (:func:`augment`) keeps the space group: lattice strain averaged over the point
group (so it stays within the group's metric), substitution of each element with probability
0.5 by another of its chemical family (csn_plugin.synth.structures' families, volume following the
radii), site displacements averaged over the group's operations, occupancy jitter of partially
occupied sites (the same on every site of an orbit), and an overall isotropic displacement
parameter B (Debye-Waller factor exp(-B / (2 d^2)) on the intensities).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# the arrays on disk live in .arrays (shared with .splits); their names stay importable from here
from .arrays import (PER_ROW, PER_STRUCTURE, SOURCE_ORDER, StoreError, StructureStore,  # noqa: F401
                     concatenate_arrays, load_arrays, records_to_arrays, save_arrays, subset_arrays)
from .labels import SYMPREC, SYMPREC_FINE, LabelError, label
from .sources import make_sources

STORE_VERSION = 2  # bump when the stored arrays or labels change meaning (2: AMCSD water oxygens read)
PEAKS_VERSION = 1  # bump when the peak-shard recipe changes


# ----------------------------------------------------------------------------- the build


def _slice_path(out, source, part, parts):
    return Path(out) / "structures" / f"{source}-{part:02d}-of-{parts:02d}.npz"


def build_slice(out, source_name, part, parts, mp_tar=None):
    """Read, label and store one slice of one source; returns its stats."""
    started = time.perf_counter()
    source = make_sources([source_name], mp_tar=mp_tar)[0]
    skipped = Counter()
    records, labels = [], []
    parsed = 0
    for record in source.iter_structures(part, parts, skipped):
        parsed += 1
        try:
            labels.append(label(record))
        except LabelError as error:
            skipped["label_" + error.reason] += 1
            continue
        except Exception:
            skipped["label_error"] += 1
            continue
        records.append(record)
    disordered = int(sum(r.disordered for r in records))
    stats = {
        "source": source_name, "part": part, "parts": parts, "fingerprint": source.fingerprint(),
        "store_version": STORE_VERSION, "parsed": parsed, "labelled": len(records),
        "skipped": dict(sorted(skipped.items())), "disordered": disordered,
        "seconds": round(time.perf_counter() - started, 2),
    }
    save_arrays(_slice_path(out, source_name, part, parts), records_to_arrays(records, labels), stats)
    return stats


def _slice_job(job):
    out, name, part, parts, mp_tar = job
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    return build_slice(out, name, part, parts, mp_tar)


def _read_stats(path):
    try:
        with np.load(path, allow_pickle=False) as data:
            return json.loads(str(data["stats"]))
    except (OSError, ValueError, KeyError):
        return None


def build_store(out, mp_tar=None, sources=None, workers=1, progress=True, splits=True):
    """Build (or finish) the structure store of every available source in ``out``.

    Sources that are unavailable are reported and left out (the manifest says why). Slices
    already complete with the same source fingerprint and store version are kept. Then the
    splits, the development test set and the held-out minerals are written. Returns the manifest.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise StoreError(f"{out}: exists and is not a directory")
    (out / "structures").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    chosen = make_sources(sources, mp_tar=mp_tar)
    missing, jobs, stats = {}, [], {}
    for source in chosen:
        state = source.available()
        if not state:
            missing[source.name] = state.message
            _say(progress, f"skipping source {source.name}: {state.message}")
            continue
        parts = source.parts_hint
        fingerprint = source.fingerprint()
        for part in range(parts):
            path = _slice_path(out, source.name, part, parts)
            previous = _read_stats(path) if path.exists() else None
            if previous and previous.get("fingerprint") == fingerprint and previous.get("store_version") == STORE_VERSION:
                stats[path.name] = previous
                continue
            jobs.append((str(out), source.name, part, parts, None if mp_tar is None else str(mp_tar)))
    # the biggest slices first, so the pool stays busy to the end
    jobs.sort(key=lambda job: -{"mp": 30000, "oqmd-icsd": 16000, "core-mof": 6000, "amcsd": 4600}.get(job[1], 500))
    _say(progress, f"{len(stats)} slices already built, {len(jobs)} to build with {workers} worker(s)")
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            result = _slice_job(job)
            stats[_slice_path(*job[:4]).name] = result
            _report(progress, result)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        context = multiprocessing.get_context("fork") if sys.platform.startswith("linux") else None
        with ProcessPoolExecutor(max_workers=int(workers), mp_context=context) as pool:
            futures = {pool.submit(_slice_job, job): job for job in jobs}
            for future in as_completed(futures):
                job = futures[future]
                result = future.result()
                stats[_slice_path(*job[:4]).name] = result
                _report(progress, result)
    elapsed = time.perf_counter() - started
    per_source = {}
    for item in stats.values():
        entry = per_source.setdefault(item["source"], {"parsed": 0, "labelled": 0, "disordered": 0, "skipped": Counter(), "seconds": 0.0})
        entry["parsed"] += item["parsed"]
        entry["labelled"] += item["labelled"]
        entry["disordered"] += item.get("disordered", 0)
        entry["skipped"].update(item["skipped"])
        entry["seconds"] += item["seconds"]
    for entry in per_source.values():
        entry["skipped"] = dict(sorted(entry["skipped"].items()))
        entry["seconds"] = round(entry["seconds"], 1)
    from .sources import source_licences

    manifest = {
        "store_version": STORE_VERSION, "symprec": SYMPREC, "symprec_fine": SYMPREC_FINE,
        "sources": per_source, "missing_sources": missing, "licences": source_licences(),
        "built_slices": len(jobs), "elapsed_seconds": round(elapsed, 1), "workers": int(workers),
        "mp_tar": None if mp_tar is None else str(mp_tar),
    }
    if splits:
        from .splits import write_splits

        manifest["splits"] = write_splits(out)
    manifest["elapsed_seconds"] = round(time.perf_counter() - started, 1)
    (out / "store.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _say(progress, message):
    if progress:
        print(message, file=sys.stderr, flush=True)


def _report(progress, result):
    _say(progress, f"{result['source']} {result['part'] + 1}/{result['parts']}: {result['labelled']} labelled of "
                   f"{result['parsed']} parsed, skipped {result['skipped']}, {result['seconds']} s")


# ----------------------------------------------------------------------------- augmentation


@dataclass
class AugmentConfig:
    substitute: float = 0.5  # probability that an element is replaced by one of its family
    strain: float = 0.03  # relative size of the random strain (averaged over the point group)
    displacement: float = 0.03  # rms site displacement, angstrom (averaged over the group)
    displacement_probability: float = 0.5  # share of variants displaced (the site mapping costs ~40 %)
    occupancy_jitter: float = 0.15  # log-normal sd of the occupancy of partially occupied sites
    b_range: tuple = (0.3, 2.0)  # overall isotropic B (angstrom^2), uniform


class Symmetry:
    """A record's operations at SYMPREC on its distinct sites; the site permutations (where
    each site goes under each operation, within ``tolerance`` in fractional units) are found
    on first use (None if some site has no partner)."""

    def __init__(self, rotations, translations, site_of_row, equivalent, positions, types, tolerance=0.03):
        self.rotations, self.translations = rotations, translations
        self.site_of_row, self.equivalent = site_of_row, equivalent
        self.positions, self.types, self.tolerance = positions, types, tolerance
        self._permutations = False

    @property
    def permutations(self):
        if self._permutations is False:
            from .structures import _permutations

            self._permutations = _permutations(self.positions, self.types, self.rotations, self.translations,
                                               tolerance=self.tolerance)
        return self._permutations


def symmetry_of(record, tolerance=0.03):
    """:class:`Symmetry` of a record (spglib at SYMPREC on its input cell)."""
    from .labels import symmetry_operations

    rotations, translations, site_of_row, equivalent, cell = symmetry_operations(record)
    _, positions, types = cell
    return Symmetry(rotations, translations, site_of_row, equivalent, positions, types, tolerance)


def augment(record, symmetry, rng, config=AugmentConfig()):
    """A symmetry-keeping variant of ``record``: (lattice, numbers, frac, occupancies, b_iso)."""
    from .structures import _family_of, _radius

    numbers = record.numbers.copy()
    lattice = record.lattice.copy()
    frac = record.frac.copy()
    occ = record.occupancies.copy()
    if config.substitute > 0:
        family = _family_of()
        elements = np.unique(numbers)
        taken = set(int(z) for z in elements)
        mapping = {}
        for z in rng.permutation(elements):
            z = int(z)
            options = [m for m in family.get(z, []) if m not in taken and m != z]
            if options and rng.random() < config.substitute:
                new = int(rng.choice(options))
                mapping[z] = new
                taken.add(new)
        if mapping:
            old_volume = float(np.sum([_radius(z) ** 3 * o for z, o in zip(numbers, occ)]))
            numbers = np.array([mapping.get(int(z), int(z)) for z in numbers])
            new_volume = float(np.sum([_radius(z) ** 3 * o for z, o in zip(numbers, occ)]))
            if old_volume > 0 and new_volume > 0:
                lattice = lattice * (new_volume / old_volume) ** (1.0 / 3.0)
    if config.strain > 0:
        columns = lattice.T
        random_strain = rng.normal(0.0, config.strain, size=(3, 3))
        random_strain = 0.5 * (random_strain + random_strain.T)
        cart = columns @ symmetry.rotations @ np.linalg.inv(columns)
        symmetric = np.mean(cart @ random_strain @ cart.transpose(0, 2, 1), axis=0)
        lattice = ((np.eye(3) + symmetric) @ columns).T
    if (config.displacement > 0 and rng.random() < config.displacement_probability
            and symmetry.permutations is not None):
        n_sites = len(symmetry.positions)
        step = rng.normal(0.0, config.displacement / np.sqrt(3.0), size=(n_sites, 3)) @ np.linalg.inv(lattice)
        total = np.zeros_like(step)
        for rotation, perm in zip(symmetry.rotations, symmetry.permutations):
            np.add.at(total, perm, step @ rotation.T)
        frac = (frac + (total / len(symmetry.rotations))[symmetry.site_of_row]) % 1.0
    partial = occ < 0.999
    if config.occupancy_jitter > 0 and partial.any():
        orbit = symmetry.equivalent[symmetry.site_of_row]  # one orbit id per row
        keys = orbit.astype(np.int64) * 256 + numbers.astype(np.int64)
        unique, inverse = np.unique(keys, return_inverse=True)
        factor = np.exp(rng.normal(0.0, config.occupancy_jitter, size=len(unique)))[inverse.ravel()]
        occ = np.where(partial, occ * factor, occ)
        site_total = np.bincount(symmetry.site_of_row, weights=occ)
        over = np.maximum(site_total, 1.0)[symmetry.site_of_row]
        occ = np.clip(occ / over, 0.0, 1.0)
    b_iso = float(rng.uniform(*config.b_range)) if config.b_range else 0.0
    return lattice, numbers, frac, occ, b_iso


def peaks_with_occupancy(lattice, frac, numbers, occupancies, po_direction, b_iso=0.0):
    """(d, f2m, cos2, rank) like :func:`csn_plugin.synth.dataset.peaks_of`, with occupancies and an
    overall Debye-Waller factor exp(-B / (2 d^2)); None if nothing diffracts."""
    from .dataset import D_MIN, strongest_peaks
    from .simulate import simulate_reflections

    reflections = simulate_reflections(lattice, frac, numbers, occupancies=occupancies, d_min=D_MIN,
                                       po_direction=po_direction)
    d, f2m, cos2 = reflections.d, reflections.f2m, reflections.cos2
    if b_iso:
        f2m = f2m * np.exp(-b_iso / (2.0 * d * d))
    return strongest_peaks(d, f2m, cos2)


def simulate_item(store, index, rng, variant=True, config=AugmentConfig(), symmetry_cache=None):
    """Peaks of structure ``index`` of ``store``: an augmented variant (``variant``) or the
    stored structure with a random B. Returns (peaks or None, po_direction, b_iso)."""
    from .structures import sample_po_direction

    record = store.record(index)
    po = sample_po_direction(rng)
    if variant:
        symmetry = symmetry_cache.get(index) if symmetry_cache is not None else None
        if symmetry is None:
            symmetry = symmetry_of(record)
            if symmetry_cache is not None:
                symmetry_cache[index] = symmetry
        lattice, numbers, frac, occ, b_iso = augment(record, symmetry, rng, config)
    else:
        lattice, numbers, frac, occ = record.lattice, record.numbers, record.frac, record.occupancies
        b_iso = float(rng.uniform(*config.b_range)) if config.b_range else 0.0
    return peaks_with_occupancy(lattice, frac, numbers, occ, po, b_iso), po, b_iso


def simulate_batch(store, indices, rng, max_peaks=256, variant=True, config=AugmentConfig()):
    """On-the-fly path: padded (d, f2m, cos2) float32 arrays (len(indices), max_peaks) and
    labels for ``indices`` of ``store``, each simulated afresh (augmented when ``variant``), in
    the layout of :meth:`csn_plugin.synth.dataset.PeakDataset.batch_arrays` (0 = padding)."""
    def peaks_of(index):
        try:
            return simulate_item(store, index, rng, variant, config)[0]
        except (LabelError, ValueError):
            return None

    rows = [peaks_of(index) for index in np.asarray(indices).tolist()]
    return padded_peaks(rows, max_peaks), store.space_group[np.asarray(indices)].astype(np.int64)


def padded_peaks(rows, max_peaks):
    """Padded (d, f2m, cos2) float32 arrays (len(rows), max_peaks) from per-item (d, f2m, cos2,
    rank) tuples (None: an all-zero row); reflections of rank >= max_peaks dropped."""
    out = [np.zeros((len(rows), max_peaks), dtype=np.float32) for _ in range(3)]
    for row, peaks in enumerate(rows):
        if peaks is None:
            continue
        d, f2m, cos2, rank = peaks
        keep = rank < max_peaks
        n = int(keep.sum())
        for array, values in zip(out, (d, f2m, cos2)):
            array[row, :n] = values[keep]
    return tuple(out)


# ----------------------------------------------------------------------------- peak shards for `csn train`


@dataclass
class ShardPlan:
    train: np.ndarray  # store indices of the train split (max_atoms applied), in shuffled order
    val: np.ndarray  # store indices for shard 0 (validation)
    variants: int
    shard_size: int
    random_every: int  # one random-crystal shard after every N real shards (0: none)

    def real_shards(self):
        return int(np.ceil(len(self.train) * self.variants / self.shard_size))


def plan_shards(store, split, variants=4, shard_size=2000, max_atoms=400, seed=0, val_items=1024, random_every=10):
    from .splits import TRAIN, VAL

    small = np.diff(store.offsets) <= max_atoms
    rng = np.random.default_rng([seed, 11])
    train = np.flatnonzero((split == TRAIN) & small)
    train = train[rng.permutation(len(train))]
    val = np.flatnonzero((split == VAL) & small)
    val = np.sort(val[rng.permutation(len(val))[:val_items]])
    return ShardPlan(train, val, int(variants), int(shard_size), int(random_every))


_PEAK_KEYS = ("d", "f2m", "cos2", "rank")


def _write_real_shard(path, store, items, seed, shard_index, config):
    """items: list of (store index, round); round 0 = the stored structure, >= 1 = a variant."""
    from .dataset import peak_shard_arrays
    from .structures import SOURCE_CODES

    started = time.perf_counter()
    rng = np.random.default_rng([int(seed), 7, int(shard_index)])
    peaks = {key: [] for key in _PEAK_KEYS}
    per_item = {key: [] for key in ("space_group", "requested_group", "source", "n_atoms", "po_direction",
                                    "db_source", "store_index", "variant", "b_iso")}
    skipped = Counter()
    for index, round_ in items:
        try:
            result, po, b_iso = simulate_item(store, index, rng, variant=round_ > 0, config=config)
        except LabelError:
            skipped["symmetry"] += 1
            continue
        except Exception:
            skipped["simulate"] += 1
            continue
        if result is None or len(result[0]) < 3:
            skipped["few_peaks"] += 1
            continue
        for key, values in zip(_PEAK_KEYS, result):
            peaks[key].append(values)
        per_item["space_group"].append(int(store.space_group[index]))
        per_item["requested_group"].append(int(store.space_group_fine[index]))
        per_item["source"].append(SOURCE_CODES["variant" if round_ else "real"])
        per_item["n_atoms"].append(min(store.n_rows(index), 32767))
        per_item["po_direction"].append(po)
        per_item["db_source"].append(int(store.source[index]))
        per_item["store_index"].append(int(index))
        per_item["variant"].append(int(round_))
        per_item["b_iso"].append(b_iso)
    stats = {"requested": len(items), "items": len(per_item["space_group"]), "skipped": dict(skipped),
             "seconds": round(time.perf_counter() - started, 2), "peaks_version": PEAKS_VERSION}
    arrays = {
        **peak_shard_arrays(peaks, per_item),
        "db_source": np.array(per_item["db_source"], dtype=np.int8),
        "store_index": np.array(per_item["store_index"], dtype=np.int32),
        "variant": np.array(per_item["variant"], dtype=np.int8),
        "b_iso": np.array(per_item["b_iso"], dtype=np.float32),
    }
    save_arrays(path, arrays, stats)
    return stats


RANDOM_SHARD_OFFSET = 50000  # random-crystal shards are shard-5xxxx (after the real ones)


def peak_jobs(plan):
    """[(kind, shard index, items)] in build order: validation shard 0, then real shards with one
    random-crystal shard after every ``random_every``."""
    jobs = [("real", 0, [(int(i), 0) for i in plan.val])]
    sequence = [(int(index), round_) for round_ in range(plan.variants) for index in plan.train]
    n_real = plan.real_shards()
    random_index = 0
    for shard in range(n_real):
        chunk = sequence[shard * plan.shard_size:(shard + 1) * plan.shard_size]
        jobs.append(("real", shard + 1, chunk))
        if plan.random_every and (shard + 1) % plan.random_every == 0:
            jobs.append(("random", RANDOM_SHARD_OFFSET + random_index, plan.shard_size))
            random_index += 1
    return jobs


VAL_ITEMS = 1024  # shard 0: csn train validates on the first 0.02 x items (at most 2,048) of a dataset


def write_peak_shards(store_dir, out=None, variants=4, shard_size=2000, max_atoms=400, seed=0, random_every=10,
                      workers=1, progress=True, limit_shards=0, config=AugmentConfig(), val_items=VAL_ITEMS):
    """Write PeakDataset-compatible shards from the train split of the store in ``store_dir``.

    ``shard-00000.npz``: ``val_items`` val-split structures (unchanged; ``csn train`` reads
    ``val_items`` from the manifest and validates on exactly those: unseen structure types only,
    none of them trained on).
    ``shard-00001...``: the train split, ``variants`` rounds over a shuffled order (round 0 the
    stored structure, later rounds augmented variants), ``shard_size`` items per shard; after
    every ``random_every`` real shards one shard of random Wyckoff crystals
    (``csn_plugin.synth.dataset.build_shard``, natural distribution) as a complement. Extra per-item
    arrays: ``db_source`` (code in SOURCE_ORDER), ``store_index``, ``variant``, ``b_iso``.
    Resumable (finished shards are kept); ``limit_shards`` stops after that many jobs (0: all).
    """
    from .dataset import build_shard, shard_path
    from .splits import load_splits

    store_dir = Path(store_dir)
    out = Path(out) if out else store_dir / "peaks"
    out.mkdir(parents=True, exist_ok=True)
    settings = {"peaks_version": PEAKS_VERSION, "variants": int(variants), "shard_size": int(shard_size),
                "max_atoms": int(max_atoms), "seed": int(seed), "random_every": int(random_every),
                "val_items": int(val_items)}
    manifest_path = out / "real_manifest.json"
    if manifest_path.exists():
        previous = json.loads(manifest_path.read_text())
        different = {k: previous.get(k) for k in settings if previous.get(k) != settings[k]}
        if different:
            raise StoreError(f"{out}: holds shards with other settings {different}; use another directory")
    store = StructureStore(store_dir)
    split = load_splits(store_dir, store)
    plan = plan_shards(store, split, variants, shard_size, max_atoms, seed, val_items=val_items, random_every=random_every)
    jobs = peak_jobs(plan)
    if limit_shards:
        jobs = jobs[:int(limit_shards)]
    manifest = {**settings, "status": "building", "train_structures": int(len(plan.train)),
                "val_structures": int(len(plan.val)), "jobs": len(jobs), "store": str(store_dir)}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    todo = []
    for kind, index, items in jobs:
        path = shard_path(out, index)
        if path.exists():
            stats = _read_stats(path)
            want = items if kind == "random" else len(items)
            if stats and stats.get("requested") == want:
                continue
        todo.append((kind, index, items))
    _say(progress, f"{out}: {len(jobs) - len(todo)} shards done, {len(todo)} to write "
                   f"({len(plan.train)} train structures x {variants} rounds, {len(plan.val)} val)")
    started = time.perf_counter()

    def run(job):
        kind, index, items = job
        if kind == "random":
            return build_shard(out, index, items, seed, "natural")
        return _write_real_shard(shard_path(out, index), store, items, seed, index, config)

    done = 0
    if workers <= 1:
        for job in todo:
            stats = run(job)
            done += 1
            _say(progress, f"shard {job[1]} ({job[0]}): {stats['items']} items, {stats['seconds']} s "
                           f"[{done}/{len(todo)}, {time.perf_counter() - started:.0f} s]")
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        global _FORK_RUN
        _FORK_RUN = run
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=int(workers), mp_context=context) as pool:
            for job, stats in zip(todo, pool.map(_fork_run, todo)):
                done += 1
                _say(progress, f"shard {job[1]} ({job[0]}): {stats['items']} items, {stats['seconds']} s "
                               f"[{done}/{len(todo)}, {time.perf_counter() - started:.0f} s]")
    manifest["status"] = "complete" if not limit_shards else "partial"
    manifest["elapsed_seconds"] = round(time.perf_counter() - started, 1)
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


_FORK_RUN = None


def _fork_run(job):
    return _FORK_RUN(job)
