"""The exact searches (the bounded low-precision prefilter, the pooled bound): top-k equals an exact dense float64
computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nextims.search.pooled as pooled
import nextims.search.prefilter as prefilter
from nextims.search.pooled import PooledSearch
from nextims.search.prefilter import LibrarySearch, Prefilter, SparseRows, choose_precision, relative_error

WIDTH = 120


def random_rows(n: int, seed: int = 0, duplicates: int = 0) -> tuple[SparseRows, np.ndarray]:
    """n random sparse unit rows (the last `duplicates` copy earlier ones: exact ties) and their dense float64 form."""
    rng = np.random.default_rng(seed)
    dense = np.zeros((n, WIDTH))
    for i in range(n - duplicates):
        bins = rng.choice(np.arange(1, WIDTH), rng.integers(2, 25), replace=False)
        dense[i, bins] = rng.random(len(bins)) ** 3 + 1e-3
    dense[n - duplicates:] = dense[rng.integers(0, n - duplicates, duplicates)]
    dense = (dense / np.linalg.norm(dense, axis=1, keepdims=True)).astype(np.float32)
    rows, bins = np.nonzero(dense)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
    return SparseRows(indptr, bins.astype(np.uint16), dense[rows, bins]), dense.astype(np.float64)


def noisy_queries(dense: np.ndarray, count: int, seed: int = 1) -> np.ndarray:
    """Unit queries near library rows (peaks perturbed, a few added), as an observed spectrum is near its entry."""
    rng = np.random.default_rng(seed)
    queries = dense[rng.integers(0, len(dense), count)] * (1 + 0.3 * rng.random((count, WIDTH)))
    queries += 0.05 * (rng.random((count, WIDTH)) < 0.05)
    return queries / np.linalg.norm(queries, axis=1, keepdims=True)


def brute_force(queries: np.ndarray, dense: np.ndarray, k: int, lo: np.ndarray, hi: np.ndarray,
                order: np.ndarray | None = None):
    """Exact top-k by dense float64 products among the rows at positions lo..hi of `order` (default: as stored)
    sharing a bin with the query, ties to the lower row, -1/NaN padding."""
    order = np.arange(len(dense)) if order is None else order
    scores = np.full((len(queries), len(dense)), -np.inf)
    position = np.empty(len(dense), np.int64)
    position[order] = np.arange(len(dense))
    inside = (position[None, :] >= lo[:, None]) & (position[None, :] < hi[:, None])
    scores[inside] = (queries @ dense.T)[inside]
    scores[scores <= 0] = -np.inf
    rows = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    values = np.take_along_axis(scores, rows, 1)
    return np.where(np.isfinite(values), rows, -1), np.where(np.isfinite(values), values, np.nan)


def engine(kind: str, rows: SparseRows, **options) -> LibrarySearch:
    """An exact search of rows: the pooled bound, or the dense prefilter at a precision."""
    return PooledSearch(rows, **options) if kind == "pooled" else Prefilter(rows, kind, **options)


@pytest.mark.parametrize("kind", ["bfloat16", "float32", "pooled"])
@pytest.mark.parametrize("windows", [False, True])
# chunks of 8: each query's best chunks searched (700: and the columns past the last whole chunk); 64: every score
@pytest.mark.parametrize("block,chunk", [(640, 8), (700, 8), (700, 64)])
def test_top_k_equals_exact_dense_computation(kind: str, windows: bool, block: int, chunk: int,
                                              monkeypatch) -> None:
    monkeypatch.setattr(prefilter, "ROW_BLOCK", block)  # several blocks, ranges that start and end inside them
    monkeypatch.setattr(prefilter, "CHUNK", chunk)
    monkeypatch.setattr(prefilter, "QUERY_BLOCK", 50)
    monkeypatch.setattr(pooled, "BLOCK", chunk)  # pooled: 375 or 47 blocks
    rows, dense = random_rows(3000, duplicates=40)
    queries = noisy_queries(dense, 160)
    rng = np.random.default_rng(2)
    lo = rng.integers(0, 2000, len(queries)) if windows else np.zeros(len(queries), np.int64)
    hi = np.minimum(lo + rng.integers(0, 1500, len(queries)), 3000) if windows else np.full(len(queries), 3000)
    got_rows, got_scores = engine(kind, rows).top_k(queries, 10, lo if windows else None, hi if windows else None)
    want_rows, want_scores = brute_force(queries, dense, 10, lo, hi)
    assert np.array_equal(got_rows, want_rows)
    np.testing.assert_allclose(got_scores, want_scores, rtol=0, atol=1e-12)
    if windows:
        assert (got_rows == -1).any()  # some ranges hold fewer than k rows


@pytest.mark.parametrize("kind", ["bfloat16", "pooled"])
@pytest.mark.parametrize("dense_width", [None, 64])  # 64: most rows beyond it, scored exactly for every query
def test_rows_in_another_order_and_rows_beyond_the_dense_width(kind: str, dense_width: int | None,
                                                               monkeypatch) -> None:
    monkeypatch.setattr(prefilter, "ROW_BLOCK", 640)
    monkeypatch.setattr(pooled, "BLOCK", 64)
    monkeypatch.setattr(prefilter, "CHUNK", 8)
    monkeypatch.setattr(prefilter, "QUERY_BLOCK", 30)
    rows, dense = random_rows(2000, seed=7, duplicates=30)
    queries = noisy_queries(dense, 120, seed=8)
    order = np.random.default_rng(9).permutation(2000)  # as a library sorted by mass would be
    rng = np.random.default_rng(10)
    lo = rng.integers(0, 1800, len(queries))
    hi = np.minimum(lo + rng.integers(0, 400, len(queries)), 2000)
    lo[:20], hi[:20] = 0, 2000  # open searches among windowed ones
    search = engine(kind, rows, order=order, dense_width=dense_width)
    assert (len(search.tall) > 1000) == (dense_width == 64)
    got_rows, got_scores = search.top_k(queries, 10, lo, hi)
    want_rows, want_scores = brute_force(queries, dense, 10, lo, hi, order)
    assert np.array_equal(got_rows, want_rows)
    np.testing.assert_allclose(got_scores, want_scores, rtol=0, atol=1e-12)


def test_dense_width_leaves_out_only_the_few_tall_rows() -> None:
    rows, _ = random_rows(3000, seed=11)
    assert Prefilter(rows, "float32").width == 128 and len(Prefilter(rows, "float32").tall) == 0
    assert prefilter._dense_width(np.r_[np.full(9990, 500), np.full(10, 900)]) == 512  # 0.1% heavier: exact
    assert prefilter._dense_width(np.r_[np.full(9900, 500), np.full(100, 900)]) == 960
    with pytest.raises(ValueError, match="permutation"):
        Prefilter(rows, "float32", order=np.zeros(3000, np.int64))


def test_queries_whose_candidates_run_out_are_completed_exactly(monkeypatch) -> None:
    monkeypatch.setattr(prefilter, "CANDIDATES", 10)  # as few kept as asked for: the bound often needs more
    rows, dense = random_rows(1500, seed=3, duplicates=300)  # many exact ties
    queries = noisy_queries(dense, 80, seed=4)
    search = Prefilter(rows, "bfloat16")
    got_rows, _ = search.top_k(queries, 10)
    assert search.fallbacks > 0
    want_rows, _ = brute_force(queries, dense, 10, np.zeros(80, np.int64), np.full(80, 1500))
    assert np.array_equal(got_rows, want_rows)


def test_the_relative_error_bound_holds_for_stored_vectors() -> None:
    rows, dense = random_rows(400, seed=5)
    queries = noisy_queries(dense, 50, seed=6)
    exact = queries @ dense.T
    for precision, dtype in (("bfloat16", torch.bfloat16), ("float32", torch.float32)):
        low = torch.from_numpy(queries).to(dtype) @ torch.from_numpy(dense).to(dtype).T  # as the prefilter multiplies
        error = np.abs(low.double().numpy() - exact)
        assert 0 < error.max() and (error <= relative_error(precision, WIDTH) * exact).all()
        assert ((low.double().numpy() > 0) == (exact > 0)).all()  # no bin shared: exactly 0 either way
    assert relative_error("bfloat16", 1001) < 0.012 and relative_error("float32", 1001) < 1e-4


def test_negative_weights_are_refused() -> None:
    rows, dense = random_rows(50, seed=12)
    with pytest.raises(ValueError, match="negative"):
        Prefilter(rows, "float32").top_k(-dense[:2], 3)
    rows.weights[0] = -rows.weights[0]
    with pytest.raises(ValueError, match="negative"):
        Prefilter(rows, "float32")


def test_precision_is_chosen_or_refused() -> None:
    assert choose_precision("auto", torch.device("cuda")) == "bfloat16"
    assert choose_precision("float32", torch.device("cpu")) == "float32"
    with pytest.raises(ValueError, match="float16"):
        choose_precision("float16", torch.device("cpu"))
