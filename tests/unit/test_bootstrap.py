"""The bootstrap over compounds: resampling whole compounds, intervals, paired error ratios."""

import numpy as np
import pytest

from nextims.evaluation.bootstrap import Interval, compound_weights, error_ratio_interval, recall_interval


def test_weights_count_each_drawn_compound_for_all_its_queries() -> None:
    compounds = np.array([7, 7, 7, 3, 5])
    w = compound_weights(compounds, resamples=300, seed=1)
    assert w.shape == (300, 5)
    # three compounds drawn per resample; the three queries of compound 7 always share one weight
    np.testing.assert_array_equal(w[:, [0, 3, 4]].sum(axis=1), 3)
    np.testing.assert_array_equal(w[:, 0], w[:, 1])
    np.testing.assert_array_equal(w[:, 0], w[:, 2])
    np.testing.assert_array_equal(w, compound_weights(compounds, resamples=300, seed=1))


def test_recall_resamples_whole_compounds() -> None:
    # compound A: 3 queries, all hits; compound B: 1 query, a miss. Drawing compounds, a resample's recall can
    # only be 1 (AA), 0.75 (AB) or 0 (BB); resampling queries one by one would also give 0.5 and 0.25.
    compounds = np.array([0, 0, 0, 1])
    hits = np.array([True, True, True, False])
    w = compound_weights(compounds, resamples=500, seed=0)
    recalls = set(np.round((w @ hits) / w.sum(axis=1), 6))
    assert recalls <= {0.0, 0.75, 1.0} and len(recalls) == 3
    out = recall_interval(hits, w)
    assert out.value == 0.75 and out.low == 0.0 and out.high == 1.0


def test_certain_results_have_no_spread() -> None:
    w = compound_weights(np.arange(20) // 2, resamples=100, seed=0)
    assert recall_interval(np.ones(20, bool), w) == Interval(1.0, 1.0, 1.0)
    assert error_ratio_interval(np.zeros(20, bool), np.zeros(20, bool), w) == Interval(1.0, 1.0, 1.0)


def test_error_ratio_is_paired_and_by_hand() -> None:
    rng = np.random.default_rng(0)
    compounds = np.repeat(np.arange(200), 2)
    reference = rng.random(400) < 0.8
    better = reference | (rng.random(400) < 0.5)
    w = compound_weights(compounds, resamples=1000, seed=0)
    out = error_ratio_interval(better, reference, w, level=0.9)
    assert out.value == pytest.approx((~better).sum() / (~reference).sum())
    assert out.low <= out.value <= out.high < 1.0
    # a model no better than the reference, query for query, is never below it in any resample
    worse = reference & (rng.random(400) < 0.9)
    assert error_ratio_interval(worse, reference, w).low >= 1.0


def test_bad_inputs_are_refused() -> None:
    w = compound_weights(np.arange(4), resamples=10, seed=0)
    with pytest.raises(ValueError, match="different queries"):
        error_ratio_interval(np.ones(4, bool), np.ones(3, bool), w)
    with pytest.raises(ValueError, match="level"):
        recall_interval(np.ones(4, bool), w, level=95)
    with pytest.raises(ValueError, match="resamples"):
        compound_weights(np.arange(4), resamples=0, seed=0)
    with pytest.raises(ValueError, match="no queries"):
        compound_weights(np.array([], dtype=int), resamples=10, seed=0)
    assert np.isnan(error_ratio_interval(np.zeros(4, bool), np.ones(4, bool), w).value)
