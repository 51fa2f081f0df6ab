"""The spectrum index: encoding, build/append/merge round trips, memory mapping, refusals, and atomic writes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

import nextims.search.index as index_module
from nextims import PROJECT_ROOT
from nextims.errors import DropReport, InputError, RecordError
from nextims.search.index import (FORMAT, append_spectra, build_index, entry_mass, merge_indexes, open_index)
from nextims.search.scoring import weighted_unit
from nextims.spectrum import Spectrum, bin_spectrum


def spectrum(name: str, peaks: dict[float, float], **meta) -> Spectrum:
    return Spectrum(np.array(list(peaks)), np.array(list(peaks.values())), {"name": name, **meta})


def random_spectra(n: int, seed: int = 0, max_mz: int = 200) -> list[Spectrum]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        mz = rng.choice(np.arange(1, max_mz + 1), rng.integers(1, 12), replace=False).astype(float)
        out.append(spectrum(f"r{i}", dict(zip(mz, rng.random(len(mz)) * 900 + 1)), mw=float(rng.integers(30, 300))))
    return out


def test_entries_are_binned_cut_relative_and_weighted(tmp_path: Path) -> None:
    spectra = [
        # 39.8 and 40.2 share bin 40 (summed: 60 + 40 = 100, the base peak); 0.3 rounds to bin 0 and 120 lies
        # above max_mz=100: both left out
        spectrum("a", {0.3: 500, 39.8: 60, 40.2: 40, 50: 25, 120: 999}, smiles="CCO", mw=99, inchikey="K-A"),
        spectrum("b", {10: 4, 20: 1}, mw=88.4, formula="C6H16", source="from metadata"),
        spectrum("c", {5: 1}, inchi="InChI=1S/CH4/h1H4"),
        spectrum("d", {7: 2}),
    ]
    path = tmp_path / "lib.h5"
    assert build_index(path, spectra, max_mz=100) == 4
    index = open_index(path)
    assert len(index) == 4 and index.max_mz == 100 and isinstance(index.mz, np.memmap)
    assert index.indptr.tolist() == [0, 2, 4, 5, 6]
    assert index.mz.tolist() == [40, 50, 10, 20, 5, 7]
    np.testing.assert_allclose(index.intensity[:4], [1.0, 0.25, 1.0, 0.25])
    # weights: sqrt(I) * m/z unit-normalised: (40, 0.5 * 50) / sqrt(40^2 + 25^2)
    np.testing.assert_allclose(index.weight[:2], np.array([40, 25]) / np.hypot(40, 25), rtol=1e-6)
    expected = weighted_unit(bin_spectrum(spectrum("b", {10: 4, 20: 1}), 100))
    np.testing.assert_allclose(index.dense_weights(1, 2)[0], expected, atol=1e-7)
    # masses: the structure's (CCO: 46, not its MW 99), the MW field (88.4 -> 88), an InChI's (CH4: 16), unknown
    assert index.mass.tolist() == [46, 88, 16, -1]
    assert index.column("name").tolist() == ["a", "b", "c", "d"]
    assert index.column("inchikey").tolist() == ["K-A", "", "", ""]
    assert index.column("source").tolist() == ["", "from metadata", "", ""]
    assert index.columns_at(np.array([3, 1, 3]))["formula"] == {1: "C6H16", 3: ""}
    back = index.spectrum(0)
    assert back.mz.tolist() == [40, 50] and back.get("smiles") == "CCO" and back.get("mw") == 46


def test_entry_mass_falls_back_from_a_bad_structure_to_the_mw_field() -> None:
    assert entry_mass(spectrum("x", {5: 1}, smiles="C1CC((", mw=72.0)) == 72
    assert entry_mass(spectrum("x", {5: 1}, smiles="CCO", mw=72.0), from_structure=False) == 72
    assert entry_mass(spectrum("x", {5: 1}, mw="n/a")) == -1


def test_spectra_without_peaks_in_range_are_counted_or_refused(tmp_path: Path) -> None:
    spectra = [spectrum("ok", {10: 1}), spectrum("heavy", {150: 1})]
    report = DropReport()
    assert build_index(tmp_path / "a.h5", spectra, source="s", max_mz=100, report=report) == 1
    assert dict(report.dropped) == {"no_peaks_in_range": 1} and report.examples["no_peaks_in_range"][0].startswith("heavy")
    with pytest.raises(RecordError, match="heavy.*no_peaks_in_range"):
        build_index(tmp_path / "b.h5", spectra, max_mz=100)
    assert not (tmp_path / "b.h5").exists()


def test_chunked_build_equals_one_chunk_and_append_and_merge_keep_order(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    spectra = random_spectra(23)
    build_index(tmp_path / "whole.h5", spectra, source="experimental:x.msp", max_mz=200)
    monkeypatch.setattr(index_module, "WRITE_CHUNK", 3)
    monkeypatch.setattr(index_module, "COPY_ROWS", 4)
    monkeypatch.setattr(index_module, "COPY_PEAKS", 5)
    build_index(tmp_path / "chunked.h5", spectra[:10], source="experimental:x.msp", max_mz=200)
    assert append_spectra(tmp_path / "chunked.h5", spectra[10:], source="experimental:x.msp") == 13
    whole, chunked = open_index(tmp_path / "whole.h5"), open_index(tmp_path / "chunked.h5")
    for name in ("indptr", "mz", "intensity", "weight", "mass"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(chunked, name))
    assert chunked.column("name").tolist() == [f"r{i}" for i in range(23)]
    build_index(tmp_path / "small.h5", [spectrum("p", {3: 1, 4: 2})], source="predicted:student", max_mz=50)
    assert merge_indexes([tmp_path / "small.h5", tmp_path / "whole.h5"], tmp_path / "merged.h5") == 24
    merged = open_index(tmp_path / "merged.h5")
    assert merged.max_mz == 200 and merged.column("name").tolist() == ["p"] + [f"r{i}" for i in range(23)]
    assert merged.column("source").tolist() == ["predicted:student"] + ["experimental:x.msp"] * 23
    np.testing.assert_array_equal(merged.dense_weights(1, 24), whole.dense_weights(0, 23))
    np.testing.assert_array_equal(merged.mz[2:], whole.mz)
    assert merged.indptr.tolist() == [0, 2] + (whole.indptr[1:] + 2).tolist()


def test_a_file_that_is_not_an_index_of_this_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such"):
        open_index(tmp_path / "missing.h5")
    text = tmp_path / "text.h5"
    text.write_text("Name: x\n")
    with pytest.raises(InputError, match=r"text\.h5: not a nextims spectrum index \(not an HDF5 file"):
        open_index(text)
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(InputError, match=r"plain\.h5: not a nextims spectrum index \(it has no format attribute"):
        open_index(plain)
    good = tmp_path / "good.h5"
    build_index(good, random_spectra(3), max_mz=200)
    for attribute, value, message in (("format", "nextims-feature-cache", "its format attribute is 'nextims-feature-cache'"),
                                      ("version", 2, "version 2, this nextims reads version 1"),
                                      ("complete", False, "written incompletely")):
        bad = tmp_path / f"bad_{attribute}.h5"
        bad.write_bytes(good.read_bytes())
        with h5py.File(bad, "r+") as f:
            f.attrs[attribute] = value
        with pytest.raises(InputError, match=f"bad_{attribute}.h5: .*{message}"):
            open_index(bad)
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(good.read_bytes())
    with h5py.File(damaged, "r+") as f:
        del f["smiles"]
    with pytest.raises(InputError, match="damaged.h5: damaged spectrum index .missing smiles"):
        open_index(damaged)


def test_a_failed_build_or_append_leaves_no_file_and_the_old_index_intact(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "WRITE_CHUNK", 2)

    def failing():
        yield from random_spectra(5)
        raise RuntimeError("reader failed")

    with pytest.raises(RuntimeError, match="reader failed"):
        build_index(tmp_path / "lib.h5", failing(), max_mz=200)
    assert list(tmp_path.iterdir()) == []
    build_index(tmp_path / "lib.h5", random_spectra(4), max_mz=200)
    before = (tmp_path / "lib.h5").read_bytes()
    with pytest.raises(RuntimeError, match="reader failed"):
        append_spectra(tmp_path / "lib.h5", failing())
    assert (tmp_path / "lib.h5").read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["lib.h5"]


def test_a_killed_build_leaves_nothing_open_index_accepts(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import os, signal
        import numpy as np
        import nextims.search.index as index
        from nextims.spectrum import Spectrum
        index.WRITE_CHUNK = 2
        def spectra():
            for i in range(100):
                if i == 7:
                    os.kill(os.getpid(), signal.SIGKILL)
                yield Spectrum(np.array([10.0 + i]), np.array([1.0]), {{"name": str(i)}})
        index.build_index({str(tmp_path / 'lib.h5')!r}, spectra(), max_mz=200)
    """)
    killed = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=120)
    assert killed.returncode == -9, killed.stderr[-2000:]
    left = list(tmp_path.iterdir())
    assert not (tmp_path / "lib.h5").exists() and left  # the temporaries of the killed writer
    for path in left:
        with pytest.raises(InputError):
            open_index(path)
    build_index(tmp_path / "lib.h5", random_spectra(2), max_mz=200)  # the next build removes them
    assert [p.name for p in tmp_path.iterdir()] == ["lib.h5"] and open_index(tmp_path / "lib.h5").attrs["format"] == FORMAT
