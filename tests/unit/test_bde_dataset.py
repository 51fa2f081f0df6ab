"""The validated-table cache (reuse, invalidation), splits by molecule, held-out exclusion, BDE metrics."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from nextims.data.bde_dataset import assign_split, build_or_load_table, load_bde_table, load_heldout_sets
from nextims.evaluation.bde_metrics import error_metrics

DATA = Path(__file__).resolve().parents[1] / "data" / "bde"


def test_table_cache_is_reused_and_rebuilt_when_the_file_changes(tmp_path: Path) -> None:
    table = tmp_path / "table.csv"
    shutil.copy(DATA / "tiny.csv", table)
    first = build_or_load_table(table, tmp_path / "cache")
    caches = list((tmp_path / "cache").glob("bde-table-*.h5"))
    assert len(caches) == 1 and len(first) == 27
    stamp = caches[0].stat().st_mtime_ns
    again = build_or_load_table(table, tmp_path / "cache")
    assert caches[0].stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.targets, first.targets)
    assert again.report.kept == 259
    lines = table.read_text().splitlines()
    table.write_text("\n".join(lines[:-20]) + "\n")
    os.utime(table, ns=(stamp, stamp))  # same mtime: the content decides
    fewer = build_or_load_table(table, tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("bde-table-*.h5"))) == 2
    assert fewer.report.kept == 239


def test_split_by_set_column_or_hash(tmp_path: Path) -> None:
    data = load_bde_table({"path": str(DATA / "tiny.csv")}, tmp_path)
    counts = {s: int(np.count_nonzero(data.split == s)) for s in ("train", "val", "test")}
    assert counts == {"train": 19, "val": 4, "test": 4}
    fewer = load_bde_table({"path": str(DATA / "tiny.csv"), "train_fraction": 0.5}, tmp_path)
    assert 0 < np.count_nonzero(fewer.split == "train") < 19 and np.array_equal(fewer.split != "train",
                                                                              (data.split != "train") | (fewer.split == "unused"))
    assert fewer.content_key() != data.content_key()
    with pytest.raises(ValueError, match="train_fraction"):
        load_bde_table({"path": str(DATA / "tiny.csv"), "train_fraction": 1.5}, tmp_path)
    release = build_or_load_table(DATA / "release_format.csv.gz", tmp_path)
    assert set(release.sets) == {""}
    with pytest.raises(ValueError, match="no set column"):
        assign_split(release, {"method": "column"})
    split = assign_split(release, {"method": "auto", "fractions": [0.5, 0.25, 0.25], "salt": "s"})
    assert set(split) <= {"train", "val", "test"} and len(split) == len(release)
    assert np.array_equal(split, assign_split(release, {"fractions": [0.5, 0.25, 0.25], "salt": "s"}))


def test_a_misspelt_set_drops_its_row_and_leaves_the_split_alone(tmp_path: Path) -> None:
    lines = (DATA / "tiny.csv").read_text().splitlines(keepends=True)
    first = lines[1].rsplit(",", 1)[0]
    lines[1] = first + ",trian\n"  # the first of its molecule's 9 rows
    table = tmp_path / "table.csv"
    table.write_text("".join(lines))
    original = load_bde_table({"path": str(DATA / "tiny.csv")}, tmp_path / "a")
    misspelt = load_bde_table({"path": str(table)}, tmp_path / "b")
    assert dict(misspelt.report.dropped) == {"unknown_set": 1}
    assert misspelt.report.examples["unknown_set"][0].startswith("table.csv:2: set 'trian'")
    assert misspelt.report.kept == 258
    assert dict(zip(misspelt.smiles, misspelt.split)) == dict(zip(original.smiles, original.split))


def test_value_range_comes_from_the_config(tmp_path: Path) -> None:
    cfg = {"path": str(DATA / "tiny.csv"), "value_range": [0.0, 100.0],
           "heldout": {"commercial": {"path": str(DATA / "commercial_tiny.csv")}}}
    table = load_bde_table(cfg, tmp_path)
    assert table.report.dropped["out_of_range"] > 0 and np.nanmax(table.targets) <= 100.0
    commercial = load_heldout_sets(cfg, tmp_path, table)[0].data
    assert commercial.report.dropped["out_of_range"] > 0
    assert load_bde_table({"path": str(DATA / "tiny.csv")}, tmp_path).report.total_dropped == 0
    with pytest.raises(ValueError, match="value_range"):
        load_bde_table({**cfg, "value_range": [100.0, 0.0]}, tmp_path)


def test_distinct_bonds_and_molecules_with_targets(tmp_path: Path) -> None:
    data = load_bde_table({"path": str(DATA / "bad_rows.csv")}, tmp_path)
    assert len(data) == 2  # ethanol and cyclopropane; the bad SMILES is dropped
    unique = data.unique_bonds()
    known = np.isfinite(data.targets[:, 0])
    assert int(np.count_nonzero(unique & known)) == 5  # C-C, C-O, CH3 hydrogens, O-H; one ring class
    assert data.has_target().all()


def test_heldout_leaves_out_training_molecules(tmp_path: Path) -> None:
    cfg = {"path": str(DATA / "tiny.csv"),
           "heldout": {"commercial": {"path": str(DATA / "commercial_tiny.csv"), "exclude_training_molecules": True},
                       "exp": {"path": str(DATA / "exp_tiny.csv"), "columns": {"molecule": "smiles",
                                                                              "bde": "exp_kcal_mol"}}}}
    table = load_bde_table(cfg, tmp_path)
    sets = {h.name: h for h in load_heldout_sets(cfg, tmp_path, table)}
    commercial = sets["commercial"]
    assert commercial.excluded == 1 and len(commercial.data) == 3 and len(commercial.molecules) == 2
    assert "Brc1cccc2c1COC2" not in set(commercial.data.smiles[commercial.molecules])
    assert sets["exp"].excluded == 0 and len(sets["exp"].molecules) == 6


def test_error_metrics() -> None:
    predicted = np.array([[100.0, 90.0], [80.0, 70.0], [50.0, 0.0]])
    target = np.array([[101.0, 92.0], [77.0, np.nan], [np.nan, np.nan]])
    labels = np.array(["C-H", "C-C", "C-C"], dtype=object)
    m = error_metrics(predicted, target, labels, "test")
    assert m["test/n"] == 2
    assert m["test/mae"] == pytest.approx(2.0) and m["test/rmse"] == pytest.approx(np.sqrt(5.0))
    assert m["test/bdfe_mae"] == pytest.approx(2.0)
    assert m["test/mae/C-H"] == pytest.approx(1.0) and m["test/mae/C-C"] == pytest.approx(3.0)
    flagged = error_metrics(predicted, target, None, "t", np.array([True, False, False]))
    assert flagged["t/n_flagged"] == 1 and flagged["t/mae_in_domain"] == pytest.approx(3.0)
    assert error_metrics(predicted, np.full((3, 2), np.nan), None, "x") == {"x/n": 0.0}
