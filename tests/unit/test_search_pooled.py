"""The pooled-bound search: its bound never falls below the exact cosine, and queries whose first candidates fall short
still get the exact top-k (the cases both engines share are in test_search_prefilter)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nextims.search.pooled as pooled
from nextims.search.engine import choose_engine
from nextims.search.pooled import PooledSearch, pooled_norms
from tests.unit.test_search_prefilter import brute_force, noisy_queries, random_rows


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 64 rows (many per library) and query groups smaller than the query set."""
    monkeypatch.setattr(pooled, "BLOCK", 64)
    monkeypatch.setattr("nextims.search.prefilter.QUERY_BLOCK", 50)


def test_the_pooled_bound_is_never_below_the_exact_cosine() -> None:
    rows, dense = random_rows(400, seed=5)
    queries = noisy_queries(dense, 50, seed=6)
    bound = pooled_norms(queries).astype(np.float64) @ pooled_norms(dense).astype(np.float64).T
    exact = queries @ dense.T
    assert (bound >= exact).all() and ((bound > 0) | (exact == 0)).all()
    assert (pooled_norms(dense).astype(np.float64) >= np.sqrt((dense[:, 0::2] ** 2 + dense[:, 1::2] ** 2))).all()
    # one peak a pair: the bound is the cosine itself
    single = np.zeros((1, 120))
    single[0, [4, 9]] = 0.6, 0.8
    norms = pooled_norms(single)[0].astype(np.float64)
    assert np.flatnonzero(norms).tolist() == [2, 4] and 0 <= norms[2] - 0.6 < 1e-7 and 0 <= norms[4] - 0.8 < 1e-7


def test_queries_whose_seeds_fall_short_are_searched_in_full(small_blocks: None, monkeypatch) -> None:
    # one seed block and one seed row a hit: theta is then the k-th of k rows, often below the exact k-th best; and
    # a query sharing bins with fewer than k rows has no theta at all (every block it meets is rescanned)
    monkeypatch.setattr(pooled, "SEED_BLOCKS", 1)
    monkeypatch.setattr(pooled, "SEED_ROWS", 1)
    rows, dense = random_rows(1500, seed=3, duplicates=300)
    queries = noisy_queries(dense, 80, seed=4)
    queries[0] = 0
    queries[0, 119] = 1.0  # a bin few rows hold
    search = PooledSearch(rows)
    got_rows, got_scores = search.top_k(queries, 10)
    assert search.fallbacks >= 1
    want_rows, want_scores = brute_force(queries, dense, 10, np.zeros(80, np.int64), np.full(80, 1500))
    assert np.array_equal(got_rows, want_rows)
    np.testing.assert_allclose(got_scores, want_scores, rtol=0, atol=1e-12)


def test_negative_weights_are_refused() -> None:
    rows, dense = random_rows(50, seed=12)
    with pytest.raises(ValueError, match="negative"):
        PooledSearch(rows).top_k(-dense[:2], 3)
    rows.weights[0] = -rows.weights[0]
    with pytest.raises(ValueError, match="negative"):
        PooledSearch(rows)


def test_engine_is_chosen_or_refused() -> None:
    assert choose_engine("auto", "cpu") == "pooled" and choose_engine("dense", "cpu") == "dense"
    if torch.cuda.is_available():
        assert choose_engine("auto", "cuda") == "dense"
    with pytest.raises(ValueError, match="pooled, dense"):
        choose_engine("sparse", "cpu")
