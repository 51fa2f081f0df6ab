"""Exact top-k search of a spectrum index by weighted cosine, optionally within a molecular-mass window."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from nextims.search.index import SpectrumIndex
from nextims.search.pooled import PooledSearch
from nextims.search.prefilter import LibrarySearch, Prefilter
from nextims.training.runtime import select_device

ENGINES = ("auto", "pooled", "dense")


@dataclass
class IndexSearch:
    """An index's exact search over its rows sorted by molecular mass (a mass window is a slice), and those masses."""

    engine: LibrarySearch
    sorted_mass: np.ndarray

    def ranges(self, masses: np.ndarray | None, window: float | None) -> tuple[np.ndarray, np.ndarray] | None:
        """Per query, the positions lo..hi of the rows within ±window of its mass (all rows for a query of
        unknown mass); None without a window."""
        if masses is None or window is None:
            return None
        known = np.isfinite(masses) & (masses >= 0)
        centre = np.where(known, masses, 0.0)
        # rows of unknown mass (-1) sort first and lie below every window's lower end
        lo = np.searchsorted(self.sorted_mass, np.maximum(centre - window, 0.0), side="left")
        hi = np.searchsorted(self.sorted_mass, centre + window, side="right")
        return np.where(known, lo, 0).astype(np.int64), np.where(known, hi, len(self.sorted_mass)).astype(np.int64)


def choose_engine(engine: str, device: str) -> str:
    """`pooled` (the pooled bound, compiled CPU threads) or `dense` (a low-precision matrix on the device): auto takes
    dense on a GPU and pooled on the CPU."""
    if engine not in ENGINES:
        raise ValueError(f"search engine {engine!r}: expected {', '.join(ENGINES)}")
    if engine == "auto":
        return "dense" if select_device(device).type == "cuda" else "pooled"
    return engine


@lru_cache(maxsize=1)
def index_search(index: SpectrumIndex, precision: str = "auto", device: str = "cpu",
                 engine: str = "auto") -> IndexSearch:
    """The search structure of an index (built once per index, precision, device and engine)."""
    order = np.argsort(index.mass, kind="stable")
    if choose_engine(engine, device) == "pooled":
        search: LibrarySearch = PooledSearch(index.sparse_rows(), order=order)
    else:
        search = Prefilter(index.sparse_rows(), precision, select_device(device), order=order)
    return IndexSearch(search, index.mass[order].astype(np.float64))


def top_hits(queries: np.ndarray, index: SpectrumIndex, k: int, query_masses: np.ndarray | None = None,
             mass_window: float | None = None, precision: str = "auto",
             device: str = "cpu", engine: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """The k library rows of highest cosine for each query, best first, and those cosines.

    - queries: dense (B, index.max_mz + 1) weighted vectors (sqrt(intensity) * m/z, unit-normalised; any float
      type); the cosine of query i and row r is queries[i] . weight_r, with weight_r the row's stored float32
      weights, and results equal a dense float64 computation of those products: the k largest per query, ties
      broken by the lower row index (found by an exact bound, nextims.search.pooled, or a bounded low-precision
      prefilter, nextims.search.prefilter); rows sharing no bin with the query (cosine 0) are no hits.
    - mass_window with query_masses (B,): only rows whose mass lies within ±mass_window of the query's mass are
      candidates (rows of unknown mass, -1, never are); a query whose mass is unknown (negative or NaN) is searched
      without a window.
    - engine: auto | pooled | dense (choose_engine); precision: the dense prefilter's storage type (auto | bfloat16 |
      float32); device: auto | cpu | cuda[:n] (where the dense engine runs).
    - returns (B, k) int64 rows and (B, k) float64 cosines; a query with fewer than k candidates is padded with
      -1 rows and NaN cosines.
    """
    queries = np.asarray(queries, dtype=np.float64)
    if queries.ndim != 2 or queries.shape[1] != index.width:
        raise ValueError(f"queries: expected a (B, {index.width}) array for {index.path} (max_mz {index.max_mz}), "
                         f"got shape {queries.shape}")
    if k < 1:
        raise ValueError(f"k={k}: must be at least 1")
    masses = None
    if mass_window is not None:
        if query_masses is None:
            raise ValueError("mass_window needs query_masses")
        masses = np.asarray(query_masses, dtype=np.float64)
        if masses.shape != (len(queries),):
            raise ValueError(f"query_masses: expected shape ({len(queries)},), got {masses.shape}")
    if not len(index):
        return np.full((len(queries), k), -1, np.int64), np.full((len(queries), k), np.nan)
    search = index_search(index, precision, device, engine)
    ranges = search.ranges(masses, None if mass_window is None else float(mass_window))
    return search.engine.top_k(queries, k, *(ranges or (None, None)))
