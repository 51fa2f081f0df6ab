"""Binning, the drop report, and the dataset filters with their reasons."""

from __future__ import annotations

import numpy as np
import pytest

from nextims.data.spectra import filter_record
from nextims.errors import DropReport, RecordError, handle
from nextims.spectrum import Spectrum, bin_spectrum, validate_peaks

FILTERS = {"drop_parent_of_derivative": True, "drop_isotope_labeled": True, "drop_ms2": True, "min_energy_ev": 60,
           "max_energy_ev": 80, "keep_unspecified_energy": True, "drop_charged": True, "drop_mixtures": True,
           "max_molecule_mass": 500, "min_peaks": 1}


def spec(smiles: str = "CCO", peaks: tuple = ((31.0, 100.0), (45.0, 50.0), (46.02, 20.0)), **meta) -> Spectrum:
    """A small spectrum record."""
    mz, intensity = zip(*peaks)
    return Spectrum(np.array(mz), np.array(intensity), {"id": "R1", "smiles": smiles, **meta})


def test_bin_spectrum_rounds_sums_scales_and_cuts() -> None:
    s = Spectrum(np.array([10.4, 9.6, 20.0, 700.0]), np.array([1.0, 1.0, 4.0, 9.0]))
    b = bin_spectrum(s, max_mz=100)
    assert b.shape == (101,)
    assert b[10] == pytest.approx(0.5) and b[20] == pytest.approx(1.0) and b.sum() == pytest.approx(1.5)


def test_validate_peaks_reasons() -> None:
    cases = {"no_peaks": ([], []), "nan_value": ([1.0], [np.nan]), "negative_intensity": ([10.0], [-1.0]),
             "mz_out_of_range": ([-5.0], [1.0])}
    for reason, (mz, inten) in cases.items():
        with pytest.raises(RecordError) as err:
            validate_peaks(np.array(mz), np.array(inten), "X1")
        assert err.value.reason == reason and "X1" in str(err.value)


def test_drop_report_counts_and_strict_mode() -> None:
    report = DropReport("t")
    handle(RecordError("a", "bad_smiles", "C1CC"), report)
    handle(RecordError("b", "bad_smiles"), report)
    report.keep(3)
    assert report.to_dict()["dropped"] == {"bad_smiles": 2} and report.kept == 3
    assert "bad_smiles" in report.format() and "a: C1CC" in report.format()
    with pytest.raises(RecordError):
        handle(RecordError("c", "no_peaks"), None)


@pytest.mark.parametrize("record,reason", [
    (spec(ms_type="MS2"), "ms2"),
    (spec(isotope_labeled=True), "isotope_labeled"),
    (spec(smiles_is_underivatized_parent=True), "parent_of_derivative"),
    (spec(ionization_energy_ev=20.0), "ionization_energy"),
    (spec(ionization_energy_ev="20 eV"), "ionization_energy"),
    (spec(ionization_energy_ev="seventy"), "bad_energy"),
    (spec(ionization_energy_ev="70 V"), "bad_energy"),
    (spec(smiles=None), "no_structure"),
    (spec(smiles="C1CC(("), "bad_smiles"),
    (spec(smiles="CCO.Cl"), "mixture_or_salt"),
    (spec(smiles="C[N+](C)(C)C"), "charged"),
    (spec(smiles="C" * 40), "too_heavy"),
    (spec(peaks=((600.0, 5.0),)), "no_peaks_in_range"),
])
def test_filter_reasons(record: Spectrum, reason: str) -> None:
    with pytest.raises(RecordError) as err:
        filter_record(record, FILTERS, max_mz=500)
    assert err.value.reason == reason and err.value.record == "R1"


@pytest.mark.parametrize("energy", ["70 eV", "70eV", " 70 ", 70, 70.0])
def test_an_energy_given_as_text_is_read_as_ev(energy: object) -> None:
    assert filter_record(spec(ionization_energy_ev=energy), FILTERS, max_mz=500).energy_ev == 70.0


def test_filter_keeps_good_record_with_key_and_mass() -> None:
    kept = filter_record(spec(ionization_energy_ev=70.0), FILTERS, max_mz=500)
    assert kept.key == "LFQSCWFLJHTTHZ" and kept.mass == 46 and kept.smiles == "CCO"
    assert kept.spectrum[31] == pytest.approx(1.0) and kept.spectrum[46] == pytest.approx(0.2)


# ethanol's InChIKey and a well-formed key of another compound (methanol's)
ETHANOL_KEY, METHANOL_KEY = "LFQSCWFLJHTTHZ-UHFFFAOYSA-N", "OKKJLVBELUTLKV-UHFFFAOYSA-N"


@pytest.mark.parametrize("source, stated, key", [
    ("record", METHANOL_KEY, "OKKJLVBELUTLKV"),  # the library's identifier is taken as it states it
    ("record", " okkjlvbelutlkv-uhfffaoysa-n ", "OKKJLVBELUTLKV"),
    ("record", "not-a-key", "LFQSCWFLJHTTHZ"),  # malformed: computed from the structure
    ("record", None, "LFQSCWFLJHTTHZ"),
    ("structure", METHANOL_KEY, "LFQSCWFLJHTTHZ"),
    ("verify", ETHANOL_KEY, "LFQSCWFLJHTTHZ"),
    ("verify", None, "LFQSCWFLJHTTHZ"),
])
def test_the_compound_key_comes_from_where_filters_inchikey_says(source: str, stated: str | None, key: str) -> None:
    meta = {"inchikey": stated} if stated is not None else {}
    assert filter_record(spec(**meta), {**FILTERS, "inchikey": source}, max_mz=500).key == key


def test_verify_drops_a_record_whose_stated_inchikey_is_not_its_structures() -> None:
    with pytest.raises(RecordError) as err:
        filter_record(spec(inchikey=METHANOL_KEY), {**FILTERS, "inchikey": "verify"}, max_mz=500)
    assert err.value.reason == "inchikey_mismatch" and err.value.record == "R1"
    assert METHANOL_KEY in err.value.detail and ETHANOL_KEY in err.value.detail


def test_an_unknown_key_source_is_refused_before_any_record_is_read() -> None:
    from nextims.data.spectra import ChunkFilter
    from nextims.io.msp import FORMAT

    with pytest.raises(ValueError, match="data.filters.inchikey='nist'"):
        ChunkFilter(FORMAT, "utf-8", {**FILTERS, "inchikey": "nist"}, 500)
