"""Library-search scores on unit-m/z spectra: the weighted cosine, NIST's match factor and reverse match factor.

A spectrum's weighted vector is w[j] = sqrt(I[j]) * j over the unit m/z bins j (the NEIMS/NIST weighting,
`weighted_vectors(x, 1.0, 0.5)`), scaled to unit norm. The match factor is the Stein & Scott (1994) dot product on
NIST's 0..999 scale, MF = round(999 * cosine^2); the reverse match factor is the same with the query restricted to
the bins where the library spectrum has a peak (query peaks the library spectrum lacks are ignored).
"""

from __future__ import annotations

import numpy as np

from nextims.evaluation.similarity import unit_weighted
from nextims.spectrum import Spectrum, bin_spectrum

MZ_POWER = 1.0
INTENSITY_POWER = 0.5
# NIST's scale: a perfect match scores 999
MF_SCALE = 999


def weighted_unit(binned: np.ndarray) -> np.ndarray:
    """The unit-normalised weighted vectors (float64) of binned spectra: one (B,) spectrum or an (n, B) array."""
    binned = np.asarray(binned)
    if binned.ndim == 1:
        return unit_weighted(binned[None, :], MZ_POWER, INTENSITY_POWER)[0]
    return unit_weighted(binned, MZ_POWER, INTENSITY_POWER)


def query_vector(spectrum: Spectrum, max_mz: int) -> np.ndarray:
    """A query's unit weighted vector over all its peaks, cut to bins 0..max_mz (float64, not renormalised: peaks
    above max_mz, which no library entry can share, still lower every cosine as they would in a wider library)."""
    top = int(np.floor(spectrum.mz.max() + 0.5)) if len(spectrum) else 0
    vector = weighted_unit(bin_spectrum(spectrum, max(max_mz, top)))
    return vector[:max_mz + 1]


def match_factor(cosine: float | np.ndarray) -> int | np.ndarray:
    """NIST match factor round(999 * cosine^2) (halves rounded up; cosine clipped to 0..1; NaN gives -1)."""
    c = np.clip(np.asarray(cosine, dtype=np.float64), 0.0, 1.0)
    mf = np.where(np.isnan(c), -1, _round_half_up(MF_SCALE * np.nan_to_num(c) ** 2)).astype(np.int64)
    return int(mf) if mf.ndim == 0 else mf


def _round_half_up(x: float | np.ndarray) -> np.ndarray:
    """x rounded to the nearest integer, halves up; x is first rounded to 9 decimals, so that a product that
    floating point leaves just under a half (999 * 0.5 as 499.4999...) counts as the half."""
    return np.floor(np.round(x, 9) + 0.5)


def reverse_cosine(query: np.ndarray, bins: np.ndarray, weights: np.ndarray) -> float:
    """(w_q' . w_l)^2 / (|w_q'|^2 |w_l|^2) for a library spectrum's weighted peaks (bins, weights) and a query's
    dense weighted vector, w_q' the query at those bins only; 0 when nothing overlaps."""
    bins = np.asarray(bins, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    inside = bins < len(query)
    restricted = np.asarray(query, dtype=np.float64)[bins[inside]]
    dot = float(restricted @ weights[inside])
    norms = float(restricted @ restricted) * float(weights @ weights)
    return dot * dot / norms if norms > 0 else 0.0


def reverse_match_factor(query: np.ndarray, bins: np.ndarray, weights: np.ndarray) -> int:
    """NIST reverse match factor round(999 * reverse_cosine) (see reverse_cosine; halves rounded up)."""
    return int(_round_half_up(MF_SCALE * reverse_cosine(query, bins, weights)))


def binned_scores(query: np.ndarray, library: np.ndarray) -> tuple[float, int, int]:
    """(cosine, match factor, reverse match factor) of two binned spectra of one width (intensities, any scale)."""
    q, lib = weighted_unit(query), weighted_unit(library)
    cosine = float(np.clip(q @ lib, 0.0, 1.0))
    bins = np.flatnonzero(lib)
    return cosine, match_factor(cosine), reverse_match_factor(q, bins, lib[bins])
