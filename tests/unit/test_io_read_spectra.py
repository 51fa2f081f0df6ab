"""Tests for nextims.io.read_spectra: format detection and dispatch."""

from __future__ import annotations

import gzip
import lzma
import shutil
from pathlib import Path

import pytest

import nextims.io as nio
from nextims.errors import DropReport

DATA = Path(__file__).resolve().parents[1] / "data" / "io"


@pytest.mark.parametrize(("name", "fmt", "count"), [
    ("massbank_ei_sample.jsonl", "massbank_jsonl", 5),
    ("lib2nist_sample.msp", "msp", 3),
    ("neims_sample.sdf", "sdf", 3),
    ("massbank_records", "massbank", 4),
])
def test_auto_detects_each_fixture(name: str, fmt: str, count: int) -> None:
    assert nio.detect_format(DATA / name) == fmt
    report = DropReport()
    spectra = list(nio.read_spectra(DATA / name, report=report))
    assert len(spectra) == count == report.kept
    assert [s.id for s in spectra] == [s.id for s in nio.read_spectra(DATA / name, fmt)]


def test_auto_looks_through_compression_and_reads_single_records(tmp_path: Path) -> None:
    (tmp_path / "lib.msp.gz").write_bytes(gzip.compress((DATA / "lib2nist_sample.msp").read_bytes()))
    (tmp_path / "lib.SD.xz").write_bytes(lzma.compress((DATA / "neims_sample.sdf").read_bytes()))
    record = next((DATA / "massbank_records").rglob("*JP001013.txt"))
    assert len(list(nio.read_spectra(tmp_path / "lib.msp.gz"))) == 3
    assert len(list(nio.read_spectra(tmp_path / "lib.SD.xz"))) == 3
    assert [s.id for s in nio.read_spectra(str(record))] == ["MSBNK-Fac_Eng_Univ_Tokyo-JP001013"]


def test_explicit_format_overrides_extension(tmp_path: Path) -> None:
    path = tmp_path / "library.dat"
    shutil.copy(DATA / "lib2nist_sample.msp", path)
    assert len(list(nio.read_spectra(path, "msp"))) == 3


def test_unknown_extension_or_format_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "library.mgf"
    path.write_text("BEGIN IONS\nEND IONS\n")
    with pytest.raises(ValueError, match="library.mgf"):
        nio.read_spectra(path)
    with pytest.raises(ValueError, match="library.mgf"):
        nio.read_spectra(path, fmt="mgf")


def test_write_msp_is_exported(tmp_path: Path) -> None:
    spectra = list(nio.read_spectra(DATA / "neims_sample.sdf"))
    out = tmp_path / "out.msp"
    assert nio.write_msp(spectra, out) == 3
    assert [s.get("smiles") for s in nio.read_spectra(out)] == [s.get("smiles") for s in spectra]
