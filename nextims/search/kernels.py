"""Compiled loops of the exact search (numba, run in parallel threads): the pooled bound over blocks of library
rows (nextims.search.pooled) and exact float64 cosines of (query, library row) pairs from CSR rows."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(fastmath=True, cache=True)
def accumulate(block: np.ndarray, top: int, qpairs: np.ndarray, qvalues: np.ndarray, start: int, stop: int,
               out: np.ndarray) -> None:  # pragma: no cover - compiled
    """out[r] = sum over the query's pairs (qpairs[start:stop], ascending) up to the block's top pair of value *
    block[pair, r]."""
    end = start
    while end < stop and qpairs[end] <= top:
        end += 1
    if end - start < 4:
        out[:] = 0
        p = start
    else:  # the first four pairs set out: no separate pass to clear it
        c0, c1, c2, c3 = block[qpairs[start]], block[qpairs[start + 1]], block[qpairs[start + 2]], block[qpairs[start + 3]]
        v0, v1, v2, v3 = qvalues[start], qvalues[start + 1], qvalues[start + 2], qvalues[start + 3]
        for r in range(out.shape[0]):
            out[r] = v0 * c0[r] + v1 * c1[r] + v2 * c2[r] + v3 * c3[r]
        p = start + 4
    while p + 4 <= end:
        c0, c1, c2, c3 = block[qpairs[p]], block[qpairs[p + 1]], block[qpairs[p + 2]], block[qpairs[p + 3]]
        v0, v1, v2, v3 = qvalues[p], qvalues[p + 1], qvalues[p + 2], qvalues[p + 3]
        for r in range(out.shape[0]):
            out[r] += v0 * c0[r] + v1 * c1[r] + v2 * c2[r] + v3 * c3[r]
        p += 4
    left = end - p  # 0 to 3 pairs: one more pass
    if left == 3:
        c0, c1, c2 = block[qpairs[p]], block[qpairs[p + 1]], block[qpairs[p + 2]]
        v0, v1, v2 = qvalues[p], qvalues[p + 1], qvalues[p + 2]
        for r in range(out.shape[0]):
            out[r] += v0 * c0[r] + v1 * c1[r] + v2 * c2[r]
    elif left == 2:
        c0, c1, v0, v1 = block[qpairs[p]], block[qpairs[p + 1]], qvalues[p], qvalues[p + 1]
        for r in range(out.shape[0]):
            out[r] += v0 * c0[r] + v1 * c1[r]
    elif left == 1:
        c0, v0 = block[qpairs[p]], qvalues[p]
        for r in range(out.shape[0]):
            out[r] += v0 * c0[r]


@njit(parallel=True, fastmath=True, cache=True)
def block_best(blocks: np.ndarray, block_top: np.ndarray, qptr: np.ndarray, qpairs: np.ndarray,
               qvalues: np.ndarray, lo: np.ndarray, hi: np.ndarray, best: np.ndarray) -> None:  # pragma: no cover
    """best[i, b]: the highest bound of query i among block b's rows inside lo[i]..hi[i] (left as it is for a block
    outside the range)."""
    count, _, size = blocks.shape
    for b in prange(count):
        bound = np.empty(size, np.float32)
        start = b * size
        for i in range(len(qptr) - 1):
            first, last = max(lo[i] - start, 0), min(hi[i] - start, size)
            if first >= last:
                continue
            accumulate(blocks[b], block_top[b], qpairs, qvalues, qptr[i], qptr[i + 1], bound)
            top = np.float32(0)
            for r in range(first, last):
                top = max(top, bound[r])
            best[i, b] = top


@njit(parallel=True, fastmath=True, cache=True)
def block_hits(blocks: np.ndarray, block_top: np.ndarray, qptr: np.ndarray, qpairs: np.ndarray, qvalues: np.ndarray,
               lo: np.ndarray, hi: np.ndarray, floor: np.ndarray, query: np.ndarray, block: np.ndarray,
               found: np.ndarray, counts: np.ndarray) -> None:  # pragma: no cover - compiled
    """found[t, :counts[t]]: the positions of block block[t]'s rows inside query query[t]'s range whose bound is
    positive and reaches floor[query[t]]."""
    size = blocks.shape[2]
    for t in prange(len(query)):
        i, b = query[t], block[t]
        bound = np.empty(size, np.float32)
        accumulate(blocks[b], block_top[b], qpairs, qvalues, qptr[i], qptr[i + 1], bound)
        start = b * size
        count = 0
        for r in range(max(lo[i] - start, 0), min(hi[i] - start, size)):
            if bound[r] > 0 and bound[r] >= floor[i]:
                found[t, count] = start + r
                count += 1
        counts[t] = count


@njit(parallel=True, cache=True)
def exact_scores(indptr: np.ndarray, bins: np.ndarray, weights: np.ndarray, queries: np.ndarray, query: np.ndarray,
                  rows: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """out[t]: the float64 cosine of queries[query[t]] with library row rows[t] (its bins beyond the queries' width
    meet nothing)."""
    width = queries.shape[1]
    for t in prange(len(query)):
        total = 0.0
        q = queries[query[t]]
        for e in range(indptr[rows[t]], indptr[rows[t] + 1]):
            if bins[e] < width:
                total += q[bins[e]] * np.float64(weights[e])
        out[t] = total


@njit(parallel=True, fastmath=True, cache=True)
def seed_rows(blocks: np.ndarray, block_top: np.ndarray, qptr: np.ndarray, qpairs: np.ndarray, qvalues: np.ndarray,
              lo: np.ndarray, hi: np.ndarray, chosen: np.ndarray, top_bound: np.ndarray,
              top_position: np.ndarray) -> None:  # pragma: no cover - compiled
    """top_bound[i], top_position[i]: the highest bounds of query i among the rows inside lo[i]..hi[i] of the blocks
    chosen[i] (-1 entries skipped), best first, and their positions (bounds stay -1 where fewer rows exist)."""
    _, _, size = blocks.shape
    keep = top_bound.shape[1]
    for i in prange(len(qptr) - 1):
        bound = np.empty(size, np.float32)
        for c in range(chosen.shape[1]):
            b = chosen[i, c]
            if b < 0:
                continue
            start = b * size
            first, last = max(lo[i] - start, 0), min(hi[i] - start, size)
            if first >= last:
                continue
            accumulate(blocks[b], block_top[b], qpairs, qvalues, qptr[i], qptr[i + 1], bound)
            for r in range(first, last):
                value = bound[r]
                if value <= top_bound[i, keep - 1]:
                    continue
                j = keep - 1
                while j > 0 and top_bound[i, j - 1] < value:
                    top_bound[i, j] = top_bound[i, j - 1]
                    top_position[i, j] = top_position[i, j - 1]
                    j -= 1
                top_bound[i, j] = value
                top_position[i, j] = start + r
