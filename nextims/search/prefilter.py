"""Exact top-k cosine search over a large sparse library, fast: a low-precision dense prefilter whose error is
bounded, then exact rescoring of every entry the bound cannot rule out.

The library's weighted unit vectors are held densely in bfloat16 (2 bytes a bin; the matrix units of recent CPUs
and GPUs multiply these several times faster than float32). With unit roundoff u of the storage type, each stored
vector is off by at most u of its norm, so a prefilter score differs from the exact cosine by at most
EPS = 2u + u^2 (plus float32 accumulation, W * 2^-24). An entry whose prefilter score is more than 2 EPS below the
k-th best prefilter score cannot be among the exact top k; every other entry is rescored exactly in float64 from the
stored sparse weights, so the result equals an exact dense computation (ties broken by the lower row).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from nextims.data.sites import ragged_rows

# library rows scored per matrix product
ROW_BLOCK = 65536
# queries scored together (sorted by their row range, so that a group's ranges overlap)
QUERY_BLOCK = 1024
# columns of a block's scores summarised by their best, to skip those that cannot enter a query's kept set
CHUNK = 64
# prefilter candidates kept per query before the bound is checked (more are gathered for a query that needs them)
CANDIDATES = 64
_PRECISION = {"bfloat16": (torch.bfloat16, 2.0 ** -8), "float32": (torch.float32, 2.0 ** -24)}


@lru_cache(maxsize=1)
def _cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AMX or AVX-512 BF16), as /proc/cpuinfo says."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def choose_precision(precision: str, device: torch.device) -> str:
    """The prefilter's storage type: `auto` takes bfloat16 on CUDA and on CPUs that multiply it natively, else
    float32."""
    if precision == "auto":
        return "bfloat16" if device.type == "cuda" or _cpu_has_fast_bf16() else "float32"
    if precision not in _PRECISION:
        raise ValueError(f"search precision {precision!r}: expected auto, {' or '.join(_PRECISION)}")
    return precision


def error_bound(precision: str, width: int) -> float:
    """The largest difference between a prefilter score and the exact cosine of two unit vectors: storage rounding
    of both vectors, float32 accumulation over `width` terms and, for bfloat16, the product's own rounding."""
    u = _PRECISION[precision][1]
    products = 2 * u + u * u + width * 2.0 ** -24 * (1 + u) ** 2
    return products + (u * (1 + products) if precision == "bfloat16" else 0.0)


@dataclass
class SparseRows:
    """Weighted unit vectors in CSR form: row i holds weights[indptr[i]:indptr[i+1]] at bins of the same slice."""

    indptr: np.ndarray
    bins: np.ndarray
    weights: np.ndarray

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def dense(self, start: int, stop: int, width: int) -> np.ndarray:
        """Rows start..stop as a dense float32 (rows, width) array (bins at or above width left out)."""
        a, b = int(self.indptr[start]), int(self.indptr[stop])
        rows = np.repeat(np.arange(stop - start), np.diff(self.indptr[start:stop + 1]))
        bins = np.asarray(self.bins[a:b], dtype=np.int64)
        keep = bins < width
        out = np.zeros((stop - start, width), np.float32)
        out[rows[keep], bins[keep]] = self.weights[a:b][keep]
        return out

    def scores(self, queries: np.ndarray, pairs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact float64 cosines of queries[pairs[j]] with library row rows[j]."""
        entries, owner = ragged_rows(self.indptr, rows)
        bins = np.asarray(self.bins[entries], dtype=np.int64)
        inside = bins < queries.shape[1]
        contribution = np.zeros(len(entries))
        contribution[inside] = (queries[pairs[owner[inside]], bins[inside]]
                                * np.asarray(self.weights[entries[inside]], dtype=np.float64))
        return np.bincount(owner, contribution, minlength=len(rows))


class Prefilter:
    """A library's weighted unit vectors as a dense low-precision matrix on a device, with the exact sparse rows
    they came from; `top_k` gives exact results."""

    def __init__(self, rows: SparseRows, precision: str = "auto", device: str | torch.device = "cpu") -> None:
        self.rows = rows
        self.device = torch.device(device)
        self.precision = choose_precision(precision, self.device)
        dtype = _PRECISION[self.precision][0]
        self.width = int(np.max(rows.bins)) + 1 if len(rows.bins) else 1
        self.matrix = torch.empty((len(rows), self.width), dtype=dtype, device=self.device)
        for start in range(0, len(rows), ROW_BLOCK):
            stop = min(len(rows), start + ROW_BLOCK)
            self.matrix[start:stop] = torch.from_numpy(rows.dense(start, stop, self.width)).to(self.device, dtype)
        self.eps = error_bound(self.precision, self.width)

    def top_k(self, queries: np.ndarray, k: int, lo: np.ndarray | None = None,
              hi: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """For unit query vectors (B, any width; float64), the k library rows of highest exact cosine among rows
        lo[i]..hi[i] (default: all), best first, ties to the lower row, and those cosines; -1 and NaN pad a query
        with fewer candidates."""
        queries = np.asarray(queries, dtype=np.float64)
        lo = np.zeros(len(queries), np.int64) if lo is None else np.asarray(lo, np.int64)
        hi = np.full(len(queries), len(self.rows), np.int64) if hi is None else np.asarray(hi, np.int64)
        rows = np.full((len(queries), k), -1, np.int64)
        scores = np.full((len(queries), k), np.nan)
        order = np.lexsort((hi, lo))
        self.fallbacks = 0
        for start in range(0, len(queries), QUERY_BLOCK):
            group = order[start:start + QUERY_BLOCK]
            rows[group], scores[group] = self._group_top_k(queries[group], k, lo[group], hi[group])
        return rows, scores

    def _group_top_k(self, queries: np.ndarray, k: int, lo: np.ndarray, hi: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        """top_k for one group of queries."""
        q = torch.from_numpy(self._fit(queries)).to(self.device, self.matrix.dtype)
        keep = max(k, CANDIDATES)
        values, index = self._prefilter(q, lo, hi, keep)
        kth = values[:, k - 1] if values.shape[1] >= k else np.full(len(queries), -np.inf)
        floor = kth - 2 * self.eps
        short = np.flatnonzero((values.shape[1] == keep) & (values[:, -1] >= floor) & np.isfinite(kth))
        pairs, rows = self._candidates(values, index, floor)
        if len(short):
            extra_pairs, extra_rows = self._above(q[short], lo[short], hi[short], floor[short])
            drop = np.isin(pairs, short)
            pairs = np.concatenate([pairs[~drop], short[extra_pairs]])
            rows = np.concatenate([rows[~drop], extra_rows])
        self.fallbacks += len(short)
        return self._best(queries, pairs, rows, k)

    def _fit(self, queries: np.ndarray) -> np.ndarray:
        """Queries cut or padded to the library's width (bins beyond it meet no library peak)."""
        out = np.zeros((len(queries), self.width), np.float32)
        width = min(self.width, queries.shape[1])
        out[:, :width] = queries[:, :width]
        return out

    def _blocks(self, lo: np.ndarray, hi: np.ndarray):
        """(start, stop) of the row blocks covering every query's range."""
        first, last = int(lo.min(initial=0)), int(hi.max(initial=0))
        for start in range(first, last, ROW_BLOCK):
            yield start, min(last, start + ROW_BLOCK)

    def _block_scores(self, q: torch.Tensor, start: int, stop: int, lo: np.ndarray, hi: np.ndarray) -> torch.Tensor:
        """Prefilter scores of the queries with rows start..stop, -inf outside each query's range."""
        scores = q @ self.matrix[start:stop].T
        if lo.max() <= start and hi.min() >= stop:
            return scores
        rows = torch.arange(start, stop, device=self.device)
        outside = (rows[None, :] < torch.from_numpy(lo).to(self.device)[:, None]) | (
            rows[None, :] >= torch.from_numpy(hi).to(self.device)[:, None])
        return scores.masked_fill_(outside, -np.inf)

    def _prefilter(self, q: torch.Tensor, lo: np.ndarray, hi: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
        """The `keep` best prefilter scores of each query and their rows (-inf where a query has fewer)."""
        best_v = torch.full((len(q), 0), -np.inf, device=self.device)
        best_i = torch.zeros((len(q), 0), dtype=torch.int64, device=self.device)
        for start, stop in self._blocks(lo, hi):
            scores = self._block_scores(q, start, stop, lo, hi)
            if best_v.shape[1] == keep and (stop - start) % CHUNK == 0:
                v, i = self._above_kept(scores, best_v[:, -1])
            else:
                v, i = torch.topk(scores, min(keep, scores.shape[1]), dim=1)
            best_v, best_i = torch.cat([best_v, v.float()], 1), torch.cat([best_i, i + start], 1)
            best_v, j = torch.topk(best_v, min(keep, best_v.shape[1]), dim=1)
            best_i = torch.gather(best_i, 1, j)
        return best_v.cpu().numpy().astype(np.float64), best_i.cpu().numpy()

    @staticmethod
    def _above_kept(scores: torch.Tensor, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The scores of a block (and their columns) in the chunks of CHUNK columns whose best reaches the score a
        query already keeps last: only those can enter its kept set (-inf pads queries with fewer chunks)."""
        queries, width = scores.shape
        chunks = scores.view(queries, width // CHUNK, CHUNK)
        query, chunk = torch.nonzero(chunks.amax(dim=2).float() >= kept[:, None], as_tuple=True)
        counts = torch.bincount(query, minlength=queries)
        most = int(counts.max()) if len(query) else 0
        slot = torch.arange(len(query), device=scores.device) - (torch.cumsum(counts, 0) - counts)[query]
        values = torch.full((queries, max(1, most), CHUNK), -np.inf, device=scores.device)
        columns = torch.zeros((queries, max(1, most), CHUNK), dtype=torch.int64, device=scores.device)
        values[query, slot] = chunks[query, chunk].float()
        columns[query, slot] = chunk[:, None] * CHUNK + torch.arange(CHUNK, device=scores.device)
        return values.view(queries, -1), columns.view(queries, -1)

    @staticmethod
    def _candidates(values: np.ndarray, index: np.ndarray, floor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query, row) pairs of the prefilter's candidates that the bound cannot rule out."""
        pairs, slot = np.nonzero(np.isfinite(values) & (values >= floor[:, None]))
        return pairs, index[pairs, slot]

    def _above(self, q: torch.Tensor, lo: np.ndarray, hi: np.ndarray, floor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every (query, row) whose prefilter score reaches the query's floor (for queries whose candidates ran out
        before the bound did)."""
        pairs, rows = [], []
        threshold = torch.from_numpy(floor.astype(np.float32)).to(self.device)[:, None]
        for start, stop in self._blocks(lo, hi):
            p, r = torch.nonzero(self._block_scores(q, start, stop, lo, hi) >= threshold, as_tuple=True)
            pairs.append(p.cpu().numpy())
            rows.append(r.cpu().numpy() + start)
        return np.concatenate([np.zeros(0, np.int64), *pairs]), np.concatenate([np.zeros(0, np.int64), *rows])

    def _best(self, queries: np.ndarray, pairs: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best (query, row) pairs of each query by exact cosine, ties to the lower row."""
        exact = self.rows.scores(queries, pairs, rows)
        order = np.lexsort((rows, -exact, pairs))
        pairs, rows, exact = pairs[order], rows[order], exact[order]
        first = np.searchsorted(pairs, np.arange(len(queries)))
        rank = np.arange(len(pairs)) - first[pairs]
        top = rank < k
        out_rows = np.full((len(queries), k), -1, np.int64)
        out_scores = np.full((len(queries), k), np.nan)
        out_rows[pairs[top], rank[top]] = rows[top]
        out_scores[pairs[top], rank[top]] = exact[top]
        return out_rows, out_scores
