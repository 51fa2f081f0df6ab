"""Exact top-k search of a spectrum index by weighted cosine, optionally within a molecular-mass window."""

from __future__ import annotations

import numpy as np

from nextims.search.index import SpectrumIndex

# library rows densified and scored per matrix product, and queries scored together
ROW_BLOCK = 8192
QUERY_BLOCK = 512


def top_hits(queries: np.ndarray, index: SpectrumIndex, k: int, query_masses: np.ndarray | None = None,
             mass_window: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k library rows of highest cosine for each query, best first, and those cosines.

    Contract (which a faster implementation behind this signature must keep):
    - queries: dense (B, index.max_mz + 1) weighted vectors (sqrt(intensity) * m/z, unit-normalised; any float
      type); the cosine of query i and row r is queries[i] . weight_r, with weight_r the row's stored float32
      weights, and results equal a dense float64 computation of those products: the k largest per query, ties
      broken by the lower row index.
    - mass_window with query_masses (B,): only rows whose mass lies within ±mass_window of the query's mass are
      candidates (rows of unknown mass, -1, never are); a query whose mass is unknown (negative or NaN) is searched
      without a window.
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
    rows = np.full((len(queries), k), -1, np.int64)
    scores = np.full((len(queries), k), np.nan)
    for start in range(0, len(queries), QUERY_BLOCK):
        part = slice(start, start + QUERY_BLOCK)
        rows[part], scores[part] = _group_top_hits(queries[part], index, k,
                                                   None if masses is None else masses[part], mass_window)
    return rows, scores


def _group_top_hits(queries: np.ndarray, index: SpectrumIndex, k: int, masses: np.ndarray | None,
                    window: float | None) -> tuple[np.ndarray, np.ndarray]:
    """top_hits for one block of queries: a running top-k over blocks of library rows."""
    n = len(queries)
    best_scores = np.full((n, k), -np.inf)
    best_rows = np.full((n, k), np.iinfo(np.int64).max, np.int64)
    windowed = None if masses is None else np.isfinite(masses) & (masses >= 0)
    library_mass = index.mass.astype(np.float64)
    for start in range(0, len(index), ROW_BLOCK):
        stop = min(len(index), start + ROW_BLOCK)
        allowed = None
        if windowed is not None and windowed.any():
            block_mass = library_mass[start:stop]
            allowed = (np.abs(block_mass[None, :] - masses[:, None]) <= window) & (block_mass[None, :] >= 0)
            allowed |= ~windowed[:, None]
            if not allowed.any():
                continue
        block = queries @ index.dense_weights(start, stop).T
        if allowed is not None:
            block[~allowed] = -np.inf
        best_scores, best_rows = _merge(best_scores, best_rows, block, start, k)
    found = np.isfinite(best_scores)
    return np.where(found, best_rows, -1), np.where(found, best_scores, np.nan)


def _merge(best_scores: np.ndarray, best_rows: np.ndarray, block: np.ndarray, start: int,
           k: int) -> tuple[np.ndarray, np.ndarray]:
    """The running top-k (sorted: score descending, row ascending; all rows below `start`) merged with a block
    of scores of rows start.., exactly: of the entries equal to the k-th score, the lowest rows are kept."""
    scores = np.concatenate([best_scores, block], axis=1)
    rows = np.concatenate([best_rows, np.broadcast_to(np.arange(start, start + block.shape[1]), block.shape)], axis=1)
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1:k]
    above = scores > kth
    # columns are in row order among equal scores (the kept set is sorted, and its rows precede the block's)
    tied = scores == kth
    keep = above | (tied & (np.cumsum(tied, axis=1) <= k - above.sum(axis=1, keepdims=True)))
    kept_scores = scores[keep].reshape(len(scores), k)
    kept_rows = rows[keep].reshape(len(scores), k)
    order = np.lexsort((kept_rows, -kept_scores), axis=1)
    return np.take_along_axis(kept_scores, order, 1), np.take_along_axis(kept_rows, order, 1)
