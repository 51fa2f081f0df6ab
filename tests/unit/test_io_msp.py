"""Tests for the MSP reader and writer: lib2nist syntax, matchms round trips, malformed input."""

from __future__ import annotations

import gzip
import lzma
from pathlib import Path

import numpy as np
import pytest

from nextims.errors import DropReport, RecordError
from nextims.io.massbank_jsonl import read_massbank_jsonl
from nextims.io.msp import format_msp_record, parse_msp_record, read_msp, write_msp
from nextims.spectrum import Spectrum

DATA = Path(__file__).resolve().parents[1] / "data" / "io"
LIB2NIST = DATA / "lib2nist_sample.msp"
VICTIM = "900002"  # NIST# of the iodomethane record, which the malformed-input tests spoil


def massbank_spectra() -> list[Spectrum]:
    return list(read_massbank_jsonl(DATA / "massbank_ei_sample.jsonl"))


def scaled(spectrum: Spectrum) -> np.ndarray:
    return np.rint(spectrum.intensities / spectrum.intensities.max() * 999)


def spoiled(tmp_path: Path, old: str, new: str) -> Path:
    text = LIB2NIST.read_text()
    assert old in text
    path = tmp_path / "spoiled.msp"
    path.write_text(text.replace(old, new))
    return path


def test_reads_lib2nist_syntax() -> None:
    report = DropReport()
    benzoate, iodo, piperazine = read_msp(LIB2NIST, report)
    assert report.kept == 3
    assert benzoate.id == "1" and benzoate.get("name") == "METHYL BENZOATE"
    assert benzoate.get("synonyms") == ["BENZOIC ACID METHYL ESTER", "$:00in-source"]
    assert benzoate.get("cas#") == "93-58-3" and benzoate.get("nist#") == "900001"
    assert benzoate.get("mw") == 136.0 and benzoate.get("inchikey") == "QPJVMBTYPHYUOC-UHFFFAOYSA-N"
    assert benzoate.get("comments") == "MassBank MSBNK-Fac_Eng_Univ_Tokyo-JP000036"
    np.testing.assert_array_equal(benzoate.mz, [50, 51, 76, 77, 78, 105, 106, 135, 136, 137])
    np.testing.assert_array_equal(benzoate.intensities, [24, 71, 17, 482, 32, 999, 80, 19, 312, 27])
    assert iodo.id == VICTIM and iodo.get("name") == "IODO METHANE"  # upper-case keys, no DB#
    assert iodo.get("exact_mass") == 141.92794 and iodo.get("synonyms") == ["METHYL IODIDE"]
    np.testing.assert_array_equal(iodo.mz, [127, 128, 139, 140, 141, 142, 143])
    np.testing.assert_array_equal(iodo.intensities, [184, 25, 34, 33, 139, 999, 12])
    assert piperazine.id == "3,6-DIMETHYL-2,5-PIPERAZINEDIONE"  # no DB#/NIST#: the name
    assert piperazine.get("smiles") == "CC(N1)C(=O)NC(C)C(=O)1"
    assert piperazine.get("exact_mass") == 142.07423 and len(piperazine) == 7


def test_smiles_from_comments() -> None:
    text = 'Name: ethanol\nComments: "SMILES=CCO" "computed InChI=x"\nNum Peaks: 1\n31 999\n'
    assert parse_msp_record(text).get("smiles") == "CCO"


def test_write_then_read_keeps_real_spectra(tmp_path: Path) -> None:
    spectra = massbank_spectra()
    path = tmp_path / "out.msp"
    assert write_msp(spectra, path) == len(spectra)
    back = list(read_msp(path))
    assert [s.id for s in back] == [s.id for s in spectra]  # DB# carries the id
    for original, copy in zip(spectra, back):
        np.testing.assert_array_equal(copy.mz, original.mz)
        np.testing.assert_array_equal(copy.intensities, scaled(original))
        for key in ("name", "synonyms", "smiles", "formula"):
            assert copy.get(key) == original.get(key)
    assert "252.11311 999" in path.read_text()  # high-resolution m/z written exactly
    assert "\n105 999\n" in path.read_text()  # unit m/z written as integers
    assert [p.name for p in tmp_path.iterdir()] == ["out.msp"]  # no temporary file left


def test_matchms_reads_what_write_msp_wrote(tmp_path: Path) -> None:
    importing = pytest.importorskip("matchms.importing")
    spectra = massbank_spectra()
    path = tmp_path / "out.msp"
    write_msp(spectra, path)
    loaded = list(importing.load_from_msp(str(path)))
    assert len(loaded) == len(spectra)
    for original, theirs in zip(spectra, loaded):
        assert theirs.get("compound_name") == original.get("name")
        assert theirs.get("smiles") == original.get("smiles")
        assert theirs.get("formula") == original.get("formula")
        assert theirs.get("inchikey") == (original.get("inchikey") or None)
        np.testing.assert_allclose(theirs.peaks.mz, original.mz)
        np.testing.assert_allclose(theirs.peaks.intensities, scaled(original))


def test_reads_what_matchms_wrote(tmp_path: Path) -> None:
    matchms = pytest.importorskip("matchms")
    exporting = pytest.importorskip("matchms.exporting")
    theirs = [
        matchms.Spectrum(mz=s.mz, intensities=s.intensities / s.intensities.max(),
                         metadata={"compound_name": s.get("name"), "smiles": s.get("smiles"),
                                   "inchikey": s.get("inchikey") or "", "formula": s.get("formula"),
                                   "synonyms": s.get("synonyms")})
        for s in massbank_spectra()
    ]
    path = tmp_path / "matchms.msp"
    exporting.save_as_msp(theirs, str(path))
    report = DropReport()
    ours = list(read_msp(path, report))
    assert report.kept == len(theirs)
    for original, read in zip(massbank_spectra(), ours):
        assert read.get("name") == original.get("name")
        assert read.get("smiles") == original.get("smiles")
        assert read.get("formula") == original.get("formula")
        assert read.get("synonyms") == original.get("synonyms")
        np.testing.assert_allclose(read.mz, original.mz)
        np.testing.assert_allclose(read.intensities, original.intensities / original.intensities.max())


def test_write_scales_rounds_and_filters() -> None:
    spectrum = Spectrum(np.array([41.0, 43.5, 55.0, 57.0]), np.array([1000.0, 0.4, 100.0, 40.0]),
                        {"name": "x", "id": "x1", "mw": 72.0})
    text = format_msp_record(spectrum)
    assert "MW: 72\n" in text and "DB#: x1\n" in text
    assert text.endswith("Num Peaks: 3\n41 999\n55 100\n57 40\n")  # 43.5 rounds to 0
    assert format_msp_record(spectrum, 100.0, min_relative=0.05).endswith("Num Peaks: 2\n41 100\n55 10\n")


def test_write_mixes_integer_and_exact_mz() -> None:
    spectrum = Spectrum(np.array([41.0, 43.25, 57.0]), np.array([10.0, 5.0, 2.0]), {"name": "x"})
    assert format_msp_record(spectrum).endswith("Num Peaks: 3\n41 999\n43.25 500\n57 200\n")
    unit = Spectrum(np.arange(1.0, 4.0), np.array([1.0, 0.5, 0.0004]), {"name": "y"})
    assert format_msp_record(unit).endswith("Num Peaks: 2\n1 999\n2 500\n")


def test_failed_write_leaves_old_file(tmp_path: Path) -> None:
    path = tmp_path / "out.msp"
    path.write_text("old")
    empty = Spectrum(np.array([41.0]), np.array([0.0]), {"name": "nothing"})
    with pytest.raises(RecordError) as info:
        write_msp([massbank_spectra()[0], empty], path)
    assert (info.value.record, info.value.reason) == ("nothing", "no_peaks")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.msp"]


@pytest.mark.parametrize(("old", "new", "reason"), [
    ("128 25", "128 -25", "negative_intensity"),
    ("128 25", "128 nan", "nan_value"),
    ("127 184", "-5 184", "mz_out_of_range"),
    ("143 12", "10000000 12", "mz_out_of_range"),
    ("128 25", "128 xx", "malformed_peaks"),
    ("Num peaks: 7", "Num peaks: 8", "peak_count_mismatch"),
    ("Num peaks: 7", "Num peaks: many", "malformed_record"),
    ("Num peaks: 7", "Peaks: 7", "malformed_record"),
    ('Num peaks: 7\n127 184 "I+" 128 25 "HI+" 139 34\n140 33 141 139 "CH2I+" 142 999 "CH3I+"\n143 12',
     "Num peaks: 0", "no_peaks"),
])
def test_bad_records_are_dropped_with_reason(tmp_path: Path, old: str, new: str, reason: str) -> None:
    path = spoiled(tmp_path, old, new)
    report = DropReport()
    kept = [s.id for s in read_msp(path, report)]
    assert kept == ["1", "3,6-DIMETHYL-2,5-PIPERAZINEDIONE"]
    assert dict(report.dropped) == {reason: 1}
    with pytest.raises(RecordError) as info:
        list(read_msp(path))
    assert (info.value.record, info.value.reason) == (VICTIM, reason)


@pytest.mark.parametrize("cut", [20, 30, 120])
def test_file_ending_inside_last_record_is_truncated(tmp_path: Path, cut: int) -> None:
    text = LIB2NIST.read_text()
    path = tmp_path / "cut.msp"
    path.write_text(text[: len(text) - cut])
    report = DropReport()
    assert len(list(read_msp(path, report))) == 2
    assert dict(report.dropped) == {"truncated": 1}
    with pytest.raises(RecordError) as info:
        list(read_msp(path))
    assert (info.value.record, info.value.reason) == ("3,6-DIMETHYL-2,5-PIPERAZINEDIONE", "truncated")


def test_latin1_byte_drops_only_its_record(tmp_path: Path) -> None:
    path = tmp_path / "latin1.msp"
    path.write_bytes(LIB2NIST.read_bytes().replace(b"SYNON: METHYL IODIDE", b"SYNON: M\xc9THYL IODIDE"))
    report = DropReport()
    assert [s.id for s in read_msp(path, report)] == ["1", "3,6-DIMETHYL-2,5-PIPERAZINEDIONE"]
    assert dict(report.dropped) == {"encoding": 1}
    with pytest.raises(RecordError) as info:
        list(read_msp(path))
    assert (info.value.record, info.value.reason) == (VICTIM, "encoding")


@pytest.mark.parametrize(("suffix", "compress"), [(".gz", gzip.compress), (".xz", lzma.compress)])
def test_compressed_input(tmp_path: Path, suffix: str, compress) -> None:
    path = tmp_path / f"lib.msp{suffix}"
    path.write_bytes(compress(LIB2NIST.read_bytes()))
    assert [s.id for s in read_msp(path)] == ["1", VICTIM, "3,6-DIMETHYL-2,5-PIPERAZINEDIONE"]


def test_a_blank_line_inside_a_peak_list_does_not_split_the_record(tmp_path: Path) -> None:
    path = spoiled(tmp_path, '140 33 141 139 "CH2I+"', '140 33 141 139 "CH2I+"\n\n')
    report = DropReport()
    spectra = list(read_msp(path, report))
    assert [s.id for s in spectra] == ["1", VICTIM, "3,6-DIMETHYL-2,5-PIPERAZINEDIONE"]
    assert report.kept == 3 and not report.dropped
    assert spectra[1].mz.tolist() == [127, 128, 139, 140, 141, 142, 143]


def test_numbers_after_a_complete_record_stay_a_record_of_their_own(tmp_path: Path) -> None:
    path = spoiled(tmp_path, "143 12\n", "143 12\n\n77 5\n")
    report = DropReport()
    assert len(list(read_msp(path, report))) == 3
    assert dict(report.dropped) == {"malformed_record": 1}


def test_an_identity_field_given_twice_with_two_values_drops_the_record(tmp_path: Path) -> None:
    path = spoiled(tmp_path, "FORMULA: CH3I\n", "FORMULA: CH3I\nFormula: CH3Br\n")
    report = DropReport()
    assert [s.id for s in read_msp(path, report)] == ["1", "3,6-DIMETHYL-2,5-PIPERAZINEDIONE"]
    assert report.examples["conflicting_field"] == [f"{VICTIM}: Formula given twice: 'CH3I' and 'CH3Br'"]
    path = spoiled(tmp_path, "SMILES: CC(N1)", "SMILES: CCO\nSMILES: CC(N1)")
    with pytest.raises(RecordError, match="SMILES given twice: 'CCO' and 'CC"):
        list(read_msp(path))


def test_a_field_repeated_with_the_same_value_or_a_free_text_field_repeated_loses_nothing(tmp_path: Path) -> None:
    path = spoiled(tmp_path, "FORMULA: CH3I\n", "FORMULA: CH3I\nFormula: CH3I\nComments: first\nComments: second\n")
    iodo = list(read_msp(path))[1]
    assert iodo.get("formula") == "CH3I" and iodo.get("comments") == "first; second"


def test_an_msp_in_cp1252_is_read_with_the_encoding_option(tmp_path: Path) -> None:
    path = tmp_path / "windows.msp"
    path.write_bytes(LIB2NIST.read_text().replace("IODO METHANE", "IODO MÉTHANE – cp1252").encode("cp1252"))
    report = DropReport()
    assert len(list(read_msp(path, report))) == 2 and dict(report.dropped) == {"encoding": 1}
    names = [s.get("name") for s in read_msp(path, encoding="cp1252")]
    assert names[1] == "IODO MÉTHANE – cp1252"


def test_the_data_config_passes_the_encoding_to_the_reader(tmp_path: Path) -> None:
    from nextims.data.spectra import load_spectra
    path = tmp_path / "windows.msp"
    path.write_bytes(LIB2NIST.read_text().replace("METHYL BENZOATE", "MÉTHYL BENZOATE").encode("cp1252"))
    cfg = {"path": str(path), "format": "msp", "max_mz": 500, "filters": {}, "split": {"method": "hash"}}
    assert load_spectra(cfg).report.dropped["encoding"] == 1
    assert load_spectra({**cfg, "encoding": "cp1252"}).report.dropped["encoding"] == 0
