"""Exact top-k cosine search over a large sparse library, fast: a low-precision dense prefilter whose error is
bounded, then exact rescoring of every entry the bound cannot rule out.

The library's weighted unit vectors are held densely in bfloat16 (2 bytes a bin; the matrix units of recent CPUs
and GPUs multiply these several times faster than float32). Spectra are non-negative, so with unit roundoff u of the
storage type every stored entry is off by at most u of itself, and a prefilter score p differs from the exact cosine
s by at most E s, E = (1 + u)^2 (1 + float32 accumulation) (1 + the product's rounding) - 1 (about 3u). With p_k the
k-th best prefilter score, the exact k-th best is at least p_k / (1 + E), so an entry whose prefilter score is below
p_k (1 - E) / (1 + E) cannot be among the exact top k; every other entry is rescored exactly in float64 from the
stored sparse weights, so the result equals an exact dense computation (ties broken by the lower row). Entries
sharing no bin with a query (cosine 0, and then prefilter score 0) are no hits.

The matrix holds the library in any given row order (by molecular mass, so that a mass window is a slice of it), and
only the bins below a width that covers all but a few rows (experimental spectra heavier than any predicted one would
otherwise double every product); those few rows are scored exactly for every query.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from nextims.data.sites import ragged_rows
from nextims.search.kernels import exact_scores

# library rows scored per matrix product, with the queries whose range meets them (smaller: less of a mass window's
# neighbours multiplied for nothing; larger: less ranking per row; 32768 is best for both on 2 cores at 1M rows)
ROW_BLOCK = 32768
# queries searched together (sorted by their row range, so that a group's ranges overlap)
QUERY_BLOCK = 1024
# columns of a block's scores summarised by their best: only a query's best chunks can hold its best scores
CHUNK = 64
# prefilter candidates kept per query before the bound is checked (more are gathered for a query that needs them)
CANDIDATES = 64
# the dense width leaves out at most this share of the rows (their highest bin beyond it), rounded up to WIDTH_STEP
TALL_SHARE = 1e-3
WIDTH_STEP = 64
_PRECISION = {"bfloat16": (torch.bfloat16, 2.0 ** -8), "float32": (torch.float32, 2.0 ** -24)}
# what `precision` may be
PRECISIONS = ("auto", *_PRECISION)


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


def relative_error(precision: str, width: int) -> float:
    """The largest relative difference between a prefilter score and the exact product of two non-negative vectors:
    storage rounding of both (u of each entry), float32 products and accumulation over `width` non-negative terms,
    and the product's own rounding to the storage type."""
    u = _PRECISION[precision][1]
    single = 2.0 ** -24
    accumulation = width * single / (1 - width * single)
    return (1 + u) ** 3 * (1 + single) * (1 + accumulation) - 1


@dataclass
class SparseRows:
    """Weighted unit vectors in CSR form: row i holds weights[indptr[i]:indptr[i+1]] at bins of the same slice."""

    indptr: np.ndarray
    bins: np.ndarray
    weights: np.ndarray

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def dense_rows(self, chosen: np.ndarray, width: int) -> np.ndarray:
        """The chosen rows, in that order, as a dense float32 (len(chosen), width) array (bins at or above width
        left out)."""
        entries, owner = ragged_rows(self.indptr, chosen)
        bins = np.asarray(self.bins[entries], dtype=np.int64)
        keep = bins < width
        out = np.zeros((len(chosen), width), np.float32)
        out[owner[keep], bins[keep]] = np.asarray(self.weights[entries[keep]])
        return out

    def top_bins(self) -> np.ndarray:
        """Per row, its highest bin (-1 for a row without entries)."""
        out = np.full(len(self), -1, np.int64)
        filled = np.flatnonzero(np.diff(self.indptr) > 0)
        for start in range(0, len(filled), ROW_BLOCK):
            part = filled[start:start + ROW_BLOCK]
            a, b = int(self.indptr[part[0]]), int(self.indptr[part[-1] + 1])
            bins = np.asarray(self.bins[a:b])
            out[part] = np.maximum.reduceat(bins, np.asarray(self.indptr[part], dtype=np.int64) - a)
        return out

    def scores(self, queries: np.ndarray, pairs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact float64 cosines of queries[pairs[j]] with library row rows[j]."""
        out = np.zeros(len(rows))
        exact_scores(np.asarray(self.indptr, np.int64), np.asarray(self.bins), np.asarray(self.weights),
                     np.ascontiguousarray(queries, np.float64), np.asarray(pairs, np.int64), np.asarray(rows, np.int64),
                     out)
        return out


class LibrarySearch:
    """What the exact searches share: the library rows in matrix order, the dense width and the few tall rows beyond
    it (scored exactly for every query), the query groups of `top_k` and the final ranking. A subclass finds each
    group's candidates (`_group_top_k`).

    order: the library rows in matrix order (default: as stored); positions in that order are what `top_k`'s ranges
    refer to, and it returns library rows. dense_width: the bins held densely (default: all but TALL_SHARE of the
    rows fit); rows with a bin beyond it are scored exactly for every query instead."""

    def __init__(self, rows: SparseRows, order: np.ndarray | None = None, dense_width: int | None = None) -> None:
        self.rows = rows
        self.order = np.arange(len(rows), dtype=np.int64) if order is None else np.asarray(order, np.int64)
        if self.order.shape != (len(rows),) or not np.array_equal(np.bincount(self.order, minlength=len(rows)),
                                                                   np.ones(len(rows), np.int64)):
            raise ValueError(f"order: expected a permutation of the {len(rows)} library rows")
        top = rows.top_bins()[self.order]
        self.width = int(dense_width) if dense_width is not None else _dense_width(top)
        self.tall = np.flatnonzero(top >= self.width)
        self.is_tall = np.zeros(len(rows), bool)
        self.is_tall[self.tall] = True
        self.tall_matrix = rows.dense_rows(self.order[self.tall], int(top.max(initial=0)) + 1).astype(np.float64)
        self.fallbacks = 0

    def dense_blocks(self, step: int) -> Iterator[tuple[int, int, np.ndarray]]:
        """(start, stop, rows start..stop in matrix order as a dense float32 array below the dense width), `step` rows
        at a time; ValueError for negative weights (the bounds hold for spectra, non-negative, only)."""
        for start in range(0, len(self.rows), step):
            stop = min(len(self.rows), start + step)
            block = self.rows.dense_rows(self.order[start:stop], self.width)
            if block.size and block.min() < 0:
                raise ValueError(f"library rows {start}..{stop} (in matrix order): negative weights; the search's "
                                 "bounds hold for spectra (non-negative) only")
            yield start, stop, block

    def top_k(self, queries: np.ndarray, k: int, lo: np.ndarray | None = None,
              hi: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """For unit query vectors (B, any width; float64, non-negative), the k library rows of highest exact cosine
        among the rows at positions lo[i]..hi[i] of the matrix order (default: all) that share a bin with the query,
        best first, ties to the lower library row, and those cosines; -1 and NaN pad a query with fewer."""
        queries = np.asarray(queries, dtype=np.float64)
        if queries.size and queries.min() < 0:
            raise ValueError("queries: negative weights; spectra are non-negative")
        lo = np.zeros(len(queries), np.int64) if lo is None else np.asarray(lo, np.int64)
        hi = np.full(len(queries), len(self.rows), np.int64) if hi is None else np.asarray(hi, np.int64)
        rows = np.full((len(queries), k), -1, np.int64)
        scores = np.full((len(queries), k), np.nan)
        self.fallbacks = 0
        order = np.lexsort((hi, lo))  # a group's ranges overlap: its blocks are met by many of its queries
        for start in range(0, len(queries), QUERY_BLOCK):
            group = order[start:start + QUERY_BLOCK]
            rows[group], scores[group] = self._group_top_k(queries[group], k, lo[group], hi[group])
        return rows, scores

    def _group_top_k(self, queries: np.ndarray, k: int, lo: np.ndarray, hi: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _ranked(self, queries: np.ndarray, k: int, lo: np.ndarray, hi: np.ndarray, pairs: np.ndarray,
                positions: np.ndarray, floor: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The k best of the candidate (query, position) pairs, each scored exactly, with every tall row in range;
        floor: per query, an exact cosine that at least k of its rows reach (rows below it, candidates or tall, are
        dropped before ranking)."""
        narrow = ~self.is_tall[positions]
        pairs, positions = pairs[narrow], positions[narrow]
        exact = self.rows.scores(queries, pairs, self.order[positions])
        tall_pairs, tall_rows, tall_exact = self._tall_scores(queries, lo, hi)
        if floor is not None:
            floor = floor * (1 - 1e-12)  # tall rows' cosines come from a matrix product: the last bits may differ
            reach, tall_reach = exact >= floor[pairs], tall_exact >= floor[tall_pairs]
            pairs, positions, exact = pairs[reach], positions[reach], exact[reach]
            tall_pairs, tall_rows, tall_exact = tall_pairs[tall_reach], tall_rows[tall_reach], tall_exact[tall_reach]
        return self._best(np.concatenate([pairs, tall_pairs]), np.concatenate([positions, tall_rows]),
                          np.concatenate([exact, tall_exact]), len(queries), k)

    def _tall_scores(self, queries: np.ndarray, lo: np.ndarray, hi: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query, position, exact cosine) of every tall row within each query's range that shares a bin with it."""
        width = min(queries.shape[1], self.tall_matrix.shape[1])
        exact = queries[:, :width] @ self.tall_matrix[:, :width].T
        inside = (self.tall[None, :] >= lo[:, None]) & (self.tall[None, :] < hi[:, None]) & (exact > 0)
        pairs, slot = np.nonzero(inside)
        return pairs, self.tall[slot], exact[pairs, slot]

    def _best(self, pairs: np.ndarray, positions: np.ndarray, exact: np.ndarray, queries: int, k: int
              ) -> tuple[np.ndarray, np.ndarray]:
        """The k best (query, position) pairs of each query by exact cosine (those above 0), as library rows, ties to
        the lower row."""
        positive = exact > 0
        pairs, positions, exact = pairs[positive], positions[positive], exact[positive]
        rows = self.order[positions]
        order = np.lexsort((rows, -exact, pairs))
        pairs, rows, exact = pairs[order], rows[order], exact[order]
        first = np.searchsorted(pairs, np.arange(queries))
        rank = np.arange(len(pairs)) - first[pairs]
        top = rank < k
        out_rows = np.full((queries, k), -1, np.int64)
        out_scores = np.full((queries, k), np.nan)
        out_rows[pairs[top], rank[top]] = rows[top]
        out_scores[pairs[top], rank[top]] = exact[top]
        return out_rows, out_scores


class Prefilter(LibrarySearch):
    """A library's weighted unit vectors as a dense low-precision matrix on a device (CPU or GPU), with the exact
    sparse rows they came from; `top_k` gives exact results. order and dense_width: see LibrarySearch."""

    def __init__(self, rows: SparseRows, precision: str = "auto", device: str | torch.device = "cpu",
                 order: np.ndarray | None = None, dense_width: int | None = None) -> None:
        super().__init__(rows, order, dense_width)
        self.device = torch.device(device)
        self.precision = choose_precision(precision, self.device)
        dtype = _PRECISION[self.precision][0]
        self.matrix = torch.empty((len(rows), self.width), dtype=dtype, device=self.device)
        for start, stop, block in self.dense_blocks(ROW_BLOCK):
            self.matrix[start:stop] = torch.from_numpy(block).to(self.device, dtype)
        self.error = relative_error(self.precision, self.width)

    def _group_top_k(self, queries: np.ndarray, k: int, lo: np.ndarray, hi: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        """top_k for one group of queries."""
        q = self.query_tensor(queries)
        keep = max(k, CANDIDATES)
        values, index = self._prefilter(q, lo, hi, keep)
        kth = values[:, k - 1]
        floor = np.where(kth > 0, kth * (1 - self.error) / (1 + self.error), 0.0)
        # more rows than were kept may reach the floor: gathered in a second pass
        short = np.flatnonzero((values[:, -1] > 0) & (values[:, -1] >= floor))
        pairs, rows = self._candidates(values, index, floor)
        if len(short):
            extra_pairs, extra_rows = self._above(q[short], lo[short], hi[short], floor[short])
            drop = np.isin(pairs, short)
            pairs = np.concatenate([pairs[~drop], short[extra_pairs]])
            rows = np.concatenate([rows[~drop], extra_rows])
        self.fallbacks += len(short)
        return self._ranked(queries, k, lo, hi, pairs, rows)

    def query_tensor(self, queries: np.ndarray) -> torch.Tensor:
        """Queries as the matrix multiplies them: cut or padded to its width (bins beyond it meet no peak of the
        matrix), in its type, on its device."""
        out = np.zeros((len(queries), self.width), np.float32)
        width = min(self.width, queries.shape[1])
        out[:, :width] = queries[:, :width]
        return torch.from_numpy(out).to(self.device, self.matrix.dtype)

    def _blocks(self, lo: np.ndarray, hi: np.ndarray) -> Iterator[tuple[int, int, np.ndarray]]:
        """(start, stop, queries) of the row blocks covering the queries' ranges, each with the queries whose range
        meets it."""
        first, last = int(lo.min(initial=0)), int(hi.max(initial=0))
        for start in range(first, last, ROW_BLOCK):
            stop = min(last, start + ROW_BLOCK)
            meets = np.flatnonzero((lo < stop) & (hi > start))
            if len(meets):
                yield start, stop, meets

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
        best_v = torch.full((len(q), keep), -np.inf, device=self.device)
        best_i = torch.zeros((len(q), keep), dtype=torch.int64, device=self.device)
        for start, stop, meets in self._blocks(lo, hi):
            sel = torch.from_numpy(meets).to(self.device)
            v, i = _block_best(self._block_scores(q[sel], start, stop, lo[meets], hi[meets]), keep)
            merged_v, j = torch.topk(torch.cat([best_v[sel], v.float()], 1), keep, dim=1)
            best_i[sel] = torch.gather(torch.cat([best_i[sel], i + start], 1), 1, j)
            best_v[sel] = merged_v
        return best_v.cpu().numpy().astype(np.float64), best_i.cpu().numpy()

    @staticmethod
    def _candidates(values: np.ndarray, index: np.ndarray, floor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query, row) pairs of the prefilter's candidates that the bound cannot rule out."""
        pairs, slot = np.nonzero((values > 0) & (values >= floor[:, None]))
        return pairs, index[pairs, slot]

    def _above(self, q: torch.Tensor, lo: np.ndarray, hi: np.ndarray, floor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every (query, row) whose prefilter score reaches the query's floor (for queries whose candidates ran out
        before the bound did)."""
        pairs, rows = [], []
        threshold = torch.from_numpy(floor.astype(np.float32)).to(self.device)[:, None]
        for start, stop, meets in self._blocks(lo, hi):
            sel = torch.from_numpy(meets).to(self.device)
            scores = self._block_scores(q[sel], start, stop, lo[meets], hi[meets])
            p, r = torch.nonzero(scores >= threshold[sel], as_tuple=True)
            pairs.append(meets[p.cpu().numpy()])
            rows.append(r.cpu().numpy() + start)
        return np.concatenate([np.zeros(0, np.int64), *pairs]), np.concatenate([np.zeros(0, np.int64), *rows])


def _block_best(scores: torch.Tensor, keep: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each query's `keep` best scores of a block and their columns: drawn from its `keep` chunks of CHUNK columns
    with the highest maxima (any other chunk holds nothing above the keep-th of those maxima)."""
    queries, width = scores.shape
    whole = width // CHUNK
    if whole <= keep or width % CHUNK:
        return torch.topk(scores, min(keep, width), dim=1)
    chunks = scores.view(queries, whole, CHUNK)
    _, chunk = torch.topk(chunks.amax(dim=2), keep, dim=1)
    picked = torch.gather(chunks, 1, chunk[:, :, None].expand(-1, -1, CHUNK)).view(queries, -1)
    values, j = torch.topk(picked, keep, dim=1)
    return values, torch.gather(chunk, 1, j // CHUNK) * CHUNK + j % CHUNK


def _dense_width(top: np.ndarray) -> int:
    """The narrowest multiple of WIDTH_STEP holding every bin of all but TALL_SHARE of the rows."""
    if not len(top):
        return WIDTH_STEP
    kept = max(1, int(np.ceil(len(top) * (1 - TALL_SHARE))))
    cover = int(np.partition(top, kept - 1)[kept - 1]) + 1
    return max(WIDTH_STEP, -(-cover // WIDTH_STEP) * WIDTH_STEP)
