"""Exact top-k cosine search on the CPU: a bound from pairs of adjacent bins, computed only at the query's peaks,
then exact rescoring of every entry the bound cannot rule out.

For a query q and a library row w (both non-negative unit vectors), Cauchy-Schwarz on each pair of bins g = {2j,
2j+1} gives q . w <= sum_g |q_g| |w_g| (the pooled bound). EI spectra rarely hold two different strong peaks one
m/z apart in both spectra, so the bound is tight: on the million-spectrum benchmark about 90 rows a query reach its
10th best exact cosine. The library's pair norms are held in float32, rounded up, in blocks of BLOCK rows stored
pair-major, so a query's bound over a block costs one pass over the pairs where the query has a peak (about 30),
not over all pairs; the blocks run in parallel threads (numba).

Search, per query: (1) the bound's highest value in every block; (2) the exact cosines of the 8k rows of highest
bound within the 4k blocks of highest bound: the k-th of them, theta, is a lower bound of the exact k-th best
cosine; (3) in every block whose highest bound reaches theta, the rows whose bound reaches it are rescored exactly
in float64. A row left out has a bound below theta, so its cosine is too, and the result equals an exact dense
computation (ties to the lower row). Float32 rounding of the bound is covered by a relative margin far above its
error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextims.search.kernels import block_best, block_hits, seed_rows
from nextims.search.prefilter import ROW_BLOCK, LibrarySearch, SparseRows

# adjacent bins pooled into one norm
POOL = 2
# library rows per block (the unit of the parallel scan and of the second pass)
BLOCK = 512
# the blocks of highest bound, and the rows of highest bound in them, whose exact cosines seed theta, per hit asked for
SEED_BLOCKS = 4
SEED_ROWS = 8
# relative margin on theta: float32 sums of at most 501 non-negative products are off by far less (~3e-5)
MARGIN = 1e-4
# (query, block) pairs rescanned at a time in the second pass
PAIRS_PER_PASS = 8192


def pooled_norms(dense: np.ndarray) -> np.ndarray:
    """Norms of each pair (POOL) of adjacent bins of dense (n, width) rows, as float32 rounded up (never below the
    float64 norm)."""
    width = dense.shape[1]
    padded = np.zeros((len(dense), -(-width // POOL) * POOL))
    padded[:, :width] = dense
    exact = np.sqrt((padded * padded).reshape(len(dense), -1, POOL).sum(axis=2))
    out = exact.astype(np.float32)
    low = out.astype(np.float64) < exact
    out[low] = np.nextafter(out[low], np.float32(np.inf))
    return out


@dataclass
class PooledBlocks:
    """The pooled norms of library rows in pair-major float32 blocks: blocks[b, g, r] is row b * size + r's norm at
    pair g; top[b] the block's highest pair holding any weight."""

    blocks: np.ndarray
    top: np.ndarray

    @classmethod
    def empty(cls, rows: int, width: int, size: int) -> "PooledBlocks":
        """Zero blocks for `rows` rows of `width` bins."""
        count = -(-rows // size)
        return cls(np.zeros((count, -(-width // POOL), size), np.float32), np.full(count, -1, np.int64))

    @property
    def size(self) -> int:
        """Rows per block."""
        return self.blocks.shape[2]

    def fill(self, start: int, dense: np.ndarray) -> None:
        """Set the rows from `start` (a multiple of the block size) to dense rows' pooled norms."""
        norms = pooled_norms(dense)
        for first in range(0, len(dense), self.size):
            block, part = (start + first) // self.size, norms[first:first + self.size]
            self.blocks[block, :, :len(part)] = part.T
            filled = np.flatnonzero(part.any(axis=0))
            self.top[block] = filled[-1] if len(filled) else -1

    def queries(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Queries' pooled norms below the blocks' width as CSR rows (pairs ascending, values rounded up)."""
        width = min(queries.shape[1], self.blocks.shape[1] * POOL)
        norms = pooled_norms(queries[:, :width])
        query, group = np.nonzero(norms > 0)
        qptr = np.zeros(len(queries) + 1, np.int64)
        qptr[1:] = np.cumsum(np.bincount(query, minlength=len(queries)))
        return qptr, group.astype(np.int64), norms[query, group]


class PooledSearch(LibrarySearch):
    """A library's pooled bound in float32 blocks, with the exact sparse rows; `top_k` gives exact results (order and
    dense_width: see LibrarySearch)."""

    def __init__(self, rows: SparseRows, order: np.ndarray | None = None, dense_width: int | None = None) -> None:
        super().__init__(rows, order, dense_width)
        self.pooled = PooledBlocks.empty(len(rows), self.width, BLOCK)
        for start, _, dense in self.dense_blocks(max(1, ROW_BLOCK // BLOCK) * BLOCK):  # whole blocks at a time
            self.pooled.fill(start, dense)
        self.precision = "float32"

    def _group_top_k(self, queries: np.ndarray, k: int, lo: np.ndarray, hi: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        """top_k for one group of queries."""
        pooled = self.pooled.queries(queries)
        best = np.full((len(queries), len(self.pooled.blocks)), -1.0, np.float32)
        block_best(self.pooled.blocks, self.pooled.top, *pooled, lo, hi, best)
        theta = self._theta(queries, k, lo, hi, pooled, best)
        floor = (theta * (1 - MARGIN)).astype(np.float32)
        pair_query, pair_block = np.nonzero((best > 0) & (best >= floor[:, None]))
        pairs, positions = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        for start in range(0, len(pair_query), PAIRS_PER_PASS):
            query, block = pair_query[start:start + PAIRS_PER_PASS], pair_block[start:start + PAIRS_PER_PASS]
            found = np.zeros((len(query), self.pooled.size), np.int64)
            counts = np.zeros(len(query), np.int64)
            block_hits(self.pooled.blocks, self.pooled.top, *pooled, lo, hi, floor, query, block, found, counts)
            slot, column = np.nonzero(np.arange(self.pooled.size)[None, :] < counts[:, None])
            pairs.append(query[slot])
            positions.append(found[slot, column])
        return self._ranked(queries, k, lo, hi, np.concatenate(pairs), np.concatenate(positions), theta)

    def _theta(self, queries: np.ndarray, k: int, lo: np.ndarray, hi: np.ndarray, query_pairs: tuple,
               best: np.ndarray) -> np.ndarray:
        """Per query, the k-th best exact cosine among the SEED_ROWS * k rows of highest bound in its SEED_BLOCKS * k
        blocks of highest bound (0 when fewer than k of them share a bin with it: then every block it meets is
        rescanned)."""
        seeds = min(SEED_BLOCKS * k, best.shape[1])
        chosen = np.argpartition(-best, seeds - 1, axis=1)[:, :seeds]
        chosen = np.where(np.take_along_axis(best, chosen, 1) > 0, chosen, -1)
        rows = SEED_ROWS * k
        bound = np.full((len(queries), rows), -1.0, np.float32)
        position = np.zeros((len(queries), rows), np.int64)
        seed_rows(self.pooled.blocks, self.pooled.top, *query_pairs, lo, hi, chosen, bound, position)
        pairs, slot = np.nonzero(bound > 0)
        exact = np.zeros((len(queries), rows))
        exact[pairs, slot] = self.rows.scores(queries, pairs, self.order[position[pairs, slot]])
        theta = -np.sort(-exact, axis=1)[:, k - 1]
        self.fallbacks += int((theta <= 0).sum())
        return np.maximum(theta, 0.0)
