"""Tests for the NEIMS-style SDF reader."""

from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path

import numpy as np
import pytest

from nextims.errors import DropReport, RecordError
from nextims.io.sdf import read_sdf

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "io" / "neims_sample.sdf"
VICTIM = "2"  # ID DB NO of the iodomethane record, which the malformed-input tests spoil
OTHERS = ["1", "3,6-Dimethyl-2,5-piperazinedione"]


def spoiled(tmp_path: Path, old: str, new: str) -> Path:
    text = FIXTURE.read_text()
    assert old in text
    path = tmp_path / "spoiled.sdf"
    path.write_text(text.replace(old, new, 1))
    return path


def test_reads_neims_records() -> None:
    report = DropReport()
    iodo, benzoate, piperazine = read_sdf(FIXTURE, report)
    assert report.kept == 3
    assert iodo.id == "2" and iodo.get("name") == "Iodomethane"  # MSLIB mol block without V2000
    assert iodo.get("smiles") == "CI" and iodo.get("nist no") == "900002"
    assert iodo.get("synonyms") == ["Methyl iodide", "Methane, iodo-"]
    assert iodo.get("formula") == "CH3I" and iodo.get("mw") == 142.0 and iodo.get("exact_mass") == 141.92794
    np.testing.assert_array_equal(iodo.mz, [127, 128, 139, 140, 141, 142, 143])
    np.testing.assert_array_equal(iodo.intensities, [184, 25, 34, 33, 139, 999, 12])
    assert benzoate.get("formula") == "C8H8O2" and benzoate.get("casno") == "93-58-3"
    assert benzoate.get("smiles") == "COC(=O)c1ccccc1"
    assert benzoate.get("inchikey") == "QPJVMBTYPHYUOC-UHFFFAOYSA-N"  # computed: the record has none
    assert piperazine.id == "3,6-Dimethyl-2,5-piperazinedione"  # blank mol title, no ID: the NAME
    assert piperazine.get("smiles") == "CC1NC(=O)C(C)NC1=O" and piperazine.get("synonyms") == []
    assert piperazine.get("inchikey") == "WWISPHBAYBECQZ-UHFFFAOYSA-N"


@pytest.mark.parametrize(("old", "new", "reason"), [
    ("128 25", "128 -25", "negative_intensity"),
    ("128 25", "128 nan", "nan_value"),
    ("127 184", "-5 184", "mz_out_of_range"),
    ("143 12", "10000000 12", "mz_out_of_range"),
    ("128 25", "128 25 7", "malformed_peaks"),
    (">  <MASS SPECTRAL PEAKS>", ">  <PEAKS>", "no_peaks"),
    ("   20.0000    0.0000    0.0000 I ", "   20.0000    0.0000    0.0000 Xq", "bad_structure"),
    ("  1  2  1  0  0  0  0\nM  END", "  1  5  1  0  0  0  0\nM  END", "bad_structure"),
    ("  1  2  1  0  0  0  0\nM  END", "  1  2  1  0  0  0  0\n", "bad_structure"),
])
def test_bad_records_are_dropped_with_reason(tmp_path: Path, old: str, new: str, reason: str) -> None:
    path = spoiled(tmp_path, old, new)
    report = DropReport()
    assert [s.id for s in read_sdf(path, report)] == OTHERS
    assert dict(report.dropped) == {reason: 1}
    with pytest.raises(RecordError) as info:
        list(read_sdf(path))
    assert info.value.reason == reason
    assert info.value.record in (VICTIM, "IODO METHANE")


@pytest.mark.parametrize(("cut", "record"), [(6, "3,6-Dimethyl-2,5-piperazinedione"),
                                             (40, "3,6-Dimethyl-2,5-piperazinedione"),
                                             (400, "cut.sdf:103")])  # cut in the mol block: no name yet
def test_file_without_final_terminator_is_truncated(tmp_path: Path, cut: int, record: str) -> None:
    text = FIXTURE.read_text()
    path = tmp_path / "cut.sdf"
    path.write_text(text[: len(text) - cut])
    report = DropReport()
    assert len(list(read_sdf(path, report))) == 2
    assert dict(report.dropped) == {"truncated": 1}
    with pytest.raises(RecordError) as info:
        list(read_sdf(path))
    assert (info.value.record, info.value.reason) == (record, "truncated")


def test_latin1_byte_drops_only_its_record(tmp_path: Path) -> None:
    path = tmp_path / "latin1.sdf"
    path.write_bytes(FIXTURE.read_bytes().replace(b"Methane, iodo-", b"M\xe9thane, iodo-"))
    report = DropReport()
    assert [s.id for s in read_sdf(path, report)] == OTHERS
    assert dict(report.dropped) == {"encoding": 1}
    with pytest.raises(RecordError) as info:
        list(read_sdf(path))
    assert (info.value.record, info.value.reason) == (VICTIM, "encoding")


@pytest.mark.parametrize(("suffix", "compress"), [(".gz", gzip.compress), (".xz", lzma.compress),
                                                   (".bz2", bz2.compress)])
def test_compressed_input(tmp_path: Path, suffix: str, compress) -> None:
    path = tmp_path / f"lib.sdf{suffix}"
    path.write_bytes(compress(FIXTURE.read_bytes()))
    assert [s.id for s in read_sdf(path)] == [VICTIM, *OTHERS]
