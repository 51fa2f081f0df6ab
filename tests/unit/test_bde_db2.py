"""BDE-db2 table reading: row validation with bad rows counted, bond index to fragments, symmetry, columns."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem

from nextims.data.bde_db2 import break_bond, group_by_molecule, read_rows, symmetry_classes, validate_molecule
from nextims.errors import DropReport, RecordError

DATA = Path(__file__).resolve().parents[1] / "data" / "bde"


def validate_file(path: Path, propagate: bool = True, columns: dict | None = None):
    report = DropReport()
    groups = group_by_molecule(read_rows(path, columns, report))
    return {s: validate_molecule(s, rows, report, propagate) for s, rows in groups.items()}, report


def test_bad_rows_are_counted_by_reason() -> None:
    molecules, report = validate_file(DATA / "bad_rows.csv")
    assert dict(report.dropped) == {"duplicate": 1, "bond_index_out_of_range": 1, "fragment_mismatch": 1,
                                    "bad_value": 2, "bad_smiles": 1, "bad_row": 1}
    assert report.kept == 6
    assert molecules["C1CC1X"] is None
    ethanol = molecules["CCO"]
    # rows 1, 2, 10 and 13 (the O-H bond, with an empty set); row 5's bond 2 has the wrong fragments
    assert ethanol.targets[[0, 1, 3, 7], 0].tolist() == [87.0, 94.0, 101.0, 104.0]
    assert ethanol.targets[7, 1] == 96.0
    assert any("bad_rows.csv:6" in e for e in report.examples["fragment_mismatch"])


def test_bad_row_raises_naming_the_record_without_report() -> None:
    with pytest.raises(RecordError) as err:
        list(read_rows(DATA / "bad_rows.csv"))
    assert err.value.reason == "bad_value" and err.value.record == "bad_rows.csv:7"
    rows = [r for r in read_rows(DATA / "bad_rows.csv", report=DropReport()) if r.molecule == "CCO"]
    with pytest.raises(RecordError, match="duplicate"):
        validate_molecule("CCO", rows)


def test_bond_index_maps_to_fragments() -> None:
    mol = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    assert break_bond(mol, 0) == ("[CH2]O", "[CH3]")
    assert break_bond(mol, 1) == ("[CH2]C", "[OH]")
    assert break_bond(mol, 2) == ("[CH2]CO", "[H]")  # AddHs: hydrogens of C0 first
    assert break_bond(mol, 7) == ("CC[O]", "[H]")
    ring = Chem.AddHs(Chem.MolFromSmiles("C1CC1"))
    assert break_bond(ring, 0) == ("[CH2]C[CH2]",)  # a ring bond gives one diradical


def test_every_row_of_the_real_sample_validates() -> None:
    molecules, report = validate_file(DATA / "tiny.csv")
    assert report.total_dropped == 0 and report.kept == 259
    assert all(m is not None for m in molecules.values())
    n_rows = sum(int(np.isfinite(m.targets[:, 0]).sum()) for m in molecules.values())
    assert n_rows == 259  # the table lists every equivalent bond: nothing to propagate


def test_symmetry_propagation_fills_equivalent_bonds_only() -> None:
    rows = [r for r in read_rows(DATA / "bad_rows.csv", report=DropReport()) if r.molecule == "CCO"]
    full = validate_molecule("CCO", rows, DropReport(), propagate=True)
    bare = validate_molecule("CCO", rows, DropReport(), propagate=False)
    assert np.isnan(bare.targets[[2, 4], 0]).all()
    assert full.targets[[2, 3, 4], 0].tolist() == [101.0, 101.0, 101.0]  # the CH3 hydrogens
    assert np.isnan(full.targets[[5, 6], 0]).all()  # the CH2 hydrogens are another class
    assert full.propagated == 2
    classes = symmetry_classes(Chem.AddHs(Chem.MolFromSmiles("CCO")))
    assert classes.tolist() == [0, 1, 2, 2, 2, 5, 5, 7]


def test_column_mapping_and_optional_columns() -> None:
    rows = list(read_rows(DATA / "exp_tiny.csv", {"molecule": "smiles", "bde": "exp_kcal_mol"}))
    assert len(rows) == 6 and rows[0].molecule == "FC(F)F" and rows[0].bde == 106.4
    assert math.isnan(rows[0].bdfe) and rows[0].set == ""
    with pytest.raises(ValueError, match="no column molecule"):
        list(read_rows(DATA / "exp_tiny.csv"))


def test_release_format_loads_unchanged() -> None:
    molecules, report = validate_file(DATA / "release_format.csv.gz")
    assert report.total_dropped == 0 and report.kept == 24
    iodo = molecules["Nc1cnccc1I"]
    assert iodo.set == "" and iodo.targets[6, 0] == pytest.approx(66.8567, abs=1e-3)
