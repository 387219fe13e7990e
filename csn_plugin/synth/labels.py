"""spglib labels of a structure record: space group at two tolerances, Wyckoff sequence,
structure-type key, mineral key, standardised conventional cell.

Partially occupied structures: rows at the same position are one spglib site whose type is its
composition (elements and occupancies), so a mixed site stays one site and a disordered
structure keeps the symmetry of its average structure.
"""

from __future__ import annotations

import re
import string
import warnings
from dataclasses import dataclass

import numpy as np

SYMPREC = 0.1  # the label (as in issue 11's counts)
SYMPREC_FINE = 1e-3  # recorded too (csn_plugin.synth.structures uses 1e-3 for generated crystals)


class LabelError(Exception):
    """A record spglib cannot label; ``reason`` is a short key counted by the builder."""

    def __init__(self, reason):
        self.reason = reason
        super().__init__(reason)


@dataclass
class Labels:
    space_group: int  # spglib at SYMPREC
    space_group_fine: int  # spglib at SYMPREC_FINE (0 if spglib finds none)
    wyckoff: str  # Wyckoff letters of the symmetry-distinct sites with counts, e.g. "a c e2"
    type_key: str  # "<group>|<wyckoff>|<anonymous formula>"
    mineral_key: str  # normalised mineral name ("" if none)
    std_lattice: np.ndarray  # (3, 3) conventional standardised cell (rows), angstrom
    n_sites: int  # distinct positions (spglib sites)


def compact_wyckoff(text):
    """Sorted Wyckoff letters with counts: "a e c e" or "a c e2" -> "a c e2" (idempotent; keeps
    the keys of large P1 cells short)."""
    counts = {}
    for token in str(text).split():
        letter = token.rstrip("0123456789")
        number = int(token[len(letter):] or 1)
        counts[letter] = counts.get(letter, 0) + number
    return " ".join(letter if counts[letter] == 1 else f"{letter}{counts[letter]}" for letter in sorted(counts))


def compact_type_key(key):
    """A type key with its Wyckoff part in :func:`compact_wyckoff` form (idempotent)."""
    group, _, rest = str(key).partition("|")
    wyckoff, _, anonymous = rest.partition("|")
    return f"{group}|{compact_wyckoff(wyckoff)}|{anonymous}"


def spglib_cell(lattice, frac, numbers, occupancies, merge=1e-3):
    """(cell for spglib, row -> site index): rows at one position become one site typed by
    their composition."""
    frac = np.asarray(frac, dtype=np.float64) % 1.0
    keys = np.round(frac / merge).astype(np.int64) % int(round(1.0 / merge))
    _, site_of_row = np.unique(keys, axis=0, return_inverse=True)
    site_of_row = site_of_row.ravel()
    n_sites = int(site_of_row.max()) + 1
    compositions = [[] for _ in range(n_sites)]
    for row, site in enumerate(site_of_row):
        compositions[site].append((int(numbers[row]), round(float(occupancies[row]), 2)))
    kinds = {}
    types = np.array([kinds.setdefault(tuple(sorted(c)), len(kinds) + 1) for c in compositions])
    positions = np.zeros((n_sites, 3))
    positions[site_of_row] = frac
    return (np.asarray(lattice, dtype=np.float64), positions, types), site_of_row


def anonymous_formula(numbers, occupancies):
    """Element amounts reduced and sorted, with letters: e.g. 'AB2C4' (partial: 2 decimals)."""
    amounts = {}
    for z, occ in zip(np.asarray(numbers).tolist(), np.asarray(occupancies).tolist()):
        amounts[int(z)] = amounts.get(int(z), 0.0) + float(occ)
    values = np.sort(np.array(list(amounts.values())))
    if np.allclose(values, np.round(values), atol=1e-2):
        values = np.round(values).astype(np.int64)
        values = values // np.gcd.reduce(values)
        texts = [str(int(v)) for v in values]
    else:
        values = values / values.min()
        texts = [f"{v:.2f}".rstrip("0").rstrip(".") for v in values]
    letters = string.ascii_uppercase + string.ascii_lowercase
    out = []
    for k, text in enumerate(texts):
        letter = letters[k] if k < len(letters) else f"X{k}"
        out.append(letter + ("" if text == "1" else text))
    return "".join(out)


_NO_NAME = {"missing", "unknown", "none", "synthetic", "n/a", "na", ""}  # AMCSD writes "<missing>"


def mineral_key(name):
    """A mineral name normalised for grouping: lower case, letters only, polytype and
    variety suffixes dropped ('Muscovite-2M1' -> 'muscovite', 'Quartz low' -> 'quartz')."""
    if not name or str(name).strip().lower().strip("<>") in _NO_NAME:
        return ""
    name = re.sub(r"\(.*?\)", " ", str(name)).strip().lower()
    name = re.split(r"[-\s,_/]", name)[0]
    name = re.sub(r"[^a-z]", "", name)
    return name if len(name) >= 3 else ""


def label(record, symprec=SYMPREC, symprec_fine=SYMPREC_FINE):
    """:class:`Labels` of a :class:`~.sources.StructureRecord` (raises LabelError)."""
    import spglib

    if len(record.numbers) == 0:
        raise LabelError("no_atoms")
    cell, _ = spglib_cell(record.lattice, record.frac, record.numbers, record.occupancies)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            dataset = spglib.get_symmetry_dataset(cell, symprec=symprec)
        except Exception:
            dataset = None
        if dataset is None:
            raise LabelError("spglib")
        try:
            fine = spglib.get_symmetry_dataset(cell, symprec=symprec_fine)
        except Exception:
            fine = None
    equivalent = np.asarray(dataset.equivalent_atoms)
    _, first = np.unique(equivalent, return_index=True)
    wyckoff = compact_wyckoff(" ".join(str(dataset.wyckoffs[i]) for i in first))
    anonymous = anonymous_formula(record.numbers, record.occupancies)
    number = int(dataset.number)
    return Labels(
        space_group=number,
        space_group_fine=int(fine.number) if fine is not None else 0,
        wyckoff=wyckoff,
        type_key=f"{number}|{wyckoff}|{anonymous}",
        mineral_key=mineral_key(record.mineral),
        std_lattice=np.asarray(dataset.std_lattice, dtype=np.float64),
        n_sites=len(cell[1]),
    )


def symmetry_operations(record, symprec=SYMPREC):
    """(rotations, translations, site_of_row, equivalent sites) of a record's input cell at ``symprec``."""
    import spglib

    cell, site_of_row = spglib_cell(record.lattice, record.frac, record.numbers, record.occupancies)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = spglib.get_symmetry_dataset(cell, symprec=symprec)
    if dataset is None:
        raise LabelError("spglib")
    return (np.asarray(dataset.rotations), np.asarray(dataset.translations), site_of_row,
            np.asarray(dataset.equivalent_atoms), cell)
