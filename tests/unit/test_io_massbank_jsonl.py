"""Tests for the MassBank EI JSON Lines reader, on real MassBank records."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
from pathlib import Path

import numpy as np
import pytest

from nextims.errors import DropReport, RecordError
from nextims.io.massbank_jsonl import read_massbank_jsonl

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "io" / "massbank_ei_sample.jsonl"
VICTIM = "MSBNK-Fac_Eng_Univ_Tokyo-JP001013"  # the record the malformed-input tests spoil


def records() -> list[dict]:
    return [json.loads(line) for line in FIXTURE.read_text().splitlines()]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def spoiled(tmp_path: Path, edit) -> Path:
    """The fixture with VICTIM's record edited by edit(record) (a dict, changed in place)."""
    lines = []
    for record in records():
        if record["accession"] == VICTIM:
            edit(record)
        lines.append(json.dumps(record))
    return write_lines(tmp_path / "spoiled.jsonl", lines)


def test_reads_real_records() -> None:
    report = DropReport()
    spectra = list(read_massbank_jsonl(FIXTURE, report))
    assert [s.id for s in spectra] == [r["accession"] for r in records()]
    assert report.kept == 5 and report.total_dropped == 0
    for spectrum, record in zip(spectra, records()):
        peaks = np.array(record["peaks"])
        np.testing.assert_array_equal(spectrum.mz, peaks[:, 0])
        np.testing.assert_array_equal(spectrum.intensities, peaks[:, 1])
        assert spectrum.get("name") == record["name"]
        assert spectrum.get("smiles") == record["smiles"]
        assert spectrum.get("derivatized") == record["derivatized_flag"]
        assert spectrum.get("source") == FIXTURE.name
        assert "peaks" not in spectrum.metadata and "derivatized_flag" not in spectrum.metadata
    by_id = {s.id: s for s in spectra}
    benzoate = by_id["MSBNK-Fac_Eng_Univ_Tokyo-JP000036"]
    assert benzoate.get("synonyms") == ["BENZOIC ACID METHYL ESTER"]
    assert benzoate.get("ionization_energy_ev") == 70.0
    assert benzoate.get("inchikey") == "QPJVMBTYPHYUOC-UHFFFAOYSA-N"
    assert benzoate.get("license") == "CC BY-NC-SA"
    succinic = by_id["MSBNK-MSSJ-MSJ00728"]
    assert succinic.get("smiles_is_underivatized_parent") is True
    assert succinic.get("ms_type") == "MS2" and succinic.get("ionization_energy_ev") is None
    uv329 = by_id["MSBNK-NILU-NL0035"]
    assert uv329.get("inchikey") is None and uv329.get("copyright") == "MILK, NILU"
    assert uv329.mz[-1] == pytest.approx(323.1991)


@pytest.mark.parametrize(("edit", "reason"), [
    (lambda r: r.update(peaks=[]), "no_peaks"),
    (lambda r: r.pop("peaks"), "no_peaks"),
    (lambda r: r["peaks"][2].__setitem__(1, -3.4), "negative_intensity"),
    (lambda r: r["peaks"][2].__setitem__(1, float("nan")), "nan_value"),
    (lambda r: r["peaks"][0].__setitem__(0, -5.0), "mz_out_of_range"),
    (lambda r: r["peaks"][-1].__setitem__(0, 1e7), "mz_out_of_range"),
    (lambda r: r["peaks"][1].append(7.0), "malformed_peaks"),
    (lambda r: r["peaks"][1].__setitem__(1, None), "nan_value"),
    (lambda r: r["peaks"][1].__setitem__(1, "abc"), "malformed_peaks"),
])
def test_bad_peaks_are_dropped_with_reason(tmp_path: Path, edit, reason: str) -> None:
    path = spoiled(tmp_path, edit)
    report = DropReport()
    kept = [s.id for s in read_massbank_jsonl(path, report)]
    assert VICTIM not in kept and len(kept) == 4
    assert report.kept == 4 and dict(report.dropped) == {reason: 1}
    assert report.examples[reason][0].startswith(VICTIM)
    with pytest.raises(RecordError) as info:
        list(read_massbank_jsonl(path))
    assert (info.value.record, info.value.reason) == (VICTIM, reason)


def test_bad_json_is_malformed_json(tmp_path: Path) -> None:
    lines = FIXTURE.read_text().splitlines()
    lines[2] = lines[2].replace('"name":', '"name"', 1)
    lines.insert(1, "[1, 2]")
    path = write_lines(tmp_path / "bad.jsonl", lines)
    report = DropReport()
    assert len(list(read_massbank_jsonl(path, report))) == 4
    assert dict(report.dropped) == {"malformed_json": 2}
    assert VICTIM in "".join(report.examples["malformed_json"])
    with pytest.raises(RecordError) as info:
        list(read_massbank_jsonl(path))
    assert info.value.reason == "malformed_json" and info.value.record == "bad.jsonl:2"


def test_cut_last_line_is_truncated(tmp_path: Path) -> None:
    text = FIXTURE.read_text()
    path = tmp_path / "cut.jsonl"
    path.write_text(text[: len(text) - 200])
    report = DropReport()
    assert len(list(read_massbank_jsonl(path, report))) == 4
    assert dict(report.dropped) == {"truncated": 1}
    with pytest.raises(RecordError) as info:
        list(read_massbank_jsonl(path))
    assert (info.value.record, info.value.reason) == (records()[-1]["accession"], "truncated")


def test_last_line_without_newline_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "nonl.jsonl"
    path.write_text(FIXTURE.read_text().rstrip("\n"))
    assert len(list(read_massbank_jsonl(path))) == 5


def test_latin1_byte_drops_only_its_record(tmp_path: Path) -> None:
    data = FIXTURE.read_bytes().replace(b'"IODO METHANE"', b'"IODO M\xc9THANE"')
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(data)
    report = DropReport()
    kept = [s.id for s in read_massbank_jsonl(path, report)]
    assert len(kept) == 4 and VICTIM not in kept
    assert dict(report.dropped) == {"encoding": 1}
    with pytest.raises(RecordError) as info:
        list(read_massbank_jsonl(path))
    assert (info.value.record, info.value.reason) == (VICTIM, "encoding")
    names = [s.get("name") for s in read_massbank_jsonl(path, encoding="latin-1")]
    assert "IODO M\u00c9THANE" in names


@pytest.mark.parametrize(("suffix", "compress"), [(".gz", gzip.compress), (".xz", lzma.compress),
                                                   (".bz2", bz2.compress)])
def test_compressed_input_reads_the_same(tmp_path: Path, suffix: str, compress) -> None:
    path = tmp_path / f"sample.jsonl{suffix}"
    path.write_bytes(compress(FIXTURE.read_bytes()))
    plain = list(read_massbank_jsonl(FIXTURE))
    packed = list(read_massbank_jsonl(path))
    assert [s.id for s in packed] == [s.id for s in plain]
    for a, b in zip(packed, plain):
        np.testing.assert_array_equal(a.intensities, b.intensities)


@pytest.mark.parametrize("keep", [0.4, 0.9])
def test_a_cut_xz_file_is_reported_with_the_records_read_before_the_cut(tmp_path: Path, keep: float) -> None:
    packed = lzma.compress(FIXTURE.read_bytes() * 20)
    path = tmp_path / "cut.jsonl.xz"
    path.write_bytes(packed[: int(len(packed) * keep)])
    report = DropReport()
    read = list(read_massbank_jsonl(path, report))
    assert 0 < len(read) < 20 * len(records())
    assert report.dropped["truncated_file"] == 1
    assert f"{len(read)} records read before the cut" in report.examples["truncated_file"][0]
    with pytest.raises(RecordError, match="truncated_file"):
        list(read_massbank_jsonl(path))


def test_a_load_with_an_energy_as_text_keeps_or_drops_that_record_only(tmp_path: Path) -> None:
    from nextims.data.spectra import load_spectra
    lines = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    lines[0]["ionization_energy_ev"], lines[1]["ionization_energy_ev"] = "70 eV", "seventy"
    path = write_lines(tmp_path / "energies.jsonl", [json.dumps(r) for r in lines])
    data = load_spectra({"path": str(path), "format": "massbank_jsonl", "max_mz": 500, "filters": {},
                         "split": {"method": "hash"}})
    assert data.report.dropped["bad_energy"] == 1
    assert data.report.examples["bad_energy"] == [f"{lines[1]['accession']}: ionization_energy_ev is 'seventy', "
                                                  "not a number of eV"]
    assert lines[0]["accession"] in {r.id for r in data.records}
