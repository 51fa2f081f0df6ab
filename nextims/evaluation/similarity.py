"""Spectral similarities on binned unit-m/z spectra (rows of an (n, B) array, column j is m/z j)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Callable, NamedTuple

import numpy as np

# Rows per block in the matrix similarities (bounds the size of intermediate arrays).
CHUNK_ROWS = 1024


def _as_binned(x: np.ndarray, name: str) -> np.ndarray:
    """x as a float64 (n, B) array of non-negative finite intensities."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected an (n, B) array of binned spectra, got shape {x.shape}")
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        raise ValueError(f"{name}: intensities must be finite and non-negative")
    return x


def _check_pair(a: np.ndarray, b: np.ndarray, paired: bool) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_binned(a, "a"), _as_binned(b, "b")
    if a.shape[1] != b.shape[1] or (paired and a.shape[0] != b.shape[0]):
        raise ValueError(f"incompatible spectra arrays {a.shape} and {b.shape}")
    return a, b


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def weighted_vectors(x: np.ndarray, mz_power: float, intensity_power: float) -> np.ndarray:
    """x[:, j] ** intensity_power * j ** mz_power, as float64."""
    x = _as_binned(x, "x")
    mz = np.arange(x.shape[1], dtype=np.float64)
    return x ** intensity_power * mz ** mz_power


def unit_weighted(x: np.ndarray | Sequence[np.ndarray], mz_power: float = 1.0,
                  intensity_power: float = 0.5) -> np.ndarray:
    """The weighted vectors of the rows of x (or of several arrays, stacked) scaled to unit norm, float64; made
    CHUNK_ROWS rows at a time, so a library-size input of float32 spectra needs no float64 copy of its own."""
    parts = [x] if isinstance(x, np.ndarray) else list(x)
    widths = {np.shape(part)[1] for part in parts if np.ndim(part) == 2}
    if len(widths) != 1 or any(np.ndim(part) != 2 for part in parts):
        raise ValueError(f"x: expected (n, B) arrays of binned spectra of one width, got shapes "
                         f"{[np.shape(part) for part in parts]}")
    out = np.empty((sum(len(part) for part in parts), widths.pop()))
    row = 0
    for part in parts:
        for start in range(0, len(part), CHUNK_ROWS):
            block = part[start:start + CHUNK_ROWS]
            out[row:row + len(block)] = _unit_rows(weighted_vectors(block, mz_power, intensity_power))
            row += len(block)
    return out


def cosine_matrix(a: np.ndarray, b: np.ndarray, mz_power: float = 1.0,
                  intensity_power: float = 0.5) -> np.ndarray:
    """(n, m) cosine of the weighted vectors (default: NEIMS weighting); zero spectra score 0."""
    a, b = _check_pair(a, b, paired=False)
    return np.clip(unit_weighted(a, mz_power, intensity_power) @ unit_weighted(b, mz_power, intensity_power).T,
                   0.0, 1.0)


def paired_cosine(a: np.ndarray, b: np.ndarray, mz_power: float = 1.0,
                  intensity_power: float = 0.5) -> np.ndarray:
    """(n,) cosine of a[i] and b[i] after weighting (default: NEIMS weighting)."""
    a, b = _check_pair(a, b, paired=True)
    wa = _unit_rows(weighted_vectors(a, mz_power, intensity_power))
    wb = _unit_rows(weighted_vectors(b, mz_power, intensity_power))
    return np.clip(np.einsum("ij,ij->i", wa, wb), 0.0, 1.0)


def wdp_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) Stein-Scott weighted dot product (m/z^3 * intensity^0.6, no composite term)."""
    return cosine_matrix(a, b, mz_power=3.0, intensity_power=0.6)


def paired_wdp(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n,) Stein-Scott weighted dot product of a[i] and b[i]."""
    return paired_cosine(a, b, mz_power=3.0, intensity_power=0.6)


def _xlogx(x: np.ndarray) -> np.ndarray:
    """x * ln(x), with 0 for x = 0."""
    return x * np.log(np.where(x > 0, x, 1.0))


def entropy_weighted(x: np.ndarray) -> np.ndarray:
    """Rows normalised to sum 1, with the entropy weighting of Li et al. (2021) applied.

    A row of spectral entropy S < 3 has its intensities raised to 0.25 + 0.25 * S and is normalised again.
    """
    x = _as_binned(x, "x")
    total = x.sum(axis=1, keepdims=True)
    p = np.divide(x, total, out=np.zeros_like(x), where=total > 0)
    s = -_xlogx(p).sum(axis=1, keepdims=True)
    w = np.where(s < 3.0, p ** (0.25 + 0.25 * s), p)
    total = w.sum(axis=1, keepdims=True)
    return np.divide(w, total, out=np.zeros_like(w), where=total > 0)


def paired_entropy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n,) entropy similarity 1 - (2 S_AB - S_A - S_B) / ln 4 of a[i] and b[i] (AB: 50/50 merge)."""
    a, b = _check_pair(a, b, paired=True)
    pa, pb = entropy_weighted(a), entropy_weighted(b)
    # Equal to the formula above; bins where one spectrum is empty contribute exactly 0.
    shared = (_xlogx(pa + pb) - _xlogx(pa) - _xlogx(pb)).sum(axis=1)
    return np.clip(shared / np.log(4.0), 0.0, 1.0)


def entropy_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) entropy similarity of every a[i] with every b[k]."""
    a, b = _check_pair(a, b, paired=False)
    pa, pb = entropy_weighted(a), entropy_weighted(b)
    in_b = pb > 0
    rows_b = [np.flatnonzero(in_b[:, j]) for j in range(pb.shape[1])]
    in_b_t, f_b_t = in_b.T.astype(np.float64), _xlogx(pb).T
    out = np.empty((a.shape[0], b.shape[0]))
    for start in range(0, a.shape[0], CHUNK_ROWS):
        block = pa[start:start + CHUNK_ROWS]
        in_block = block > 0
        # Sum over shared bins of f(x + y) - f(x) - f(y), f(x) = x ln x; the last two terms are matmuls.
        acc = -(_xlogx(block) @ in_b_t + in_block.astype(np.float64) @ f_b_t)
        for j in np.flatnonzero(in_block.any(axis=0) & in_b.any(axis=0)):
            ia, kb = np.flatnonzero(in_block[:, j]), rows_b[j]
            acc[np.ix_(ia, kb)] += _xlogx(block[ia, j][:, None] + pb[kb, j][None, :])
        out[start:start + CHUNK_ROWS] = acc
    return np.clip(out / np.log(4.0), 0.0, 1.0)


class Similarity(NamedTuple):
    """A similarity as a row-wise (paired) function and an all-pairs (matrix) function."""

    paired: Callable[[np.ndarray, np.ndarray], np.ndarray]
    matrix: Callable[[np.ndarray, np.ndarray], np.ndarray]


SIMILARITIES: dict[str, Similarity] = {
    "cosine": Similarity(paired_cosine, cosine_matrix),
    "wdp": Similarity(paired_wdp, wdp_matrix),
    "entropy": Similarity(paired_entropy, entropy_matrix),
}
# The similarities that are a dot product of vectors each spectrum gives on its own: a library's vectors are made
# once, and a block of queries scores clip(queries' vectors @ library's vectors.T, 0, 1).
VECTORS: dict[str, Callable[[np.ndarray | Sequence[np.ndarray]], np.ndarray]] = {
    "cosine": partial(unit_weighted, mz_power=1.0, intensity_power=0.5),
    "wdp": partial(unit_weighted, mz_power=3.0, intensity_power=0.6),
}
