"""Similarities on binned spectra, checked against matchms and ms_entropy on real EI spectra."""

import json
from pathlib import Path

import matchms
import ms_entropy
import numpy as np
import pytest
from matchms.similarity import CosineGreedy

from nextims.evaluation import similarity as sim_mod
from nextims.evaluation import (
    SIMILARITIES,
    cosine_matrix,
    entropy_matrix,
    paired_cosine,
    paired_entropy,
    wdp_matrix,
    weighted_vectors,
)
from nextims.spectrum import Spectrum, bin_spectrum, unbin_spectrum

FIXTURE = Path(__file__).parents[1] / "data" / "eval" / "massbank_ei_sample.json"
MAX_MZ = 500


@pytest.fixture(scope="module")
def binned() -> np.ndarray:
    records = json.loads(FIXTURE.read_text())
    spectra = [Spectrum(*np.array(r["peaks"], dtype=np.float64).T) for r in records]
    return np.stack([bin_spectrum(s, MAX_MZ) for s in spectra]).astype(np.float64)


@pytest.fixture(scope="module")
def peak_lists(binned: np.ndarray) -> list[np.ndarray]:
    """The binned spectra as (m/z, intensity) peak lists, so references see exactly the same data."""
    return [np.column_stack([s.mz, s.intensities]) for s in map(unbin_spectrum, binned)]


def test_fixture_is_real_and_unit_mz(binned: np.ndarray, peak_lists: list[np.ndarray]) -> None:
    assert binned.shape == (20, MAX_MZ + 1)
    assert all(np.all(p[:, 0] == np.round(p[:, 0])) and len(p) > 20 for p in peak_lists)


def test_weighted_vectors_by_hand() -> None:
    x = np.array([[0.0, 4.0, 9.0, 1.0]])
    np.testing.assert_allclose(weighted_vectors(x, 1.0, 0.5), [[0.0, 2.0, 6.0, 3.0]])
    np.testing.assert_allclose(weighted_vectors(x, 3.0, 1.0), [[0.0, 4.0, 72.0, 27.0]])


@pytest.mark.parametrize("mz_power,intensity_power", [(1.0, 0.5), (3.0, 0.6), (0.0, 1.0)])
def test_cosine_matches_matchms(binned: np.ndarray, peak_lists: list[np.ndarray],
                                mz_power: float, intensity_power: float) -> None:
    spectra = [matchms.Spectrum(mz=p[:, 0], intensities=p[:, 1], metadata={},
                                metadata_harmonization=False) for p in peak_lists]
    ref_fn = CosineGreedy(tolerance=0.1, mz_power=mz_power, intensity_power=intensity_power)
    ref = np.array([[float(ref_fn.pair(a, b)["score"]) for b in spectra] for a in spectra])
    ours = cosine_matrix(binned, binned, mz_power, intensity_power)
    assert np.median(ref) > 0.01  # the comparison is not between near-zero numbers
    np.testing.assert_allclose(ours, ref, atol=1e-6, rtol=0)
    np.testing.assert_allclose(paired_cosine(binned, binned[::-1], mz_power, intensity_power),
                               np.diag(ref[:, ::-1]), atol=1e-6, rtol=0)


def test_entropy_matches_ms_entropy(binned: np.ndarray, peak_lists: list[np.ndarray]) -> None:
    # ms_entropy cleans spectra first: a zero noise threshold keeps every peak, and unit m/z peaks
    # are 1 Da apart, so its 2 * 0.05 Da centroiding merges nothing.
    ref = np.array([[ms_entropy.calculate_entropy_similarity(
        a, b, ms2_tolerance_in_da=0.05, noise_threshold=0.0) for b in peak_lists] for a in peak_lists])
    p = binned / binned.sum(axis=1, keepdims=True)
    entropies = -np.sum(p * np.log(np.where(p > 0, p, 1.0)), axis=1)
    assert entropies.min() < 3.0 <= entropies.max()  # both branches of the entropy weighting
    assert np.median(ref) > 0.05
    # ms_entropy computes in float32.
    np.testing.assert_allclose(entropy_matrix(binned, binned), ref, atol=1e-6, rtol=0)
    np.testing.assert_allclose(paired_entropy(binned, binned[::-1]), np.diag(ref[:, ::-1]),
                               atol=1e-6, rtol=0)


def test_entropy_matrix_is_independent_of_chunking(binned: np.ndarray,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    full = entropy_matrix(binned, binned[:7])
    monkeypatch.setattr(sim_mod, "CHUNK_ROWS", 3)
    np.testing.assert_allclose(entropy_matrix(binned, binned[:7]), full, atol=1e-12)


@pytest.mark.parametrize("name", sorted(SIMILARITIES))
def test_registry_basic_properties(binned: np.ndarray, name: str) -> None:
    paired, matrix = SIMILARITIES[name]
    m = matrix(binned, binned)
    np.testing.assert_allclose(np.diag(m), 1.0, atol=1e-9)
    np.testing.assert_allclose(m, m.T, atol=1e-9)
    assert np.all((m >= 0) & (m <= 1))
    np.testing.assert_allclose(paired(binned, np.roll(binned, 1, axis=0)),
                               m[np.arange(len(m)), np.roll(np.arange(len(m)), 1)], atol=1e-9)
    np.testing.assert_allclose(matrix(binned[:3], 7.5 * binned[3:9]), m[:3, 3:9], atol=1e-9)
    zero = np.zeros((2, binned.shape[1]))
    np.testing.assert_array_equal(matrix(zero, binned[:4]), 0.0)
    np.testing.assert_array_equal(paired(zero, zero), 0.0)


def test_wdp_is_stein_scott_weighting(binned: np.ndarray) -> None:
    np.testing.assert_allclose(wdp_matrix(binned, binned), cosine_matrix(binned, binned, 3.0, 0.6))
    assert not np.allclose(wdp_matrix(binned, binned), cosine_matrix(binned, binned))


def test_bad_input_is_rejected() -> None:
    good = np.ones((2, 5))
    with pytest.raises(ValueError, match="non-negative"):
        cosine_matrix(-good, good)
    with pytest.raises(ValueError, match="incompatible"):
        entropy_matrix(good, np.ones((2, 6)))
    with pytest.raises(ValueError, match="incompatible"):
        paired_cosine(good, np.ones((3, 5)))
    with pytest.raises(ValueError, match=r"\(n, B\)"):
        paired_entropy(np.ones(5), np.ones(5))
