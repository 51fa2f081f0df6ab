"""Search unknown spectra in libraries: `python -m nextims.search queries=<MSP|JSON> library=<index.h5|lib.msp|[..]>
output=<hits.tsv|hits.json> [top_k=10] [mass_window=5] [plots=<folder>]`."""

from __future__ import annotations

import json
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import hydra
import numpy as np
from hydra import compose, initialize
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf

from nextims.config import conf_dir, register_resolvers
from nextims.config_schema import check_node, setting
from nextims.errors import DropReport, InputError, RecordError
from nextims.io import detect_format, read_spectra
from nextims.io.atomic import atomic_open, check_output_file
from nextims.io.text import parsed_counted
from nextims.search.engine import ENGINES, top_hits
from nextims.search.index import SpectrumIndex, build_index, entry_mass, open_index
from nextims.search.prefilter import PRECISIONS
from nextims.search.scoring import match_factor, query_vector, reverse_match_factor
from nextims.spectrum import Spectrum, bin_spectrum, validate_peaks

register_resolvers()

# conf/search.yaml from Hydra's config store (as predict does), so that every key is a plain value
CONFIG_NAME = "nextims_search"
ConfigStore.instance().store(name=CONFIG_NAME, node=OmegaConf.load(conf_dir() / "search.yaml"))

COLUMNS = ("query", "query_mass", "rank", "name", "inchikey", "smiles", "formula", "mass", "library", "source",
           "match_factor", "reverse_match_factor", "cosine")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_PREDICTED = re.compile(r"predicted by NExtIMS \(([^)]+)\)")


@dataclass
class SearchSchema:
    """conf/search.yaml."""

    top_k: int = setting(ge=1)
    mass_window: Optional[float] = setting(ge=0)
    query_mass: Optional[int] = setting(ge=1)
    plot_hits: int = setting(ge=1)
    max_mz: int = setting(ge=1, le=65535)
    engine: str = setting(choices=ENGINES)
    precision: str = setting(choices=PRECISIONS)


@dataclass
class Library:
    """One library of a search: the path given and its index."""

    path: Path
    index: SpectrumIndex


@dataclass
class Query:
    """One query: its spectrum, name and nominal mass (-1: unknown)."""

    spectrum: Spectrum
    name: str
    mass: int


def compose_search(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The search config with overrides, as `python -m nextims.search <overrides>` would see it."""
    with initialize(version_base="1.3", config_path=None):
        return compose(CONFIG_NAME, overrides=list(overrides))


def library_paths(cfg: DictConfig) -> list[Path]:
    """cfg.library as a list of paths (one path or a list)."""
    value = cfg.library
    paths = list(value) if isinstance(value, (ListConfig, list, tuple)) else [value]
    if not paths or any(p is None or str(p) == "" for p in paths):
        raise InputError(f"library={value}: give a spectrum index (.h5) or spectrum file, or a list of them")
    return [Path(str(p)) for p in paths]


def check_search_config(cfg: DictConfig) -> None:
    """Refuse unusable search settings and an unwritable output, before anything is read."""
    check_node(SearchSchema, cfg, "")
    check_output_file(Path(str(cfg.output)), (".tsv", ".json"), "a .tsv or .json file name")
    library_paths(cfg)


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(len(_HDF5_SIGNATURE)) == _HDF5_SIGNATURE


def file_source(file_name: str):
    """The source of a spectrum-file library's entry: `predicted:<model>` for what predict wrote (its comment
    says so), else `experimental:<file name>`."""
    def source(spectrum: Spectrum) -> str:
        match = _PREDICTED.search(str(spectrum.get("comments") or ""))
        return f"predicted:{match.group(1)}" if match else f"experimental:{file_name}"
    return source


def open_library(path: Path, folder: Path, max_mz: int, report: DropReport, number: int = 0) -> SpectrumIndex:
    """A library as an index: a spectrum index opened (refused, naming it, when of another format or version), a
    spectrum file (MSP) read (bad records counted in report) into a temporary index <number>.h5 in folder."""
    if not path.exists():
        raise InputError(f"library={path}: no such file")
    if path.is_dir() or not _is_hdf5(path):
        try:
            detect_format(path)
        except ValueError:
            raise InputError(f"library={path}: not a spectrum index (.h5) or a spectrum file nextims reads "
                             "(.msp, ...)") from None
        target = folder / f"{number}.h5"
        count = build_index(target, read_spectra(path, report=report), source=file_source(path.name), max_mz=max_mz,
                            report=report)
        if not count:
            raise InputError(f"library={path}: no usable spectrum ({report.total_dropped} records refused)")
        return open_index(target)
    try:
        return open_index(path)
    except InputError as err:
        raise InputError(f"library={err}") from None


def read_json_spectra(path: Path, report: DropReport | None = None) -> Iterator[Spectrum]:
    """Spectra of a JSON list of records with `peaks_json` ([[mz, intensity], ...]), as predict (and matchms)
    writes; bad records are counted in report (or raise RecordError without one)."""
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not a JSON file ({err})") from None
    if not isinstance(records, list):
        raise InputError(f"{path}: expected a JSON list of spectra, found a {type(records).__name__}")
    yield from parsed_counted(enumerate(records, 1), lambda item: _json_spectrum(item[1], f"#{item[0]}"), report)


def _json_spectrum(record: Any, where: str) -> Spectrum:
    """One JSON record as a Spectrum."""
    if not isinstance(record, dict):
        raise RecordError(where, "malformed_record", f"a {type(record).__name__}, not an object")
    name = str(record.get("name") or record.get("compound_name") or record.get("id") or where)
    peaks = record.get("peaks_json")
    if isinstance(peaks, str):
        try:
            peaks = json.loads(peaks)
        except json.JSONDecodeError:
            raise RecordError(name, "malformed_peaks", "peaks_json is not JSON") from None
    if peaks is None:
        raise RecordError(name, "no_peaks", "no peaks_json")
    try:
        array = np.asarray(peaks, dtype=np.float64).reshape(-1, 2) if len(peaks) else np.zeros((0, 2))
    except (TypeError, ValueError):
        raise RecordError(name, "malformed_peaks", "peaks_json is not a list of [mz, intensity] pairs") from None
    validate_peaks(array[:, 0], array[:, 1], name)
    metadata = {key: value for key, value in record.items() if key != "peaks_json"}
    metadata.setdefault("name", name)
    metadata["id"] = name
    return Spectrum(array[:, 0], array[:, 1], metadata)


def read_queries(cfg: DictConfig, max_mz: int, report: DropReport) -> list[Query]:
    """The queries of cfg.queries with their names and masses; unreadable ones, and those without a peak at
    m/z 1..max_mz, are counted in report."""
    path = Path(str(cfg.queries))
    if not path.exists():
        raise InputError(f"queries={path}: no such file")
    if path.suffix.lower() == ".json":
        spectra = read_json_spectra(path, report)
    else:
        try:
            spectra = read_spectra(path, report=report)
        except ValueError as err:
            raise InputError(f"queries={path}: {err}") from None
    queries = []
    for spectrum in spectra:
        name = str(spectrum.get("name") or spectrum.id)
        if not np.any((np.floor(spectrum.mz + 0.5) >= 1) & (np.floor(spectrum.mz + 0.5) <= max_mz)):
            report.kept -= 1  # kept by the reader, refused here
            report.drop("no_peaks_in_range", name, f"no peak at m/z 1-{max_mz}")
            continue
        mass = int(cfg.query_mass) if cfg.query_mass is not None else entry_mass(spectrum)
        queries.append(Query(spectrum, name, mass))
    return queries


def search_libraries(queries: list[Query], libraries: list[Library], k: int, mass_window: float | None,
                     precision: str = "auto", device: str = "cpu",
                     engine: str = "auto") -> list[list[tuple[float, int, int]]]:
    """Per query, its k best (cosine, library number, row) over all libraries, best first (ties: the earlier
    library, the lower row); entries sharing no peak with the query (cosine 0) are no hits."""
    masses = np.array([q.mass for q in queries], dtype=np.float64)
    found: list[list[tuple[float, int, int]]] = [[] for _ in queries]
    for number, library in enumerate(libraries):
        vectors = np.stack([query_vector(q.spectrum, library.index.max_mz) for q in queries])
        rows, cosines = top_hits(vectors, library.index, k, masses, mass_window, precision, device, engine)
        for i in range(len(queries)):
            found[i].extend((float(c), number, int(r)) for r, c in zip(rows[i], cosines[i]) if r >= 0 and c > 0)
    return [sorted(hits, key=lambda h: (-h[0], h[1], h[2]))[:k] for hits in found]


def hit_records(queries: list[Query], libraries: list[Library],
                best: list[list[tuple[float, int, int]]]) -> list[dict[str, Any]]:
    """Per query, its name, mass and hits with their columns and scores."""
    columns = [library.index.columns_at(np.array([r for hits in best for _, n, r in hits if n == number], np.int64))
               for number, library in enumerate(libraries)]
    vectors: dict[tuple[int, int], np.ndarray] = {}
    out = []
    for i, (query, hits) in enumerate(zip(queries, best)):
        rows = []
        for rank, (cosine, number, row) in enumerate(hits, 1):
            index = libraries[number].index
            if (i, index.max_mz) not in vectors:
                vectors[i, index.max_mz] = query_vector(query.spectrum, index.max_mz)
            bins, _, weights = index.peaks(row)
            mass = int(index.mass[row])
            rows.append({"rank": rank, **{name: columns[number][name][row] for name in
                                          ("name", "inchikey", "smiles", "formula")},
                         "mass": mass if mass >= 0 else None, "library": str(libraries[number].path),
                         "source": columns[number]["source"][row], "match_factor": match_factor(cosine),
                         "reverse_match_factor": reverse_match_factor(vectors[i, index.max_mz], bins, weights),
                         "cosine": round(cosine, 6), "library_number": number, "row": row})
        out.append({"query": query.name, "query_mass": query.mass if query.mass >= 0 else None, "hits": rows})
    return out


def tsv_field(value: Any) -> str:
    """A value as one TSV field, escaped as nextims.predict.tsv_field does (which would import torch here):
    backslash doubled, tab, newline and carriage return as \\t, \\n, \\r; None empty."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def write_hits(results: list[dict[str, Any]], path: Path, meta: dict[str, Any]) -> int:
    """Write the hits as TSV (a header, one row per hit) or JSON (by the suffix), atomically; returns the rows."""
    rows = 0
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as out:
        if path.suffix.lower() == ".json":
            clean = [{**r, "hits": [{k: v for k, v in h.items() if k not in ("library_number", "row")}
                                    for h in r["hits"]]} for r in results]
            json.dump({**meta, "queries": clean}, out, indent=1)
            out.write("\n")
            return sum(len(r["hits"]) for r in results)
        out.write("\t".join(COLUMNS) + "\n")
        for result in results:
            for hit in result["hits"]:
                values = {"query": result["query"], "query_mass": result["query_mass"], **hit}
                out.write("\t".join(tsv_field(values[c]) for c in COLUMNS) + "\n")
                rows += 1
    return rows


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:40]


def save_mirror_plots(queries: list[Query], libraries: list[Library], results: list[dict[str, Any]], folder: Path,
                      count: int) -> int:
    """One PNG mirror plot per query and each of its best `count` hits (query up, hit down) in folder; returns
    the plots written."""
    from nextims.evaluation.plots import close, mirror_plot

    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for i, (query, result) in enumerate(zip(queries, results), 1):
        for hit in result["hits"][:count]:
            index = libraries[hit["library_number"]].index
            title = (f"{query.name} vs #{hit['rank']} {hit['name']} ({hit['source']}): MF {hit['match_factor']}, "
                     f"RMF {hit['reverse_match_factor']}, cosine {hit['cosine']:.3f}")
            fig = mirror_plot(bin_spectrum(query.spectrum, index.max_mz), index.binned(hit["row"]), title)
            fig.savefig(folder / f"{i:04d}_{_safe(query.name)}_hit{hit['rank']}_{_safe(hit['name'])}.png", dpi=80)
            close(fig)
            written += 1
    return written


def report_drops(report: DropReport, what: str) -> None:
    """The dropped records of a report on stderr: the count by reason, then each one with its reason."""
    if not report.total_dropped:
        return
    print(report.format().splitlines()[0] + f" ({what})", file=sys.stderr)
    for reason, entries in sorted(report.examples.items()):
        for entry in entries:
            print(f"  {reason}: {entry}", file=sys.stderr)


def run_search(cfg: DictConfig) -> dict[str, Any]:
    """Search cfg.queries in cfg.library and write cfg.output; returns a summary (queries, hits, dropped)."""
    check_search_config(cfg)
    output = Path(str(cfg.output))
    query_report = DropReport("queries", max_examples=sys.maxsize)
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nextims-search-")))
        libraries = []
        for number, path in enumerate(library_paths(cfg)):
            report = DropReport(f"library {path}", max_examples=sys.maxsize)
            libraries.append(Library(path, open_library(path, folder, int(cfg.max_mz), report, number)))
            report_drops(report, "library records left out")
        max_mz = max(library.index.max_mz for library in libraries)
        queries = read_queries(cfg, max_mz, query_report)
        report_drops(query_report, "queries not searched")
        window = None if cfg.mass_window is None else float(cfg.mass_window)
        best = (search_libraries(queries, libraries, int(cfg.top_k), window, str(cfg.precision), str(cfg.device),
                                 str(cfg.engine)) if queries else [])
        results = hit_records(queries, libraries, best)
        meta = {"library": [str(library.path) for library in libraries], "top_k": int(cfg.top_k),
                "mass_window": window, "dropped_queries": query_report.to_dict()}
        rows = write_hits(results, output, meta)
        plots = save_mirror_plots(queries, libraries, results, Path(str(cfg.plots)),
                                  int(cfg.plot_hits)) if cfg.plots else 0
    size = sum(len(library.index) for library in libraries)
    print(f"searched {len(queries)} queries against {size} library spectra "
          f"({', '.join(f'{library.path}: {len(library.index)}' for library in libraries)})"
          + (f" within ±{window:g} Da" if window is not None else "") + f"; wrote {rows} hits to {output}"
          + (f" and {plots} mirror plots to {cfg.plots}" if plots else "")
          + (f"; {query_report.total_dropped} queries not searched (see above)" if query_report.total_dropped else ""))
    return {"queries": len(queries), "hits": rows, "plots": plots, "dropped": query_report, "results": results}


@hydra.main(version_base="1.3", config_path=None, config_name=CONFIG_NAME)
def main(cfg: DictConfig) -> None:
    """Hydra entry; an unusable input (a missing file, a library of another format) ends it with one line, exit
    code 2."""
    try:
        run_search(cfg)
    except (FileNotFoundError, InputError) as err:
        print(f"nextims.search: {err}", file=sys.stderr)
        raise SystemExit(2) from None
