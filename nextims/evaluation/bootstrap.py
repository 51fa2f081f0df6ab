"""How far a benchmark's recall could move on another draw of compounds: a bootstrap over compounds.

Queries of one compound are not independent (replicate spectra of the same molecule), so the resampling
unit is the compound: each resample draws as many compounds as the split holds, with replacement, and a
query counts as often as its compound was drawn. Two models scored on the same queries share the resamples
(a paired bootstrap), so their ratio's interval reflects the difference between them, not each one's noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A point estimate with its two-sided percentile interval."""

    value: float
    low: float
    high: float

    def format(self, digits: int = 3) -> str:
        """`value (low-high)`."""
        return f"{self.value:.{digits}f} ({self.low:.{digits}f}-{self.high:.{digits}f})"


def compound_weights(query_compounds: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(resamples, queries) weights: how often each query's compound was drawn in each resample."""
    groups, group_of_query = np.unique(np.asarray(query_compounds), return_inverse=True)
    if len(groups) == 0:
        raise ValueError("no queries to resample")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(groups), size=(resamples, len(groups)))
    counts = np.zeros((resamples, len(groups)), dtype=np.float64)
    np.add.at(counts, (np.arange(resamples)[:, None], draws), 1.0)
    return counts[:, group_of_query.reshape(-1)]


def _interval(value: float, samples: np.ndarray, level: float) -> Interval:
    if not 0 < level < 1:
        raise ValueError(f"level must lie between 0 and 1, got {level}")
    tail = 100 * (1 - level) / 2
    low, high = np.nanpercentile(samples, [tail, 100 - tail])
    return Interval(float(value), float(low), float(high))


def recall_interval(hits: np.ndarray, weights: np.ndarray, level: float = 0.95) -> Interval:
    """Recall (the fraction of hits) with its bootstrap interval."""
    hits = np.asarray(hits, dtype=np.float64)
    samples = (weights @ hits) / weights.sum(axis=1)
    return _interval(float(hits.mean()), samples, level)


def error_ratio_interval(hits: np.ndarray, reference_hits: np.ndarray, weights: np.ndarray,
                         level: float = 0.95) -> Interval:
    """(1 - recall) / (1 - reference recall) on the same queries, with its paired bootstrap interval.

    NaN where the reference makes no error (on the whole split, or in a resample, which is then left out).
    """
    misses = 1.0 - np.asarray(hits, dtype=np.float64)
    reference_misses = 1.0 - np.asarray(reference_hits, dtype=np.float64)
    if misses.shape != reference_misses.shape:
        raise ValueError(f"the two models were scored on different queries ({misses.shape} vs {reference_misses.shape})")
    value = misses.sum() / reference_misses.sum() if reference_misses.sum() > 0 else np.nan
    num, den = weights @ misses, weights @ reference_misses
    samples = np.divide(num, den, out=np.full_like(num, np.nan), where=den > 0)
    if np.all(np.isnan(samples)):
        return Interval(float(value), np.nan, np.nan)
    return _interval(float(value), samples, level)
