"""Evaluate predicted spectra on one split: NEIMS-style library matching plus spectral similarity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from nextims.data.spectra import SpectraData
from nextims.evaluation.library import matching_metrics, matching_ranks
from nextims.evaluation.similarity import paired_cosine, paired_entropy, paired_wdp

LIBRARY_SPLITS = {"test": ("train", "val"), "val": ("train",)}


@dataclass
class SplitScores:
    """The metrics of one split and, per query, its true entry's rank (whole library and within the mass window),
    its compound and its paired similarities, so that any subset of the queries can be scored alike."""

    metrics: dict[str, float]
    ranks: np.ndarray
    query_compounds: np.ndarray
    ranks_mass: np.ndarray | None = None
    similarities: dict[str, np.ndarray] | None = None
    prefix: str = ""
    library_size: int = 0
    ks: tuple[int, ...] = (1, 5, 10)
    mass_tolerance: float = 5.0

    def subset(self, mask: np.ndarray) -> "SplitScores":
        """The scores of the queries where mask is True (same library, metrics recomputed)."""
        mask = np.asarray(mask, dtype=bool)
        if self.ranks_mass is None or self.similarities is None:
            raise ValueError("these scores keep no per-query values to take a subset of")
        ranks, ranks_mass = self.ranks[mask], self.ranks_mass[mask]
        sims = {k: v[mask] for k, v in self.similarities.items()}
        metrics = {}
        if mask.any():
            metrics = matching_metrics(ranks, ranks_mass, self.library_size, self.ks, self.mass_tolerance)
            metrics.update({k: float(np.mean(v)) for k, v in sims.items()})
        return SplitScores({f"{self.prefix}{k}": float(v) for k, v in metrics.items()}, ranks,
                           self.query_compounds[mask], ranks_mass, sims, self.prefix, self.library_size, self.ks,
                           self.mass_tolerance)


def evaluate_split(data: SpectraData, predict: Callable[[np.ndarray], np.ndarray], split: str = "test",
                   ks: tuple[int, ...] = (1, 5, 10), mass_tolerance: float = 5.0,
                   max_compounds: int | None = None) -> dict[str, float]:
    """Metrics for the compounds of `split`, whose spectra `predict(compound_idx)` returns (see `score_split`)."""
    return score_split(data, predict, split, ks, mass_tolerance, max_compounds).metrics


def sample_compounds(compounds: np.ndarray, max_compounds: int | None, seed: int = 0) -> np.ndarray:
    """At most max_compounds of the compounds (None: all): a fixed random sample, in their order."""
    if max_compounds is None or len(compounds) <= max_compounds:
        return compounds
    return np.sort(np.random.default_rng(seed).choice(compounds, size=max_compounds, replace=False))


def score_split(data: SpectraData, predict: Callable[[np.ndarray], np.ndarray], split: str = "test",
                ks: tuple[int, ...] = (1, 5, 10), mass_tolerance: float = 5.0,
                max_compounds: int | None = None) -> SplitScores:
    """Metrics and per-query ranks for the compounds of `split`, whose spectra `predict(compound_idx)` returns.

    The library holds one observed spectrum per compound of the other splits (the representative record:
    70 eV first, then the smallest record id) plus one predicted spectrum per compound of `split`; every
    observed spectrum of a `split` compound is a query, ranked by NEIMS-weighted cosine, ties against.
    With max_compounds, only a fixed sample of that many `split` compounds is predicted and queried (the library
    keeps every other-split compound): bounded validation cost for early stopping on a large dataset.
    """
    eval_compounds = sample_compounds(data.compound_indices(split), max_compounds)
    ref_compounds = data.compound_indices(LIBRARY_SPLITS[split])
    predicted = np.asarray(predict(eval_compounds), dtype=np.float64)
    rep = data.representative_records()
    library = [data.spectra[rep[ref_compounds]], predicted]  # stacked by the matching, without a float64 copy
    library_masses = np.concatenate([data.compound_masses[ref_compounds], data.compound_masses[eval_compounds]])
    queries = np.flatnonzero(np.isin(data.record_compound, eval_compounds))
    position = np.full(len(data.compound_keys), -1, dtype=np.int64)
    position[eval_compounds] = np.arange(len(eval_compounds))
    query_compounds = data.record_compound[queries]
    observed = data.spectra[queries].astype(np.float64)
    true_index = len(ref_compounds) + position[query_compounds]
    ranks, ranks_mass = matching_ranks(observed, library, true_index, data.compound_masses[query_compounds],
                                       library_masses, mass_tolerance=mass_tolerance)
    paired = predicted[position[query_compounds]]
    sims = {"cosine": paired_cosine(paired, observed, mz_power=1.0, intensity_power=0.5),
            "wdp": paired_wdp(paired, observed), "entropy": paired_entropy(paired, observed)}
    everything = SplitScores({}, ranks, query_compounds, ranks_mass, sims, f"{split}/", len(library_masses),
                             tuple(ks), mass_tolerance)
    return everything.subset(np.ones(len(ranks), dtype=bool))
