"""`python -m nextims.search`: a small MSP of queries against a small MSP library and an index made from it (hits,
scores, the mass window, TSV and JSON output, mirror plots, bad queries, refused libraries), and predict writing
an index that holds the spectra its MSP output holds."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import nextims.search.index as index_module
from nextims import PROJECT_ROOT
from nextims.errors import InputError
from nextims.io.msp import read_msp
from nextims.search.cli import compose_search, run_search
from nextims.search.index import build_index, open_index
from nextims.search.scoring import binned_scores
from nextims.spectrum import bin_spectrum
from tests.conftest import DATA_DIR

FIXTURES = DATA_DIR / "search"
LIBRARY = FIXTURES / "library.msp"
QUERIES = FIXTURES / "queries.msp"


def search(*overrides: str) -> dict:
    """Compose conf/search.yaml with overrides and run it."""
    return run_search(compose_search(list(overrides)))


def read_tsv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))


@pytest.fixture
def library_index(tmp_path: Path) -> Path:
    """An index of the fixture library (its record without peaks skipped)."""
    path = tmp_path / "library.h5"
    build_index(path, read_msp(LIBRARY, report=index_module.DropReport()), source="experimental:library.msp")
    return path


def test_msp_library_and_its_index_give_the_right_hits_with_the_scoring_functions_scores(
        library_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    library = {s.get("name"): s for s in read_msp(LIBRARY, report=index_module.DropReport())}
    queries = {s.get("name"): s for s in read_msp(QUERIES, report=index_module.DropReport())}
    tables = {}
    for kind, path in (("msp", LIBRARY), ("index", library_index)):
        out = tmp_path / f"hits_{kind}.tsv"
        summary = search(f"queries={QUERIES}", f"library={path}", f"output={out}", "top_k=4")
        assert summary["queries"] == 3 and dict(summary["dropped"].dropped) == {"peak_count_mismatch": 1}
        tables[kind] = read_tsv(out)
        stderr = capsys.readouterr().err
        assert "peak_count_mismatch: broken query: 2 peaks, Num Peaks says 3" in stderr
    rows = tables["msp"]
    assert list(rows[0]) == ["query", "query_mass", "rank", "name", "inchikey", "smiles", "formula", "mass", "library",
                             "source", "match_factor", "reverse_match_factor", "cosine"]
    first = {r["query"]: r for r in rows if r["rank"] == "1"}
    assert {q: r["name"] for q, r in first.items()} == {"ethanol query": "ethanol", "toluene query": "toluene",
                                                       "benzene labelled 92": "benzene"}
    assert first["ethanol query"]["inchikey"] == "LFQSCWFLJHTTHZ-UHFFFAOYSA-N" and first["ethanol query"]["smiles"] == "CCO"
    assert first["ethanol query"]["query_mass"] == "46" and first["toluene query"]["query_mass"] == "92"  # MW; SMILES
    assert {r["source"] for r in rows} == {"experimental:library.msp"}
    for row in rows:
        cosine, mf, rmf = binned_scores(bin_spectrum(queries[row["query"]], 1000), bin_spectrum(library[row["name"]], 1000))
        assert float(row["cosine"]) == pytest.approx(cosine, abs=2e-6)
        assert (int(row["match_factor"]), int(row["reverse_match_factor"])) == (mf, rmf)
        assert cosine > 0  # entries sharing no peak with the query are no hits
    for query in queries:  # ranked by cosine
        cosines = [float(r["cosine"]) for r in rows if r["query"] == query]
        assert cosines == sorted(cosines, reverse=True) and 1 <= len(cosines) <= 4
    drop = ("library",)
    assert ([{k: v for k, v in r.items() if k not in drop} for r in tables["index"]]
            == [{k: v for k, v in r.items() if k not in drop} for r in rows])


def test_mass_window_json_output_and_mirror_plots(library_index: Path, tmp_path: Path) -> None:
    out = tmp_path / "hits.json"
    plots = tmp_path / "plots"
    search(f"queries={QUERIES}", f"library=[{LIBRARY},{library_index}]", f"output={out}", "mass_window=0",
           f"plots={plots}", "plot_hits=1")
    result = json.loads(out.read_text())
    assert result["mass_window"] == 0 and result["dropped_queries"]["dropped"] == {"peak_count_mismatch": 1}
    hits = {q["query"]: q["hits"] for q in result["queries"]}
    # benzene's spectrum with MW 92: within ±0 Da only toluene (92), once from each library; the MSP library first
    assert [(h["name"], h["mass"], h["library"]) for h in hits["benzene labelled 92"]] == [
        ("toluene", 92, str(LIBRARY)), ("toluene", 92, str(library_index))]
    assert {h["name"] for h in hits["ethanol query"]} == {"ethanol"}
    assert all(h["mass"] == q["query_mass"] for q in result["queries"] for h in q["hits"])
    pngs = sorted(plots.glob("*.png"))
    assert len(pngs) == 3 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert pngs[2].name == "0003_benzene_labelled_92_hit1_toluene.png"
    # query_mass for every query: only benzene (78) within ±2 Da
    out2 = tmp_path / "hits2.tsv"
    search(f"queries={QUERIES}", f"library={library_index}", f"output={out2}", "mass_window=2", "query_mass=78")
    assert {(r["name"], r["mass"]) for r in read_tsv(out2)} == {("benzene", "78")}
    # without a window, benzene labelled 92 finds benzene first
    out3 = tmp_path / "hits3.tsv"
    search(f"queries={QUERIES}", f"library={library_index}", f"output={out3}")
    assert [r["name"] for r in read_tsv(out3) if r["query"] == "benzene labelled 92"][0] == "benzene"


def test_json_queries_with_bad_records_counted(library_index: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    queries = tmp_path / "queries.json"
    queries.write_text(json.dumps([
        {"name": "acetone like", "smiles": "CC(C)=O", "peaks_json": [[15, 0.2], [43, 1.0], [58, 0.6]]},
        {"name": "no peaks here", "peaks_json": []},
        {"name": "negative", "peaks_json": [[43, -1.0]]},
        {"name": "too heavy", "peaks_json": [[1500, 1.0]]},
        "not an object"]))
    out = tmp_path / "hits.tsv"
    summary = search(f"queries={queries}", f"library={library_index}", f"output={out}", "mass_window=0")
    assert [(r["query"], r["name"]) for r in read_tsv(out)] == [("acetone like", "acetone"), ("acetone like", "propanal")]
    assert dict(summary["dropped"].dropped) == {"no_peaks": 1, "negative_intensity": 1, "no_peaks_in_range": 1,
                                               "malformed_record": 1}
    err = capsys.readouterr().err
    assert "no_peaks: no peaks here" in err and "no_peaks_in_range: too heavy" in err and "#5" in err


def test_a_library_of_another_format_or_version_is_refused(library_index: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["spectra"] = np.zeros((2, 3))
    done = subprocess.run([sys.executable, "-m", "nextims.search", f"queries={QUERIES}", f"library={plain}",
                           f"output={tmp_path / 'hits.tsv'}"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip() == (f"nextims.search: library={plain}: not a nextims spectrum index (it has no format "
                                   "attribute, expected 'nextims-spectrum-index')")
    assert not (tmp_path / "hits.tsv").exists()
    old = tmp_path / "old.h5"
    old.write_bytes(library_index.read_bytes())
    with h5py.File(old, "r+") as f:
        f.attrs["version"] = 2
    with pytest.raises(InputError, match=f"library={old}: spectrum index version 2"):
        search(f"queries={QUERIES}", f"library=[{LIBRARY},{old}]", f"output={tmp_path / 'hits.tsv'}")
    (tmp_path / "notes.csv").write_text("a,b\n")
    with pytest.raises(InputError, match=r"library=.*notes\.csv: not a spectrum index \(\.h5\) or a spectrum file"):
        search(f"queries={QUERIES}", f"library={tmp_path / 'notes.csv'}", f"output={tmp_path / 'hits.tsv'}")
    (tmp_path / "empty.msp").write_text("Name: nothing\nNum Peaks: 0\n")
    with pytest.raises(InputError, match=r"library=.*empty\.msp: no usable spectrum \(1 records refused\)"):
        search(f"queries={QUERIES}", f"library={tmp_path / 'empty.msp'}", f"output={tmp_path / 'hits.tsv'}")
    with pytest.raises(InputError, match="output=.*: use a .tsv or .json"):
        search(f"queries={QUERIES}", f"library={library_index}", f"output={tmp_path / 'hits.csv'}")


def test_predict_to_an_index_holds_the_spectra_of_its_msp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nextims.config import build
    from nextims.models.weights import save_weights
    from nextims.predict import compose_predict, run_predict

    model = {"_target_": "nextims.models.neims.NEIMS", "input_dim": 256, "num_bins": 120, "hidden_dim": 32,
             "num_blocks": 1}
    torch.manual_seed(0)
    weights = save_weights(build(OmegaConf.create(model)), tmp_path / "untrained",
                           {"model": model, "featurizer": {"fp_bits": 256, "fp_radius": 2}, "data": {"max_mz": 120}})
    smi = tmp_path / "in.smi"
    smi.write_text("CCO ethanol\nC1CC(( broken\nc1ccccc1O phenol\nCC(C)=O acetone\nCCCl chloroethane\nCCN amine\n")
    monkeypatch.setattr(index_module, "WRITE_CHUNK", 2)  # several chunks appended
    runs = {}
    for suffix in ("msp", "h5"):
        out = tmp_path / f"lib.{suffix}"
        runs[suffix] = run_predict(compose_predict(["progress=false", "workers=0", "batch_size=2", f"input={smi}",
                                                    f"output={out}", f"model={weights}"]))
    assert runs["h5"].kept == runs["msp"].kept == 5 and dict(runs["h5"].dropped) == {"bad_smiles": 1}
    msp = list(read_msp(tmp_path / "lib.msp"))
    index = open_index(tmp_path / "lib.h5")
    assert index.max_mz == 120 and len(index) == len(msp) == 5
    assert index.column("name").tolist() == [s.get("name") for s in msp]
    assert index.column("inchikey").tolist() == [s.get("inchikey") for s in msp]
    assert index.column("smiles").tolist() == [s.get("smiles") for s in msp]
    assert set(index.column("source")) == {f"predicted:{weights.stem}"}
    assert index.mass.tolist() == [int(s.get("mw")) for s in msp] == [46, 94, 58, 64, 45]
    for row, spectrum in enumerate(msp):
        bins, intensity, _ = index.peaks(row)
        assert bins.tolist() == spectrum.mz.astype(int).tolist()
        # the MSP holds intensities rounded on a 0..999 scale
        np.testing.assert_allclose(intensity * 999, spectrum.intensities, atol=0.5 + 1e-3)
    with pytest.raises(InputError, match=r"use a \.msp, \.json or \.h5"):
        run_predict(compose_predict([f"input={smi}", f"output={tmp_path / 'lib.csv'}", f"model={weights}"]))


def test_both_engines_give_the_same_hits_and_a_bad_engine_is_refused(library_index: Path, tmp_path: Path) -> None:
    tables = {}
    for engine in ("pooled", "dense"):
        search(f"queries={QUERIES}", f"library={library_index}", f"output={tmp_path / engine}.tsv", f"engine={engine}")
        tables[engine] = read_tsv(tmp_path / f"{engine}.tsv")
    assert tables["pooled"] == tables["dense"] and len(tables["pooled"]) > 3
    with pytest.raises(InputError, match=r"engine='sparse': must be one of auto, pooled, dense"):
        search(f"queries={QUERIES}", f"library={library_index}", f"output={tmp_path / 'hits.tsv'}", "engine=sparse")
    assert not (tmp_path / "hits.tsv").exists()
