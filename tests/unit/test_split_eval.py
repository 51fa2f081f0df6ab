"""Split evaluation: a sampled validation scores exactly the sampled compounds' queries against the full library."""

from __future__ import annotations

import numpy as np
import pytest

from nextims.data.spectra import CompoundRecord, SpectraData
from nextims.errors import DropReport
from nextims.evaluation import library as library_mod
from nextims.evaluation.library import query_block
from nextims.evaluation.split_eval import sample_compounds, score_split


def synthetic(n_compounds: int = 40, max_mz: int = 60) -> SpectraData:
    """Compounds of three splits with one or two noisy records each."""
    rng = np.random.default_rng(1)
    records, split = [], []
    for c in range(n_compounds):
        base = rng.random(max_mz + 1) * (rng.random(max_mz + 1) < 0.3)
        for r in range(1 + c % 2):
            spectrum = (base + 0.2 * rng.random(max_mz + 1) * (rng.random(max_mz + 1) < 0.1)).astype(np.float32)
            records.append(CompoundRecord(f"r{c}-{r}", f"KEY{c:04d}", "C", 20 + c % 7, spectrum, 70.0, None))
            split.append(("train", "val", "test")[c % 3])
    return SpectraData(records, np.array(split), DropReport(), max_mz)


def test_sample_compounds_is_fixed_and_bounded() -> None:
    compounds = np.arange(100, 200)
    assert sample_compounds(compounds, None) is compounds and sample_compounds(compounds, 100) is compounds
    sample = sample_compounds(compounds, 10)
    assert len(sample) == 10 and np.all(np.diff(sample) > 0) and set(sample) <= set(compounds)
    assert np.array_equal(sample, sample_compounds(compounds, 10))


def test_a_sampled_split_scores_the_sampled_compounds_against_the_whole_library() -> None:
    data = synthetic()
    noisy = np.random.default_rng(2).random((len(data.compound_keys), data.max_mz + 1))

    def predict(idx: np.ndarray) -> np.ndarray:
        return noisy[idx]

    full = score_split(data, predict, "val")
    sampled = score_split(data, predict, "val", max_compounds=5)
    chosen = sample_compounds(data.compound_indices("val"), 5)
    assert set(sampled.query_compounds) == set(chosen)
    assert sampled.metrics["val/n_queries"] == np.isin(data.record_compound, chosen).sum()
    # the library keeps every training compound; only the predicted entries are fewer
    assert sampled.library_size == full.library_size - (len(data.compound_indices("val")) - 5)
    assert score_split(data, predict, "val", max_compounds=1000).metrics == full.metrics


def test_query_blocks_fit_the_memory_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    assert query_block(8_000) == 512
    assert query_block(270_000) == 512 * 2**20 // (270_000 * 12) < 512
    assert query_block(10**12) == 1
    data = synthetic()
    predict = lambda idx: np.random.default_rng(3).random((len(idx), data.max_mz + 1))  # noqa: E731
    expected = score_split(data, predict, "test")
    monkeypatch.setattr(library_mod, "MATCH_MEMORY_BYTES", 2 * 30 * 12)  # two queries a block
    assert query_block(30) == 2
    blocked = score_split(data, predict, "test")
    np.testing.assert_array_equal(blocked.ranks, expected.ranks)
