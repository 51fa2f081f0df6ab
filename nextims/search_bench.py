"""`python -m nextims.bench search`: identification at library scale. A predicted library of a million transfer-set
molecules, plus the data's experimental library and the predicted spectra of the benchmark split's compounds,
searched with that split's observed spectra: recall, queries per second, index build time and size, peak memory,
exactness against a dense computation, and the same for ms_entropy's Flash entropy search."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from nextims.config import register_resolvers
from nextims.data.molecules import InputMolecule
from nextims.errors import DropReport
from nextims.evaluation.split_eval import LIBRARY_SPLITS
from nextims.io.msp import read_msp, write_msp
from nextims.phases.common import load_data
from nextims.predict import compose_predict, model_weights, predicted_spectra
from nextims.predictor import SpectrumPredictor
from nextims.scale import fresh_process, synthetic_library
from nextims.search.engine import choose_engine, index_search, top_hits
from nextims.search.flash import build_flash, flash_peaks, flash_top_k
from nextims.search.index import append_spectra, build_index, open_index
from nextims.search.prefilter import QUERY_BLOCK, ROW_BLOCK, Prefilter
from nextims.search.scoring import query_vector
from nextims.spectrum import Spectrum, unbin_spectrum
from nextims.training.runtime import peak_rss_gb, set_threads

COLUMNS = ("search", "library", "queries", "R@1", "R@10", "R@1 ±5Da", "R@10 ±5Da", "q/s", "q/s ±5Da", "load_s",
           "build_s", "index_mb", "peak_gb")
WINDOWS = (("", None), (" ±5Da", "window"))


def split_spectra(cfg: DictConfig) -> tuple[list[Spectrum], list[Spectrum], list[Spectrum]]:
    """The data's experimental library (one observed spectrum per compound of the library splits), the predicted
    spectra of the benchmark split's compounds (by bench.search.model) and that split's observed spectra (queries),
    each with its compound key (as `inchikey`), SMILES and nominal mass."""
    data = load_data(cfg)
    split = str(cfg.bench.split)
    rep = data.representative_records()

    def observed(record: int) -> Spectrum:
        c = int(data.record_compound[record])
        return unbin_spectrum(data.spectra[record], {
            "id": data.records[record].id, "name": data.records[record].id, "inchikey": str(data.compound_keys[c]),
            "smiles": data.compound_smiles[c], "mw": int(data.compound_masses[c])})

    experimental = [observed(int(rep[c])) for c in data.compound_indices(LIBRARY_SPLITS[split])]
    queries = [observed(int(r)) for r in data.record_indices(split)]
    pcfg = compose_predict([f"model={cfg.bench.search.model}", f"paths.weights_dir={cfg.bench.weights}",
                            "progress=false", "workers=0"])
    predictor = SpectrumPredictor.load(model_weights(pcfg), "cpu")
    items = [InputMolecule(str(data.compound_keys[c]), data.compound_smiles[c]) for c in data.compound_indices(split)]
    predicted = []
    for spectrum in predicted_spectra(predictor, items, pcfg, DropReport(), []):
        spectrum.metadata["inchikey"] = spectrum.metadata["id"]  # the compound key: what a hit is judged by
        predicted.append(spectrum)
    return experimental, predicted, queries


def compound_key(value: Any) -> str:
    """The part of a compound key a hit is judged by: an InChIKey's first block (the skeleton), or the whole key."""
    return str(value or "")[:14]


def recall(hit_keys: np.ndarray, query_keys: np.ndarray, ks: tuple[int, ...] = (1, 10)) -> dict[int, float]:
    """Share of queries whose compound is among the first k hits, for each k."""
    found = hit_keys == query_keys[:, None]
    return {k: float(found[:, :k].any(axis=1).mean()) for k in ks}


def hit_keys(rows: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """The compound keys of hit rows ('' for padding)."""
    return np.where(rows >= 0, keys[np.maximum(rows, 0)], "")


def hits_file(folder: Path, window_name: str, engine: str) -> Path:
    """Where the search stage of an engine keeps its hit rows, open or within the window."""
    return folder / f"hits-{engine}-{'window' if window_name else 'open'}.npy"


def _config(cfg_yaml: str) -> DictConfig:
    register_resolvers()
    cfg = OmegaConf.create(cfg_yaml)
    set_threads(cfg.trainer.num_threads)
    return cfg


def measure_index(cfg_yaml: str, library_msp: str, experimental_msp: str, predicted_msp: str, index_path: str,
                  out: str) -> None:
    """Build the benchmark's index: the predicted library's MSP (its entries of benchmark-split compounds left out,
    so that each query compound has one predicted entry), then the experimental and predicted split spectra."""
    cfg = _config(cfg_yaml)
    model = cfg.bench.search.model
    split_keys = {compound_key(s.get("inchikey")) for s in read_msp(predicted_msp)}
    report = DropReport(name="predicted library")
    start = time.perf_counter()
    transfer = (s for s in read_msp(library_msp, report) if compound_key(s.get("inchikey")) not in split_keys)
    build_index(index_path, transfer, source=f"predicted:{model}", max_mz=int(cfg.bench.search.max_mz), report=report)
    append_spectra(index_path, read_msp(experimental_msp), source=f"experimental:{cfg.data.name}")
    append_spectra(index_path, read_msp(predicted_msp), source=f"predicted:{model}")
    result = {"build_s": time.perf_counter() - start, "index_mb": Path(index_path).stat().st_size / 1e6,
              "dropped": report.total_dropped, "peak_gb": peak_rss_gb()}
    Path(out).write_text(json.dumps(result))


def measure_search(cfg_yaml: str, index_path: str, queries_path: str, engine: str, out: str) -> None:
    """One engine's search of the queries (open, then within the mass window) and its exactness on a sample; JSON to
    out."""
    cfg = _config(cfg_yaml)
    bench = cfg.bench.search
    k, window = int(bench.top_k), float(bench.mass_window)
    precision, device = str(bench.precision), str(bench.device)
    queries = np.load(queries_path)
    vectors, masses, keys = queries["vectors"].astype(np.float64), queries["masses"], queries["keys"]
    start = time.perf_counter()
    index = open_index(index_path)
    search = index_search(index, precision, device, engine).engine
    top_hits(vectors[:1], index, k, None, None, precision, device, engine)  # compiled or cached kernels, pages read
    result: dict[str, Any] = {"search": f"nextims {choose_engine(engine, device)}", "library": len(index),
                              "queries": len(vectors), "load_s": time.perf_counter() - start,
                              "precision": search.precision, "dense_width": search.width, "tall_rows": len(search.tall)}
    library_keys = np.array([compound_key(key) for key in index.column("inchikey")])
    for name, width in WINDOWS:
        w = None if width is None else window
        start = time.perf_counter()
        rows, _ = top_hits(vectors, index, k, masses, w, precision, device, engine)
        result[f"q/s{name}"] = len(vectors) / (time.perf_counter() - start)
        result[f"fallbacks{name}"] = search.fallbacks
        found = recall(hit_keys(rows, library_keys), keys)
        result[f"R@1{name}"], result[f"R@10{name}"] = found[1], found[10]
        np.save(hits_file(Path(out).parent, name, engine), rows)
    if isinstance(search, Prefilter):
        result["q/s product"] = len(vectors) / product_seconds(search, vectors)
    result["peak_gb"] = peak_rss_gb()
    result.update(exactness(index, vectors, masses, k, window, bench, engine, Path(out).with_name("exact-sample.h5")))
    Path(out).write_text(json.dumps(result))


def product_seconds(prefilter: Prefilter, vectors: np.ndarray) -> float:
    """Seconds of the prefilter's matrix products alone for the queries over the whole library (nothing ranked):
    what any exact dense open search pays at the least, at this precision, on this machine."""
    start = time.perf_counter()
    for group in range(0, len(vectors), QUERY_BLOCK):
        q = prefilter.query_tensor(vectors[group:group + QUERY_BLOCK])
        for block in range(0, len(prefilter.matrix), ROW_BLOCK):
            q @ prefilter.matrix[block:block + ROW_BLOCK].T
    return time.perf_counter() - start


def exactness(index: Any, vectors: np.ndarray, masses: np.ndarray, k: int, window: float, bench: DictConfig,
              engine: str, sample_path: Path) -> dict[str, Any]:
    """Share of queries whose top-k over a fixed-seed sample of the library (an index of its own) equals a dense
    float64 computation (ties to the lower row, entries sharing no bin left out), open and within the mass window."""
    n = min(int(bench.exact_sample), len(index))
    chosen = np.sort(np.random.default_rng(int(bench.seed)).choice(len(index), n, replace=False))
    build_index(sample_path, (index.spectrum(int(r)) for r in chosen), max_mz=index.max_mz, mass_from_structure=False)
    sample = open_index(sample_path)
    if not np.array_equal(sample.mass, index.mass[chosen]):
        raise RuntimeError(f"{sample_path}: the sample's masses differ from the library's")
    dense = sample.dense_weights(0, len(sample))
    scores = vectors @ dense.T
    out: dict[str, Any] = {"exact_sample": n}
    for name, width in WINDOWS:
        want = np.where(scores > 0, scores, -np.inf)  # sharing no bin: no hit
        if width is not None:
            near = np.abs(sample.mass[None, :] - masses[:, None]) <= window
            want[~(near & (sample.mass >= 0)[None, :])] = -np.inf
        expected = np.argsort(-want, axis=1, kind="stable")[:, :k]
        expected = np.where(np.isfinite(np.take_along_axis(want, expected, 1)), expected, -1)
        got, _ = top_hits(vectors, sample, k, masses, None if width is None else window, str(bench.precision),
                          str(bench.device), engine)
        out[f"identical{name}"] = float(np.mean(np.all(got == expected, axis=1)))
    sample_path.unlink()
    return out


def measure_flash(cfg_yaml: str, index_path: str, queries_path: str, out: str) -> None:
    """ms_entropy's Flash entropy search of (a fixed-seed sample of) the queries over the same library; JSON to out."""
    cfg = _config(cfg_yaml)
    bench = cfg.bench.search
    k, window = int(bench.top_k), float(bench.mass_window)
    index = open_index(index_path)
    indptr, masses = np.asarray(index.indptr), np.asarray(index.mass, dtype=np.int64)
    entries = ((i, float(masses[i]), flash_peaks(index.mz[indptr[i]:indptr[i + 1]],
                                                 index.intensity[indptr[i]:indptr[i + 1]])) for i in range(len(index)))
    flash = build_flash(entries)
    library_keys = np.array([compound_key(key) for key in index.column("inchikey")])
    queries = np.load(queries_path, allow_pickle=True)
    chosen = flash_sample(len(queries["keys"]), bench)
    keys, query_masses = queries["keys"][chosen], queries["masses"][chosen]
    peaks = [flash_peaks(queries["peak_mz"][i], queries["peak_intensity"][i]) for i in chosen]
    result: dict[str, Any] = {"library": len(index), "queries": len(chosen), "build_s": flash.build_s}
    for name, width in WINDOWS:
        start = time.perf_counter()
        rows = np.full((len(peaks), k), -1, np.int64)
        for i, (mass, p) in enumerate(zip(query_masses, peaks)):
            found = flash_top_k(flash, float(mass), p, k, None if width is None else window)[0]
            rows[i, :len(found)] = found
        result[f"q/s{name}"] = len(peaks) / (time.perf_counter() - start)
        found = recall(hit_keys(rows, library_keys), keys)
        result[f"R@1{name}"], result[f"R@10{name}"] = found[1], found[10]
    result["peak_gb"] = peak_rss_gb()
    Path(out).write_text(json.dumps(result))


def flash_sample(count: int, bench: DictConfig) -> np.ndarray:
    """The queries ms_entropy searches: a fixed-seed sample of bench.search.ms_entropy_queries (all when null)."""
    n = count if bench.ms_entropy_queries is None else min(count, int(bench.ms_entropy_queries))
    return np.sort(np.random.default_rng(int(bench.seed)).choice(count, n, replace=False))


def write_queries(queries: list[Spectrum], max_mz: int, path: Path) -> None:
    """The queries as the search sees them (unit weighted vectors over 0..max_mz, nominal masses, compound keys) and
    their peaks (for ms_entropy), in one .npz."""
    vectors = np.stack([query_vector(q, max_mz) for q in queries]).astype(np.float32)
    np.savez(path, vectors=vectors, masses=np.array([float(q.get("mw")) for q in queries]),
             keys=np.array([compound_key(q.get("inchikey")) for q in queries]),
             peak_mz=np.array([q.mz for q in queries], dtype=object),
             peak_intensity=np.array([q.intensities for q in queries], dtype=object))


def print_rows(rows: list[dict[str, Any]]) -> None:
    """The table, one row per search."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:>10.3f}" if value < 10 else f"{value:>10.0f}"
        return f"{'' if value is None else value:>10}"

    print(" | ".join(f"{c:>10s}" for c in COLUMNS))
    for row in rows:
        print(" | ".join(cell(row.get(c)) for c in COLUMNS))


def bench_search(cfg: DictConfig) -> dict[str, Any]:
    """Build (once) the predicted library, index it with the data's spectra, search the split's observed spectra with
    our search and ms_entropy's; print the table and the closing `search ...` line."""
    bench = cfg.bench.search
    folder = Path(bench.dir)
    library_msp = synthetic_library(bench, str(cfg.bench.weights))
    experimental, predicted, queries = split_spectra(cfg)
    experimental_msp, predicted_msp = folder / "experimental.msp", folder / f"predicted-{cfg.bench.split}.msp"
    write_msp(experimental, experimental_msp)
    write_msp(predicted, predicted_msp)
    queries_path = folder / "queries.npz"
    write_queries(queries, int(bench.max_mz), queries_path)
    staged = cfg.copy()
    staged.paths.output_dir = str(folder / "runs")  # the stages write no run folder; resolvable without Hydra's run
    cfg_yaml = OmegaConf.to_yaml(staged, resolve=True)
    index_path = folder / "library.h5"
    built = fresh_process(measure_index, (cfg_yaml, str(library_msp), str(experimental_msp), str(predicted_msp),
                                          str(index_path)), folder / "stage-index.json")
    engines = [str(engine) for engine in bench.engines]
    runs = [fresh_process(measure_search, (cfg_yaml, str(index_path), str(queries_path), engine),
                          folder / f"stage-search-{engine}.json") for engine in engines]
    ours = runs[0]
    rows = [{**run, "build_s": built["build_s"], "index_mb": built["index_mb"]} for run in runs]
    if bench.ms_entropy:
        flash = fresh_process(measure_flash, (cfg_yaml, str(index_path), str(queries_path)),
                              folder / "stage-flash.json")
        rows.append({"search": "ms_entropy", **flash})
        rows.append({"search": ours["search"], "queries": flash["queries"],
                     **same_queries(folder, queries_path, index_path, bench, engines[0])})
    print(f"\nsearch benchmark: {ours['library']} library spectra ({len(experimental)} experimental, {len(predicted)} "
          f"predicted {cfg.bench.split} compounds, the rest predicted by {bench.model} for transfer-set molecules), "
          f"{ours['queries']} observed {cfg.bench.split} spectra as queries; top-{bench.top_k}; ±5Da: within "
          f"{bench.mass_window:g} Da of the query's nominal mass. nextims: weighted cosine, exact; pooled: the bound on "
          f"pairs of bins (float32, compiled threads), dense: a {runs[-1]['precision']} prefilter; both over bins "
          f"below {ours['dense_width']} ({ours['tall_rows']} rows beyond scored exactly); ms_entropy: entropy "
          "similarity, open search (identity search within the window); load_s: the search's own structure from the "
          "index and one first query; peak_gb is each stage's own process")
    print_rows(rows)
    for run in runs:
        product = f"; matrix products alone {run['q/s product']:.0f} q/s" if "q/s product" in run else ""
        print(f"{run['search']}: top-{bench.top_k} over a {run['exact_sample']}-spectrum sample of the library identical "
              f"to a dense float64 computation for {run['identical']:.1%} of the queries ({run['identical ±5Da']:.1%} "
              f"within the window); {run['fallbacks']}/{run['fallbacks ±5Da']} queries searched past their first "
              f"candidates{product}")
    print(f"index build {built['build_s']:.0f} s (peak {built['peak_gb']:.2f} GB, {built['dropped']} spectra "
          f"refused), {built['index_mb']:.0f} MB on disk")
    print(f"search library={ours['library']} queries={ours['queries']} queries_per_s={ours['q/s']:.0f} "
          f"recall@10={ours['R@10']:.3f} recall@10_mass5={ours['R@10 ±5Da']:.3f}")
    return rows[0]


def same_queries(folder: Path, queries_path: Path, index_path: Path, bench: DictConfig, engine: str) -> dict[str, Any]:
    """Our recall on the queries ms_entropy searched (from the hits the search stage saved)."""
    queries = np.load(queries_path, allow_pickle=True)
    chosen = flash_sample(len(queries["keys"]), bench)
    index = open_index(index_path)
    library_keys = np.array([compound_key(key) for key in index.column("inchikey")])
    out: dict[str, Any] = {}
    for name, _ in WINDOWS:
        rows = np.load(hits_file(folder, name, engine))[chosen]
        found = recall(hit_keys(rows, library_keys), queries["keys"][chosen])
        out[f"R@1{name}"], out[f"R@10{name}"] = found[1], found[10]
    return out
