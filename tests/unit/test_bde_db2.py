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
                                    "bad_value": 2, "bad_smiles": 1, "bad_row": 1, "bad_csv": 1,
                                    "unknown_set": 2, "out_of_range": 2}
    assert report.kept == 6
    assert molecules["C1CC1X"] is None
    ethanol = molecules["CCO"]
    # rows 1, 2, 10 and 13 (the O-H bond, set "Train"); row 5's bond 2 has the wrong fragments
    assert ethanol.targets[[0, 1, 3, 7], 0].tolist() == [87.0, 94.0, 101.0, 104.0]
    assert ethanol.targets[7, 1] == 96.0
    assert np.isnan(ethanol.targets[[5, 6], 0]).all()  # rows 14-18, each dropped on its own line
    assert any("bad_rows.csv:6" in e for e in report.examples["fragment_mismatch"])


def test_each_row_after_an_unclosed_quote_is_read_or_counted() -> None:
    report = DropReport()
    records = [r.record for r in read_rows(DATA / "bad_rows.csv", report=report)]
    assert records[-1] == "bad_rows.csv:14"  # line 15 opens a quote it never closes: lines 16-19 follow it
    assert report.examples["bad_csv"] == ["bad_rows.csv:15: unexpected end of data (a quote must close on its "
                                          "own line)"]
    assert report.examples["unknown_set"] == ["bad_rows.csv:16: set 'trian' is not one of train, valid, val, "
                                              "validation, test", "bad_rows.csv:19: set '' is not one of train, "
                                              "valid, val, validation, test"]
    assert report.examples["out_of_range"] == ["bad_rows.csv:17: bde -500 not in [-50, 300] kcal/mol",
                                               "bad_rows.csv:18: bdfe 1e30 not in [-50, 300] kcal/mol"]


def test_unclosed_quote_in_the_real_sample_costs_its_line_only(tmp_path: Path) -> None:
    lines = (DATA / "tiny.csv").read_text().splitlines(keepends=True)
    fields = lines[9].split(",")
    fields[6] = '"' + fields[6]  # line 10: a quote opens in its bde field and never closes
    lines[9] = ",".join(fields)
    (tmp_path / "tiny.csv").write_text("".join(lines))
    report = DropReport()
    rows = list(read_rows(tmp_path / "tiny.csv", report=report))
    assert dict(report.dropped) == {"bad_csv": 1} and report.examples["bad_csv"][0].startswith("tiny.csv:10: ")
    assert rows == [r for r in read_rows(DATA / "tiny.csv") if r.record != "tiny.csv:10"]
    with pytest.raises(RecordError, match="'tiny.csv:10': bad_csv"):
        list(read_rows(tmp_path / "tiny.csv"))


def test_values_out_of_range_are_dropped_with_their_reason(tmp_path: Path) -> None:
    table = tmp_path / "range.csv"
    table.write_text("molecule,bond_index,fragment1,fragment2,bde,bdfe\n"
                     "CCO,0,[CH3],[CH2]O,-500,75.0\n"
                     "CCO,0,[CH3],[CH2]O,1e30,75.0\n"
                     "CCO,0,[CH3],[CH2]O,87.0,-500\n"
                     "CCO,0,[CH3],[CH2]O,-6.2,-14.5\n"  # the bundled tables' extremes are kept
                     "CCO,0,[CH3],[CH2]O,270.4,\n")
    report = DropReport()
    kept = [(r.bde, r.bdfe) for r in read_rows(table, report=report)]
    assert kept[0] == (-6.2, -14.5) and kept[1][0] == 270.4 and math.isnan(kept[1][1]) and len(kept) == 2
    assert dict(report.dropped) == {"out_of_range": 3}
    assert report.examples["out_of_range"][0] == "range.csv:2: bde -500 not in [-50, 300] kcal/mol"
    narrow = DropReport()
    assert len(list(read_rows(table, report=narrow, value_range=(0.0, 100.0)))) == 0
    assert narrow.dropped == {"out_of_range": 5}


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
