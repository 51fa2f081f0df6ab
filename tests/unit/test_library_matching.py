"""Library matching on a hand-built library with known ranks, and against a brute-force ranking."""

import numpy as np
import pytest

from nextims.evaluation import SIMILARITIES, library_matching, mass_filter_mask, rank_of_true, recall_at_k
from nextims.evaluation import library as library_mod
from nextims.evaluation.library import matching_ranks

B = 11


def peaks(*mz: int) -> np.ndarray:
    """A binned spectrum with unit peaks at the given m/z."""
    v = np.zeros(B)
    v[list(mz)] = 1.0
    return v


# L0 and L1 are identical; L2 shares m/z 5 with them; L3 is unrelated.
LIBRARY = np.stack([peaks(5), peaks(5), peaks(5, 6), peaks(8)])
LIBRARY_MASSES = np.array([100.0, 100.0, 110.0, 200.0])
# q0: L0 ties with L1. q1: unique best. q2: L2 is better and L1 ties with L0. q3: empty, ties with all.
QUERIES = np.stack([peaks(5), peaks(8), peaks(5, 6), np.zeros(B)])
QUERY_MASSES = np.array([100.0, 200.0, 98.0, 200.0])
TRUE = np.array([0, 3, 0, 3])


def test_ranks_by_hand_with_ties_against_the_model() -> None:
    np.testing.assert_array_equal(rank_of_true(QUERIES, LIBRARY, TRUE), [2, 1, 3, 4])
    np.testing.assert_array_equal(rank_of_true(QUERIES[:1], LIBRARY, [1]), [2])
    np.testing.assert_array_equal(rank_of_true(QUERIES[:1], LIBRARY[[0, 2, 3]], [0]), [1])


def test_mass_filter_changes_ranks() -> None:
    mask = mass_filter_mask(QUERY_MASSES, LIBRARY_MASSES, tolerance=5.0)
    np.testing.assert_array_equal(mask, [[1, 1, 0, 0], [0, 0, 0, 1], [1, 1, 0, 0], [0, 0, 0, 1]])
    # q2 loses the better L2 (mass 110 vs 98); q3 keeps only its true entry.
    np.testing.assert_array_equal(rank_of_true(QUERIES, LIBRARY, TRUE, candidate_mask=mask), [2, 1, 2, 1])


def test_true_entry_is_always_a_candidate() -> None:
    none = np.zeros((len(QUERIES), len(LIBRARY)), dtype=bool)
    np.testing.assert_array_equal(rank_of_true(QUERIES, LIBRARY, TRUE, candidate_mask=none), 1)


def test_mass_filter_tolerance_on_nominal_masses() -> None:
    mask = mass_filter_mask(np.array([100.4]), np.array([95.0, 105.4, 105.6, 94.4]), tolerance=5.0)
    np.testing.assert_array_equal(mask, [[True, True, False, False]])
    with pytest.raises(ValueError, match="finite"):
        mass_filter_mask(np.array([np.nan]), np.array([1.0]))


def test_recall_at_k_by_hand() -> None:
    assert recall_at_k(np.array([2, 1, 3, 4]), ks=(1, 2, 3, 5)) == {
        "recall@1": 0.25, "recall@2": 0.5, "recall@3": 0.75, "recall@5": 1.0}


def test_library_matching_by_hand() -> None:
    out = library_matching(QUERIES, LIBRARY, TRUE, QUERY_MASSES, LIBRARY_MASSES, ks=(1, 2, 3))
    assert out == {
        "recall@1": 0.25, "recall@2": 0.5, "recall@3": 0.75,
        "recall@1_mass5": 0.5, "recall@2_mass5": 1.0, "recall@3_mass5": 1.0,
        "n_queries": 4, "library_size": 4, "mean_rank": 2.5, "mean_rank_mass5": 1.5,
    }
    wide = library_matching(QUERIES, LIBRARY, TRUE, QUERY_MASSES, LIBRARY_MASSES, ks=(1,),
                            mass_tolerance=12.5)
    assert wide["recall@1_mass12.5"] == 0.5 and wide["mean_rank_mass12.5"] == 1.75


@pytest.mark.parametrize("name", sorted(SIMILARITIES))
def test_chunked_ranks_match_brute_force(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    library = rng.random((40, 60)) ** 4 * (rng.random((40, 60)) < 0.3)
    true = rng.integers(0, 40, 25)
    queries = library[true] + 2.0 * rng.random((25, 60)) * (rng.random((25, 60)) < 0.3)
    paired = SIMILARITIES[name].paired
    expected = []
    for q, t in zip(queries, true):
        row = paired(np.repeat(q[None], len(library), axis=0), library)
        expected.append(1 + sum(s >= row[t] for j, s in enumerate(row) if j != t))
    monkeypatch.setattr(library_mod, "QUERY_CHUNK", 4)
    ranks = rank_of_true(queries, library, true, similarity=name)
    np.testing.assert_array_equal(ranks, expected)
    assert 1 < ranks.max() and ranks.min() == 1


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="out of range"):
        rank_of_true(QUERIES, LIBRARY, np.array([0, 1, 2, 4]))
    with pytest.raises(ValueError, match="unknown similarity"):
        rank_of_true(QUERIES, LIBRARY, TRUE, similarity="dot")
    with pytest.raises(ValueError, match="candidate_mask"):
        rank_of_true(QUERIES, LIBRARY, TRUE, candidate_mask=np.ones((4, 3), dtype=bool))
    with pytest.raises(ValueError, match="one mass"):
        library_matching(QUERIES, LIBRARY, TRUE, QUERY_MASSES[:3], LIBRARY_MASSES)


@pytest.mark.parametrize("similarity", ["cosine", "wdp", "entropy"])
def test_a_library_in_parts_ranks_as_the_stacked_library(similarity: str) -> None:
    rng = np.random.default_rng(3)
    observed = (rng.random((40, 60)) * (rng.random((40, 60)) < 0.2)).astype(np.float32)
    observed[7] = observed[5]  # a tie, which must count against the query in both forms
    predicted = rng.random((25, 60)) * (rng.random((25, 60)) < 0.2)
    queries = np.concatenate([observed[:10].astype(np.float64), rng.random((15, 60))])
    true = rng.integers(0, 65, len(queries))
    q_mass, l_mass = rng.integers(50, 70, len(queries)), rng.integers(50, 70, 65)
    stacked = np.concatenate([observed.astype(np.float64), predicted])
    expected = matching_ranks(queries, stacked, true, q_mass, l_mass, similarity=similarity)
    parts = matching_ranks(queries, [observed, predicted], true, q_mass, l_mass, similarity=similarity)
    assert all(np.array_equal(a, b) for a, b in zip(expected, parts))
    assert np.array_equal(rank_of_true(queries, [observed, predicted], true, similarity),
                          rank_of_true(queries, stacked, true, similarity))
