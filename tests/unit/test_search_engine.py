"""The exact search engine: top_hits equals a brute-force dense float64 computation, with and without a mass window."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

import nextims.search.engine as engine
import nextims.search.pooled as pooled
import nextims.search.prefilter as prefilter
from nextims.search.engine import top_hits
from nextims.search.index import build_index, open_index
from nextims.spectrum import Spectrum

MAX_MZ = 250


def random_library(path: Path, n: int, seed: int = 0):
    """An index of n random sparse spectra (masses 40..300, a tenth unknown)."""
    rng = np.random.default_rng(seed)
    spectra = []
    for i in range(n):
        mz = rng.choice(np.arange(1, MAX_MZ + 1), rng.integers(1, 25), replace=False).astype(float)
        mass = float(rng.integers(40, 300)) if rng.random() > 0.1 else None
        spectra.append(Spectrum(mz, rng.random(len(mz)) ** 3 * 999 + 1, {"name": f"e{i}", "mw": mass}))
    build_index(path, spectra, source="test", max_mz=MAX_MZ)
    return open_index(path)


def noisy_queries(dense: np.ndarray, count: int, seed: int = 1) -> np.ndarray:
    """Unit queries near library rows (weights perturbed, a few peaks added)."""
    rng = np.random.default_rng(seed)
    q = dense[rng.integers(0, len(dense), count)] * (1 + 0.3 * rng.random((count, dense.shape[1])))
    q += 0.05 * (rng.random(q.shape) < 0.03) * np.arange(dense.shape[1])
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def brute_force(queries: np.ndarray, dense: np.ndarray, k: int, allowed: np.ndarray | None = None):
    """Top-k by one dense float64 product among rows sharing a bin with the query, ties to the lower row, -1 / NaN
    padding."""
    scores = queries.astype(np.float64) @ dense.T
    scores[scores <= 0] = -np.inf
    if allowed is not None:
        scores[~allowed] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    best = np.take_along_axis(scores, order, 1)
    return np.where(np.isfinite(best), order, -1), np.where(np.isfinite(best), best, np.nan)


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks far smaller than the library and the query set, so that the running top-k is merged many times."""
    monkeypatch.setattr(prefilter, "ROW_BLOCK", 256)
    monkeypatch.setattr(prefilter, "QUERY_BLOCK", 16)
    monkeypatch.setattr(pooled, "BLOCK", 64)


def test_top_hits_equal_brute_force(tmp_path: Path, small_blocks: None) -> None:
    index = random_library(tmp_path / "lib.h5", 3000)
    dense = index.dense_weights(0, len(index))
    queries = noisy_queries(dense, 70)
    rows, cosines = top_hits(queries, index, 10)
    want_rows, want_cosines = brute_force(queries, dense, 10)
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_allclose(cosines, want_cosines, rtol=1e-12)
    assert rows.shape == (70, 10) and rows.dtype == np.int64 and (np.diff(cosines, axis=1) <= 0).all()


def test_mass_window_restricts_candidates_and_pads(tmp_path: Path, small_blocks: None) -> None:
    index = random_library(tmp_path / "lib.h5", 3000, seed=2)
    dense = index.dense_weights(0, len(index))
    queries = noisy_queries(dense, 40, seed=3)
    masses = np.random.default_rng(4).integers(40, 300, len(queries)).astype(float)
    masses[:3] = [-1, np.nan, 1000]  # unknown: no window; 1000: no candidate at all
    library = index.mass.astype(float)
    known = np.isfinite(masses) & (masses >= 0)
    for window in (0.0, 5.0):
        allowed = (np.abs(library[None, :] - masses[:, None]) <= window) & (library >= 0)[None, :]
        allowed |= ~known[:, None]
        rows, cosines = top_hits(queries, index, 15, masses, window)
        want_rows, want_cosines = brute_force(queries, dense, 15, allowed)
        np.testing.assert_array_equal(rows, want_rows)
        np.testing.assert_allclose(cosines, want_cosines, rtol=1e-12)
        assert (rows[2] == -1).all() and np.isnan(cosines[2]).all()
        assert (index.mass[rows[3:][rows[3:] >= 0]] >= 0).all()
        # window 0: about 10 entries share a nominal mass, so most queries get fewer than 15 hits (padded)
        assert (rows[3:] == -1).any() == (window == 0)
    np.testing.assert_array_equal(top_hits(queries[:2], index, 10, masses[:2], 5.0)[0], top_hits(queries[:2], index, 10)[0])


def test_ties_go_to_the_lower_row_across_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # single-peak entries (weight exactly 1): the query's cosine with each is its weight at that bin, exactly; their
    # masses fall as the rows rise, so the search's mass order is the reverse of the row order
    bins = [5, 7, 5, 9, 5, 7, 5]
    build_index(tmp_path / "ties.h5", [Spectrum(np.array([float(b)]), np.array([1.0]), {"mw": 100.0 - i})
                                       for i, b in enumerate(bins)], max_mz=10)
    index = open_index(tmp_path / "ties.h5")
    query = np.zeros((1, 11), np.float32)
    query[0, 5], query[0, 7] = 0.6, 0.8
    for block, kind in itertools.product((1, 2, 3, 100), ("pooled", "dense")):
        monkeypatch.setattr(prefilter, "ROW_BLOCK", block)
        monkeypatch.setattr(pooled, "BLOCK", block)
        engine.index_search.cache_clear()
        rows, cosines = top_hits(query, index, 9, engine=kind)
        assert rows[0].tolist() == [1, 5, 0, 2, 4, 6, -1, -1, -1]  # row 3 shares no bin: no hit
        np.testing.assert_allclose(cosines[0][:6], np.float32([0.8, 0.8, 0.6, 0.6, 0.6, 0.6]))
        assert np.isnan(cosines[0][6:]).all()
        assert top_hits(query, index, 3, engine=kind)[0][0].tolist() == [1, 5, 0]


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    index = random_library(tmp_path / "lib.h5", 5)
    with pytest.raises(ValueError, match=r"\(B, 251\)"):
        top_hits(np.zeros((2, 100)), index, 3)
    with pytest.raises(ValueError, match="query_masses"):
        top_hits(np.zeros((2, 251)), index, 3, mass_window=5)
