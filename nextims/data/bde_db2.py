"""BDE-db2-format tables of homolytic bond-dissociation energies: streamed reading and row validation.

A table has one row (one line) per broken bond: `molecule` (SMILES), `bond_index` (RDKit bond index in the
molecule after `Chem.AddHs`), `fragment1`, `fragment2` (the two radicals' SMILES), `bde` and optionally
`bdfe` (kcal/mol) and `set` (train/valid/test; a row with any other set, or none, in a table that has the
column is dropped). Other columns (rid, bond_type, bdscfe, an unnamed index) are ignored. A row is valid
when its SMILES parses, the bond exists, and breaking it gives its fragments.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from rdkit import Chem, rdBase

from nextims.data.featurize import mol_from_smiles
from nextims.errors import DropReport, InputError, RecordError, handle
from nextims.io.text import RawRecord, decode_record, location, split_records

REQUIRED_COLUMNS = ("molecule", "bond_index", "fragment1", "fragment2", "bde")
OPTIONAL_COLUMNS = ("bdfe", "set")
SET_NAMES = {"train": "train", "valid": "val", "val": "val", "validation": "val", "test": "test"}
# Allowed bde and bdfe (kcal/mol): the bundled tables span -6.2 to 270.4 (bde) and -14.5 to 260.8 (bdfe).
VALUE_RANGE = (-50.0, 300.0)

_REMOVE_HS = Chem.RemoveHsParameters()
_REMOVE_HS.removeDefiningBondStereo = True  # a vinyl radical's H would otherwise stay explicit


@dataclass(frozen=True)
class BDERow:
    """One homolytic bond dissociation: bond `bond_index` of the explicit-hydrogen molecule."""

    record: str  # file:line
    molecule: str
    bond_index: int
    fragments: tuple[str, str]
    bde: float
    bdfe: float  # NaN when the table has none
    set: str  # "" when the table has no set column


@dataclass
class MoleculeTargets:
    """A validated molecule: its explicit-H RDKit molecule and (bde, bdfe) per bond, NaN where unknown."""

    smiles: str  # as written in the table
    mol: Chem.Mol  # after Chem.AddHs: bond b is the table's bond_index b
    targets: np.ndarray  # float32 (num_bonds, 2): bde, bdfe
    bond_class: np.ndarray  # int32 (num_bonds,): the first bond of each bond's symmetry class
    set: str
    propagated: int  # bonds given the value of a symmetry-equivalent bond


def _column_positions(header: list[str], columns: Mapping[str, str], path: Path) -> dict[str, int]:
    """Where each of our columns is in the file's header (InputError naming the missing ones)."""
    names = [h.strip() for h in header]
    positions = {}
    for ours in REQUIRED_COLUMNS + OPTIONAL_COLUMNS:
        theirs = columns.get(ours, ours)
        if theirs in names:
            positions[ours] = names.index(theirs)
    missing = [columns.get(c, c) for c in REQUIRED_COLUMNS if c not in positions]
    if missing:
        raise InputError(f"{path}: no column {', '.join(missing)} in the header {names}")
    return positions


def _fields(raw: RawRecord, where: str) -> list[str]:
    """The CSV fields of one physical line, or RecordError (encoding, bad_csv, truncated).

    A row is one line: a quote that does not close on its line costs that line only, never the lines after it.
    """
    if raw.cut:
        raise RecordError(where, "truncated", "the compressed stream ends early: rows from here on are lost")
    text = decode_record(raw, "utf-8", lambda _: None, where)
    try:
        return next(csv.reader([text], strict=True))
    except csv.Error as err:
        raise RecordError(where, "bad_csv", f"{err} (a quote must close on its own line)") from None


def _header(raw: RawRecord | None, path: Path) -> list[str]:
    """The header's fields; InputError when the file is empty or its first line is not CSV text."""
    if raw is None:
        raise InputError(f"{path} is empty")
    try:
        return _fields(raw, location(path, raw))
    except RecordError as err:
        raise InputError(f"{path}: unreadable header ({err})") from None


def _energies(get: dict[str, str], record: str, value_range: tuple[float, float]) -> tuple[float, float]:
    """(bde, bdfe) of a row, bdfe NaN when empty; RecordError bad_value, or out_of_range outside value_range."""
    try:
        bde = float(get["bde"])
        bdfe = float(get["bdfe"]) if get.get("bdfe") else math.nan
    except ValueError as err:
        raise RecordError(record, "bad_value", str(err)) from None
    if not math.isfinite(bde) or math.isinf(bdfe):
        raise RecordError(record, "bad_value", f"bde {get['bde']!r}, bdfe {get.get('bdfe')!r}")
    low, high = value_range
    outside = [f"{name} {get[name]}" for name, v in (("bde", bde), ("bdfe", bdfe)) if v < low or v > high]
    if outside:
        raise RecordError(record, "out_of_range", f"{', '.join(outside)} not in [{low:g}, {high:g}] kcal/mol")
    return bde, bdfe


def _set_name(get: dict[str, str], record: str) -> str:
    """The row's set ("" without a set column); RecordError unknown_set when it is not one of SET_NAMES."""
    name = get.get("set", "")
    if "set" in get and name.lower() not in SET_NAMES:
        raise RecordError(record, "unknown_set", f"set {name!r} is not one of {', '.join(SET_NAMES)}")
    return name


def _parse_row(fields: list[str], width: int, positions: dict[str, int], record: str,
               value_range: tuple[float, float]) -> BDERow:
    """A BDERow from one CSV line's fields, or RecordError (bad_row, bad_value, out_of_range, unknown_set)."""
    if len(fields) != width:
        raise RecordError(record, "bad_row", f"{len(fields)} fields, the header has {width}")
    get = {k: fields[i].strip() for k, i in positions.items()}
    try:
        bond_index = int(get["bond_index"])
    except ValueError:
        raise RecordError(record, "bad_row", f"bond_index {get['bond_index']!r} is not an integer") from None
    bde, bdfe = _energies(get, record, value_range)
    return BDERow(record, get["molecule"], bond_index, (get["fragment1"], get["fragment2"]), bde, bdfe,
                  _set_name(get, record))


def read_rows(path: str | Path, columns: Mapping[str, str] | None = None, report: DropReport | None = None,
              value_range: tuple[float, float] = VALUE_RANGE) -> Iterator[BDERow]:
    """Stream the rows of a BDE-db2-format CSV (plain, .gz, .xz or .bz2), one row per line.

    `columns` maps our column names to the file's where they differ (e.g. {"molecule": "smiles",
    "bde": "exp_kcal_mol"}). A row needs as many fields as the header, bde (and bdfe, when given) within
    value_range (kcal/mol) and, in a table with a set column, a set of SET_NAMES. Bad rows raise RecordError,
    or are counted in report and skipped; a compressed stream that ends early counts once as `truncated`.
    """
    path = Path(path)
    with closing(split_records(path)) as records:
        header = _header(next(records, None), path)
        positions = _column_positions(header, dict(columns or {}), path)
        for raw in records:
            where = location(path, raw)
            try:
                row = _parse_row(_fields(raw, where), len(header), positions, where, value_range)
            except RecordError as err:
                handle(err, report)
                continue
            yield row


def group_by_molecule(rows: Iterable[BDERow]) -> dict[str, list[BDERow]]:
    """Rows grouped by molecule SMILES, in order of first appearance."""
    groups: dict[str, list[BDERow]] = {}
    for row in rows:
        groups.setdefault(row.molecule, []).append(row)
    return groups


@lru_cache(maxsize=200_000)
def canonical_fragment(smiles: str) -> tuple[str, str] | None:
    """(isomeric, non-isomeric) canonical SMILES of a radical fragment; None when it does not parse."""
    if not smiles:
        return "", ""
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return None
    return Chem.MolToSmiles(mol), Chem.MolToSmiles(mol, isomericSmiles=False)


def break_bond(mol_h: Chem.Mol, bond_index: int, isomeric: bool = True) -> tuple[str, ...]:
    """Homolysis of bond `bond_index` of an explicit-H molecule: the fragments' canonical SMILES, sorted.

    Each end of the bond gets one radical electron. Breaking a ring bond gives one (diradical) fragment.
    Raises ValueError when the radicals cannot be sanitized.
    """
    rw = Chem.RWMol(mol_h)
    bond = rw.GetBondWithIdx(bond_index)
    ends = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
    rw.RemoveBond(*ends)
    for idx in ends:
        atom = rw.GetAtomWithIdx(idx)
        atom.SetNumRadicalElectrons(atom.GetNumRadicalElectrons() + 1)
        atom.SetNoImplicit(True)
    with rdBase.BlockLogs():
        Chem.SanitizeMol(rw)
        mol = Chem.RemoveHs(rw, _REMOVE_HS)
    return tuple(sorted(Chem.MolToSmiles(mol, isomericSmiles=isomeric).split(".")))


def _try_break(mol_h: Chem.Mol, bond_index: int, isomeric: bool) -> tuple[str, ...] | None:
    """break_bond, or None when the fragments cannot be sanitized."""
    try:
        return break_bond(mol_h, bond_index, isomeric)
    except ValueError:
        return None


def _expected(given: tuple[str, str], isomeric: bool, n_found: int) -> tuple[str, ...] | None:
    """The table's fragments, canonical and sorted (None when one does not parse).

    When breaking the bond gave one fragment (a ring bond), the table lists it twice or beside an empty one.
    """
    canon = [canonical_fragment(g) for g in given]
    if any(c is None for c in canon):
        return None
    expected = tuple(sorted(c[0 if isomeric else 1] for c in canon))
    return tuple(sorted({e for e in expected if e})) if n_found == 1 else expected


def symmetry_classes(mol_h: Chem.Mol) -> np.ndarray:
    """For each bond, the index of the first bond with the same unordered pair of symmetry classes of its atoms."""
    ranks = list(Chem.CanonicalRankAtoms(mol_h, breakTies=False))
    first: dict[tuple[int, int], int] = {}
    out = np.empty(mol_h.GetNumBonds(), dtype=np.int32)
    for bond in mol_h.GetBonds():
        a, b = ranks[bond.GetBeginAtomIdx()], ranks[bond.GetEndAtomIdx()]
        out[bond.GetIdx()] = first.setdefault((min(a, b), max(a, b)), bond.GetIdx())
    return out


def _check_row(row: BDERow, mol_h: Chem.Mol, targets: np.ndarray, classes: np.ndarray,
               fragments: dict[int, tuple[str, ...] | None]) -> None:
    """RecordError unless the row's bond exists, has no value yet, and breaks into the row's fragments.

    `fragments` memoizes the (isomeric) fragments per symmetry class of the molecule's bonds.
    """
    num_bonds = len(targets)
    if not 0 <= row.bond_index < num_bonds:
        raise RecordError(row.record, "bond_index_out_of_range",
                          f"bond {row.bond_index} of {row.molecule} ({num_bonds} bonds with hydrogens)")
    if not np.isnan(targets[row.bond_index, 0]):
        raise RecordError(row.record, "duplicate", f"bond {row.bond_index} of {row.molecule} again")
    cls = int(classes[row.bond_index])
    if cls not in fragments:
        fragments[cls] = _try_break(mol_h, row.bond_index, True)
    found = fragments[cls]
    if found is not None and found == _expected(row.fragments, True, len(found)):
        return
    # stereo perception differs between RDKit versions: a match without stereo is a match
    if found is not None and _try_break(mol_h, row.bond_index, False) == _expected(row.fragments, False, len(found)):
        return
    raise RecordError(row.record, "fragment_mismatch",
                      f"bond {row.bond_index} of {row.molecule} gives {found}, not {row.fragments}")


def validate_molecule(smiles: str, rows: list[BDERow], report: DropReport | None = None,
                      propagate: bool = True) -> MoleculeTargets | None:
    """Check a molecule's rows and collect its per-bond targets (None when no row is valid).

    Reasons: bad_smiles (every row of the molecule), bond_index_out_of_range, fragment_mismatch,
    duplicate (a second row for the same bond). With propagate, a bond without a row takes the value of
    a symmetry-equivalent bond. Bad rows raise RecordError, or are counted in report and skipped.
    """
    try:
        mol_h = Chem.AddHs(mol_from_smiles(smiles, rows[0].record))
    except RecordError as err:
        if report is None:
            raise
        for row in rows:
            report.drop("bad_smiles", row.record, err.detail)
        return None
    targets = np.full((mol_h.GetNumBonds(), 2), np.nan, dtype=np.float32)
    classes = symmetry_classes(mol_h)
    fragments: dict[int, tuple[str, ...] | None] = {}
    kept = 0
    for row in rows:
        try:
            _check_row(row, mol_h, targets, classes, fragments)
        except RecordError as err:
            handle(err, report)
            continue
        targets[row.bond_index] = row.bde, row.bdfe
        kept += 1
    if report is not None:
        report.keep(kept)
    if not kept:
        return None
    propagated = 0
    if propagate:
        unknown = np.isnan(targets[:, 0])
        for cls in np.unique(classes[unknown]):
            members = np.nonzero(classes == cls)[0]
            known = members[~unknown[members]]
            if len(known):
                targets[members[unknown[members]]] = targets[known[0]]
        propagated = int(np.count_nonzero(~np.isnan(targets[:, 0]))) - kept
    return MoleculeTargets(smiles, mol_h, targets, classes, rows[0].set, propagated)
