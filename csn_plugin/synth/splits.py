"""Train / val / test splits that measure generalisation to unseen structure types and minerals.

Structures are linked when they share a structure type (spglib group at symprec 0.1 + sorted
Wyckoff letters of the distinct sites + anonymous formula: :attr:`Labels.type_key`) or a mineral
name (normalised, :func:`~.labels.mineral_key`: AMCSD, BGMN and robocrys entries of one mineral
are linked). Each connected group goes whole to one side, chosen by a hash of the group's key
(its smallest member key), so the assignment is deterministic and does not depend on the order
or on which other sources were built: a group holding quartz goes to the same side in every
build. Test 10 %, val 5 % of the groups (by hash), the rest train.

The development test set (``devset.npz``, :mod:`.devset`) is drawn from the test split: one
structure per (structure type, formula), at most :data:`DEV_PER_GROUP` per space group, sources
with experimental structures first (AMCSD, BGMN, wheels, OQMD-ICSD, then Materials Project and
CoRE MOF), at most :data:`DEV_MAX_ATOMS` atoms; its class-balanced subset holds at most
:data:`BALANCED_PER_GROUP` per space group.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np

TRAIN, VAL, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "val", "test")
TEST_FRACTION = 0.10
VAL_FRACTION = 0.05
SALT = "csn-real-split-v1"
DEV_PER_GROUP = 30
BALANCED_PER_GROUP = 10
DEV_MAX_ATOMS = 500
DEV_PRIORITY = ("amcsd", "bgmn", "wheels", "oqmd-icsd", "mp", "core-mof")


def hash_unit(text, salt=SALT):
    """A number in [0, 1) from the SHA-1 of ``salt:text`` (deterministic across runs)."""
    digest = hashlib.sha1(f"{salt}:{text}".encode()).hexdigest()
    return int(digest[:13], 16) / float(16**13)


def side_of(key, test_fraction=TEST_FRACTION, val_fraction=VAL_FRACTION):
    """TRAIN, VAL or TEST for a group key."""
    u = hash_unit(key)
    if u < test_fraction:
        return TEST
    if u < test_fraction + val_fraction:
        return VAL
    return TRAIN


def group_structures(type_keys, mineral_keys):
    """(group id per structure, key per group): connected components of structures linked by
    equal type keys or equal non-empty mineral keys; a group's key is its smallest member key."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    type_keys = np.asarray(type_keys, dtype=str)
    mineral_keys = np.asarray(mineral_keys, dtype=str)
    n = len(type_keys)
    types, type_index = np.unique(type_keys, return_inverse=True)
    minerals, mineral_index = np.unique(mineral_keys, return_inverse=True)
    type_index, mineral_index = type_index.ravel(), mineral_index.ravel()
    has_mineral = mineral_keys != ""
    rows = np.concatenate([np.arange(n), np.flatnonzero(has_mineral)])
    cols = np.concatenate([n + type_index, n + len(types) + mineral_index[has_mineral]])
    size = n + len(types) + len(minerals)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(size, size))
    _, component = connected_components(graph, directed=False)
    component = component[:n]
    names = np.concatenate([np.char.add("type:", types), np.char.add("mineral:", minerals)])
    member_keys = [names[type_index]] + [names[len(types) + mineral_index[has_mineral]]]
    member_component = np.concatenate([component, component[has_mineral]])
    all_keys = np.concatenate(member_keys)
    order = np.lexsort((all_keys, member_component))
    first = np.ones(len(order), dtype=bool)
    first[1:] = member_component[order][1:] != member_component[order][:-1]
    labels, inverse = np.unique(component, return_inverse=True)
    key_of_component = dict(zip(member_component[order][first].tolist(), all_keys[order][first].tolist()))
    keys = np.array([key_of_component[c] for c in labels.tolist()], dtype=str)
    return inverse.ravel().astype(np.int64), keys


def assign_splits(type_keys, mineral_keys):
    """(split per structure, group per structure, group keys, split per group)."""
    groups, keys = group_structures(type_keys, mineral_keys)
    group_split = np.array([side_of(k) for k in keys.tolist()], dtype=np.int8)
    return group_split[groups], groups, keys, group_split


def select_devset(store, split, per_group=DEV_PER_GROUP, balanced_per_group=BALANCED_PER_GROUP,
                  max_atoms=DEV_MAX_ATOMS):
    """(store indices of the development test set, bool mask of its class-balanced subset)."""
    from .sources import formula_of

    test = np.flatnonzero((split == TEST) & (np.diff(store.offsets) <= max_atoms))
    priority = {name: k for k, name in enumerate(DEV_PRIORITY)}
    order = sorted(test.tolist(), key=lambda i: (priority.get(str(store.source_names[i]), 99), hash_unit(str(store.id[i]))))
    seen, per, chosen = set(), Counter(), []
    for index in order:
        record = store.record(index)
        key = (str(store.type_key[index]), formula_of(record.numbers, record.occupancies))
        group = int(store.space_group[index])
        if key in seen or per[group] >= per_group:
            continue
        seen.add(key)
        per[group] += 1
        chosen.append(index)
    chosen = np.array(sorted(chosen, key=lambda i: (int(store.space_group[i]), str(store.id[i]))), dtype=np.int64)
    balanced = np.zeros(len(chosen), dtype=bool)
    count = Counter()
    for k, index in enumerate(chosen.tolist()):
        group = int(store.space_group[index])
        if count[group] < balanced_per_group:
            balanced[k] = True
            count[group] += 1
    return chosen, balanced


def write_splits(out):
    """Split every structure of the store in ``out``; write splits.npz, splits.json,
    devset.npz and heldout_minerals.json; return the summary."""
    from .arrays import StructureStore, save_arrays, subset_arrays

    out = Path(out)
    store = StructureStore(out)
    split, groups, keys, group_split = assign_splits(store.type_key, store.mineral_key)
    save_arrays(out / "splits.npz", {"id": store.id, "split": split, "group": groups.astype(np.int32),
                                     "group_key": keys, "group_split": group_split})
    group_sizes = np.bincount(groups)
    summary = {"salt": SALT, "test_fraction": TEST_FRACTION, "val_fraction": VAL_FRACTION, "structures": len(store)}
    for side, name in enumerate(SPLIT_NAMES):
        mask = split == side
        summary[name] = {
            "structures": int(mask.sum()), "groups": int((group_split == side).sum()),
            "space_groups": int(len(np.unique(store.space_group[mask]))),
            "by_source": dict(Counter(store.source_names[mask].tolist())),
        }
    largest = np.argsort(-group_sizes)[:10]
    summary["largest_groups"] = [{"key": str(keys[g]), "structures": int(group_sizes[g]),
                                  "split": SPLIT_NAMES[int(group_split[g])]} for g in largest]
    chosen, balanced = select_devset(store, split)
    dev = subset_arrays(store.arrays, chosen)
    dev["store_index"] = chosen
    dev["balanced"] = balanced
    save_arrays(out / "devset.npz", dev, {"salt": SALT, "per_group": DEV_PER_GROUP, "balanced_per_group": BALANCED_PER_GROUP,
                                          "max_atoms": DEV_MAX_ATOMS})
    summary["devset"] = {
        "structures": int(len(chosen)), "space_groups": int(len(np.unique(store.space_group[chosen]))),
        "balanced_structures": int(balanced.sum()),
        "balanced_space_groups": int(len(np.unique(store.space_group[chosen][balanced]))),
        "by_source": dict(Counter(store.source_names[chosen].tolist())),
    }
    minerals = {}
    for side in (TEST, VAL):
        mask = (split == side) & (store.mineral_key != "")
        names = {}
        for key, name in zip(store.mineral_key[mask].tolist(), store.mineral[mask].tolist()):
            names.setdefault(key, set()).add(name)
        minerals[SPLIT_NAMES[side]] = {key: sorted(value) for key, value in sorted(names.items())}
    (out / "heldout_minerals.json").write_text(json.dumps({
        "note": "mineral keys (normalised names) whose every AMCSD/BGMN/robocrys entry is in that split; "
                "no entry of the same mineral is in train",
        **minerals}, indent=1) + "\n")
    summary["heldout_minerals"] = {name: len(value) for name, value in minerals.items()}
    (out / "splits.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def load_splits(out, store=None):
    """The split (TRAIN/VAL/TEST per structure, int8) of the store in ``out``, checked against it."""
    from .arrays import StoreError, load_arrays

    arrays = load_arrays(Path(out) / "splits.npz")
    if store is not None and (len(arrays["id"]) != len(store) or not np.array_equal(arrays["id"], store.id)):
        raise StoreError(f"{out}: splits.npz does not match the stored structures; rerun csn dataset real build")
    return arrays["split"]
