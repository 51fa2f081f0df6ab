"""Tests for the MassBank record reader, on real MassBank-data records."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from nextims.errors import DropReport, RecordError
from nextims.io.massbank_record import parse_massbank_record, read_massbank_record, read_massbank_records
from nextims.io.text import parse_energy

DATA = Path(__file__).resolve().parents[1] / "data" / "io"
RECORDS = DATA / "massbank_records"
IODO = RECORDS / "Fac_Eng_Univ_Tokyo" / "MSBNK-Fac_Eng_Univ_Tokyo-JP001013.txt"
VICTIM = "MSBNK-Fac_Eng_Univ_Tokyo-JP001013"


def copy_with(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the record directory with old replaced by new in the iodomethane record."""
    root = tmp_path / "records"
    shutil.copytree(RECORDS, root)
    target = root / IODO.relative_to(RECORDS)
    text = target.read_text()
    assert old in text
    target.write_text(text.replace(old, new))
    return root


def test_directory_is_read_recursively_and_matches_the_jsonl_export() -> None:
    report = DropReport()
    spectra = list(read_massbank_records(RECORDS, report))
    assert report.kept == 4 and report.total_dropped == 0
    exported = {r["accession"]: r for r in map(json.loads, (DATA / "massbank_ei_sample.jsonl").open())}
    assert {s.id for s in spectra} <= set(exported)
    for spectrum in spectra:
        record = exported[spectrum.id]
        peaks = np.array(record["peaks"])
        np.testing.assert_allclose(spectrum.mz, peaks[:, 0])
        np.testing.assert_allclose(spectrum.intensities, peaks[:, 1])
        for key in ("name", "synonyms", "smiles", "inchi", "inchikey", "formula", "exact_mass", "license",
                    "copyright", "contributor", "ms_type", "ion_mode", "ionization_energy_ev",
                    "ionization_energy_raw", "instrument", "instrument_type", "title", "splash"):
            assert spectrum.get(key) == record[key], key


def test_single_file_and_other_fields() -> None:
    (spectrum,) = read_massbank_record(IODO)
    assert spectrum.id == VICTIM and spectrum.get("source") == IODO.name
    assert spectrum.get("synonyms") == ["METHYL IODIDE"]
    assert spectrum.get("ch$link:comptox") == "DTXSID0024187"
    assert spectrum.get("ms$focused_ion:ion_type") == "[M]+*"
    assert "ch$compound_class" not in spectrum.metadata  # N/A values are left out
    np.testing.assert_array_equal(spectrum.intensities[:2], [18.41, 2.5])  # absolute, not rel.int.


def test_list_of_paths() -> None:
    paths = sorted(RECORDS.rglob("*.txt"))[:2]
    assert len(list(read_massbank_records(paths))) == 2


def test_annotation_block_ionization_and_energy_variants() -> None:
    text = IODO.read_text().replace(
        "AC$MASS_SPECTROMETRY: IONIZATION_ENERGY 70 eV\n",
        "AC$MASS_SPECTROMETRY: IONIZATION EI\nAC$MASS_SPECTROMETRY: IONIZATION_ENERGY 70eV\n",
    ).replace(
        "PK$NUM_PEAK: 7\n",
        "PK$ANNOTATION: m/z tentative_formula formula_count mass error(ppm)\n  142 CH3I+ 1 141.9274 0.1\n"
        "  127 I+ 1 126.9039 0.2\nPK$NUM_PEAK: 7\n",
    ).rstrip("/\n")
    spectrum = parse_massbank_record(text)
    assert len(spectrum) == 7 and spectrum.mz[0] == 127
    assert spectrum.get("ac$mass_spectrometry:ionization") == "EI"
    assert spectrum.get("ionization_energy_ev") == 70.0


@pytest.mark.parametrize(("raw", "value"), [
    ("70 eV", 70.0), ("70eV", 70.0), ("70.5 EV", 70.5), ("20", 20.0), ("N/A", None), ("1.2 kV", None),
    (None, None), ("", None),
])
def test_parse_energy(raw: str | None, value: float | None) -> None:
    assert parse_energy(raw) == value


@pytest.mark.parametrize(("old", "new", "reason"), [
    ("  128 2.5 25", "  128 -2.5 25", "negative_intensity"),
    ("  128 2.5 25", "  128 nan 25", "nan_value"),
    ("  127 18.41 184", "  -5 18.41 184", "mz_out_of_range"),
    ("  143 1.19 12", "  10000000 1.19 12", "mz_out_of_range"),
    ("  128 2.5 25", "  128 x 25", "malformed_peaks"),
    ("  128 2.5 25", "  128", "malformed_peaks"),
    ("PK$NUM_PEAK: 7", "PK$NUM_PEAK: 6", "peak_count_mismatch"),
    ("PK$NUM_PEAK: 7", "PK$NUM_PEAK: 8", "truncated"),
    ("PK$NUM_PEAK: 7", "PK$NUM_PEAK: seven", "malformed_record"),
    ("PK$NUM_PEAK: 7\nPK$PEAK: m/z int. rel.int.\n  127 18.41 184\n  128 2.5 25\n  139 3.43 34\n"
     "  140 3.31 33\n  141 13.86 139\n  142 99.99 999\n  143 1.19 12\n", "PK$NUM_PEAK: 0\nPK$PEAK: N/A\n",
     "no_peaks"),
    ("//\n", "", "truncated"),
])
def test_bad_records_are_dropped_with_reason(tmp_path: Path, old: str, new: str, reason: str) -> None:
    root = copy_with(tmp_path, old, new)
    report = DropReport()
    kept = [s.id for s in read_massbank_records(root, report)]
    assert len(kept) == 3 and VICTIM not in kept
    assert dict(report.dropped) == {reason: 1}
    with pytest.raises(RecordError) as info:
        list(read_massbank_records(root))
    assert (info.value.record, info.value.reason) == (VICTIM, reason)


def test_latin1_byte_drops_only_its_record(tmp_path: Path) -> None:
    root = tmp_path / "records"
    shutil.copytree(RECORDS, root)
    target = root / IODO.relative_to(RECORDS)
    target.write_bytes(target.read_bytes().replace(b"METHYL IODIDE", b"M\xc9THYL IODIDE"))
    report = DropReport()
    assert len(list(read_massbank_records(root, report))) == 3
    assert dict(report.dropped) == {"encoding": 1}
    with pytest.raises(RecordError) as info:
        list(read_massbank_records(root))
    assert (info.value.record, info.value.reason) == (VICTIM, "encoding")


def test_compressed_record_and_two_records_in_one_file(tmp_path: Path) -> None:
    path = tmp_path / "two.txt.gz"
    path.write_bytes(gzip.compress(IODO.read_bytes() + IODO.read_bytes().replace(b"JP001013", b"JP999999")))
    ids = [s.id for s in read_massbank_record(path)]
    assert ids == [VICTIM, "MSBNK-Fac_Eng_Univ_Tokyo-JP999999"]
