"""Spectral similarities and library-matching metrics."""

from nextims.evaluation.library import library_matching, mass_filter_mask, rank_of_true, recall_at_k
from nextims.evaluation.similarity import (
    SIMILARITIES,
    Similarity,
    cosine_matrix,
    entropy_matrix,
    entropy_weighted,
    paired_cosine,
    paired_entropy,
    paired_wdp,
    wdp_matrix,
    weighted_vectors,
)

__all__ = [
    "SIMILARITIES",
    "Similarity",
    "cosine_matrix",
    "entropy_matrix",
    "entropy_weighted",
    "library_matching",
    "mass_filter_mask",
    "paired_cosine",
    "paired_entropy",
    "paired_wdp",
    "rank_of_true",
    "recall_at_k",
    "wdp_matrix",
    "weighted_vectors",
]
