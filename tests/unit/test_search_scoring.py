"""Library-search scores on hand-computed spectra: weighted cosine, match factor, reverse match factor."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nextims.search.scoring import binned_scores, match_factor, query_vector, reverse_match_factor, weighted_unit
from nextims.spectrum import Spectrum


def binned(peaks: dict[int, float], width: int = 12) -> np.ndarray:
    out = np.zeros(width)
    for mz, intensity in peaks.items():
        out[mz] = intensity
    return out


def test_half_overlap_rounds_half_up_and_the_reverse_score_ignores_the_extra_query_peak() -> None:
    # query: m/z 1 (I 4) and m/z 2 (I 1): w = (sqrt(4) * 1, sqrt(1) * 2) = (2, 2); library: m/z 1 (I 1): w = (1, 0)
    # cosine = 2 / (sqrt(8) * 1) = 1 / sqrt(2); MF = 999 * 0.5 = 499.5 -> 500
    # reverse: the query at m/z 1 only, (2) . (1) = 2, 2^2 / (4 * 1) = 1 -> 999
    cosine, mf, rmf = binned_scores(binned({1: 4, 2: 1}), binned({1: 1}))
    assert cosine == pytest.approx(1 / math.sqrt(2)) and mf == 500 and rmf == 999


def test_partial_overlap_by_hand() -> None:
    # query: m/z 2 (I 9), 3 (I 4), 10 (I 1): w = (3*2, 2*3, 1*10) = (6, 6, 10), |w|^2 = 172
    # library: m/z 2 (I 1), 3 (I 1), 4 (I 16): w = (2, 3, 4*4) = (2, 3, 16), |w|^2 = 269
    # dot = 6*2 + 6*3 = 30; cosine^2 = 900 / (172 * 269) = 0.0194519 -> MF round(19.43) = 19
    # reverse: query at m/z 2, 3, 4 = (6, 6, 0), |w_q'|^2 = 72: 900 / (72 * 269) = 0.0464684 -> round(46.42) = 46
    cosine, mf, rmf = binned_scores(binned({2: 9, 3: 4, 10: 1}), binned({2: 1, 3: 1, 4: 16}))
    assert cosine == pytest.approx(30 / math.sqrt(172 * 269)) and mf == 19 and rmf == 46


def test_identical_and_disjoint_spectra() -> None:
    assert binned_scores(binned({5: 3, 7: 1}), binned({5: 30, 7: 10}))[1:] == (999, 999)
    cosine, mf, rmf = binned_scores(binned({5: 1}), binned({6: 1}))
    assert (cosine, mf, rmf) == (0.0, 0, 0)


def test_match_factor_of_arrays_clips_and_marks_nan() -> None:
    assert match_factor(np.array([1.0, 1.2, -0.1, np.nan, math.sqrt(0.5)])).tolist() == [999, 999, 0, -1, 500]


def test_reverse_match_factor_of_sparse_library_peaks() -> None:
    query = weighted_unit(binned({2: 9, 3: 4, 10: 1}))
    library = weighted_unit(binned({2: 1, 3: 1, 4: 16}))
    bins = np.array([2, 3, 4])
    assert reverse_match_factor(query, bins, library[bins]) == 46
    assert reverse_match_factor(query, np.array([11]), np.array([1.0])) == 0  # nothing in common


def test_query_vector_keeps_the_norm_of_peaks_above_max_mz() -> None:
    # m/z 4 (I 1): w 4; m/z 20 (I 1): w 20; cut to max_mz 10: (4 / sqrt(416)) at m/z 4, not renormalised
    vector = query_vector(Spectrum(np.array([4.0, 20.0]), np.array([1.0, 1.0])), 10)
    assert vector.shape == (11,) and vector[4] == pytest.approx(4 / math.sqrt(416)) and np.count_nonzero(vector) == 1
