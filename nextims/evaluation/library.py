"""NEIMS-style library matching: the rank of each query's true library entry, and recall@k."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from nextims.evaluation.similarity import SIMILARITIES, VECTORS

# Queries per block (a block holds a (block, library size) similarity matrix), at most QUERY_CHUNK and few enough
# that a block's matrices (float64 similarities, boolean masks: about 12 bytes a cell) fit MATCH_MEMORY_BYTES.
QUERY_CHUNK = 512
MATCH_MEMORY_BYTES = 512 * 2**20
_BYTES_PER_CELL = 12
# Similarities this close to the true entry's count as ties (absorbs floating-point noise of BLAS).
TIE_TOLERANCE = 1e-12

MatrixFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
# A library as one array of binned spectra or several (stacked in order, e.g. observed float32 and predicted float64)
Library = np.ndarray | Sequence[np.ndarray]


def _matrix_fn(similarity: str | MatrixFn) -> MatrixFn:
    if callable(similarity):
        return similarity
    if similarity not in SIMILARITIES:
        raise ValueError(f"unknown similarity {similarity!r}; known: {sorted(SIMILARITIES)}")
    return SIMILARITIES[similarity].matrix


def library_scorer(library_vecs: Library, similarity: str | MatrixFn = "cosine"
                   ) -> tuple[Callable[[np.ndarray], np.ndarray], int]:
    """A function giving the (queries, library) similarities of a block of queries, and the library's size; the
    library's vectors are made once where the similarity allows it (VECTORS), not once per block."""
    if isinstance(similarity, str) and similarity in VECTORS:
        vectors = VECTORS[similarity]
        prepared = vectors(library_vecs)
        return (lambda queries: np.clip(vectors(queries) @ prepared.T, 0.0, 1.0)), len(prepared)
    matrix = _matrix_fn(similarity)
    library = library_vecs if isinstance(library_vecs, np.ndarray) else np.concatenate(list(library_vecs))
    return (lambda queries: matrix(queries, library)), len(library)


def _check_inputs(query_vecs: np.ndarray, library_size: int, true_index: np.ndarray) -> np.ndarray:
    true_index = np.asarray(true_index)
    if not np.issubdtype(true_index.dtype, np.integer):
        raise ValueError("true_index must hold integers")
    if true_index.shape != (len(query_vecs),):
        raise ValueError(f"true_index has shape {true_index.shape}, expected ({len(query_vecs)},)")
    if len(true_index) and (true_index.min() < 0 or true_index.max() >= library_size):
        raise ValueError(f"true_index out of range for a library of {library_size} entries")
    return true_index.astype(np.int64)


def query_block(library_size: int, budget: int | None = None) -> int:
    """Queries per block for a library of this size within the memory budget (default MATCH_MEMORY_BYTES; at
    least 1)."""
    budget = MATCH_MEMORY_BYTES if budget is None else budget
    return max(1, min(QUERY_CHUNK, budget // max(1, library_size * _BYTES_PER_CELL)))


def _ranks(sim: np.ndarray, true_index: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """1 + number of other candidates whose similarity is >= that of the true entry (ties count against)."""
    rows = np.arange(len(true_index))
    beats = sim >= sim[rows, true_index][:, None] - TIE_TOLERANCE
    if mask is not None:
        beats &= mask
    beats[rows, true_index] = False
    return 1 + beats.sum(axis=1)


def mass_filter_mask(query_masses: np.ndarray, library_masses: np.ndarray,
                     tolerance: float = 5.0) -> np.ndarray:
    """(n, m) True where the nominal (rounded) masses differ by at most tolerance."""
    q = np.asarray(query_masses, dtype=np.float64)
    lib = np.asarray(library_masses, dtype=np.float64)
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(lib))):
        raise ValueError("masses must be finite")
    return np.abs(np.rint(q)[:, None] - np.rint(lib)[None, :]) <= tolerance


def rank_of_true(query_vecs: np.ndarray, library_vecs: Library, true_index: np.ndarray,
                 similarity: str | MatrixFn = "cosine",
                 candidate_mask: np.ndarray | None = None) -> np.ndarray:
    """1-based rank of library entry true_index[i] for query i among the candidates (ties count against)."""
    scores, size = library_scorer(library_vecs, similarity)
    true_index = _check_inputs(query_vecs, size, true_index)
    if candidate_mask is not None:
        candidate_mask = np.asarray(candidate_mask, dtype=bool)
        if candidate_mask.shape != (len(query_vecs), size):
            raise ValueError(f"candidate_mask has shape {candidate_mask.shape}, expected {(len(query_vecs), size)}")
    ranks = np.empty(len(true_index), dtype=np.int64)
    step = query_block(size)
    for start in range(0, len(true_index), step):
        block = slice(start, start + step)
        mask = None if candidate_mask is None else candidate_mask[block]
        ranks[block] = _ranks(scores(query_vecs[block]), true_index[block], mask)
    return ranks


def recall_at_k(ranks: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Fraction of queries whose true entry ranks within the top k, as {"recall@k": value}."""
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        raise ValueError("no ranks given")
    return {f"recall@{k}": float(np.mean(ranks <= k)) for k in ks}


def matching_ranks(query_vecs: np.ndarray, library_vecs: Library, true_index: np.ndarray,
                   query_masses: np.ndarray, library_masses: np.ndarray, similarity: str | MatrixFn = "cosine",
                   mass_tolerance: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Per query, the rank of its true entry over the whole library and among entries within ±mass_tolerance."""
    scores, size = library_scorer(library_vecs, similarity)
    true_index = _check_inputs(query_vecs, size, true_index)
    query_masses = np.asarray(query_masses, dtype=np.float64)
    if query_masses.shape != (len(query_vecs),) or np.shape(library_masses) != (size,):
        raise ValueError("need one mass per query and per library entry")
    ranks = np.empty(len(true_index), dtype=np.int64)
    ranks_mass = np.empty_like(ranks)
    step = query_block(size)
    for start in range(0, len(true_index), step):
        block = slice(start, start + step)
        sim = scores(query_vecs[block])
        mask = mass_filter_mask(query_masses[block], library_masses, mass_tolerance)
        ranks[block] = _ranks(sim, true_index[block], None)
        ranks_mass[block] = _ranks(sim, true_index[block], mask)
    return ranks, ranks_mass


def matching_metrics(ranks: np.ndarray, ranks_mass: np.ndarray, library_size: int, ks: Sequence[int] = (1, 5, 10),
                     mass_tolerance: float = 5.0) -> dict[str, float]:
    """Recall@k and mean rank of `matching_ranks`' two rankings."""
    suffix = f"_mass{mass_tolerance:g}"
    out = recall_at_k(ranks, ks)
    out.update({f"{key}{suffix}": value for key, value in recall_at_k(ranks_mass, ks).items()})
    out.update({
        "n_queries": len(ranks),
        "library_size": library_size,
        "mean_rank": float(np.mean(ranks)),
        f"mean_rank{suffix}": float(np.mean(ranks_mass)),
    })
    return out


def library_matching(query_vecs: np.ndarray, library_vecs: Library, true_index: np.ndarray,
                     query_masses: np.ndarray, library_masses: np.ndarray,
                     ks: Sequence[int] = (1, 5, 10), similarity: str | MatrixFn = "cosine",
                     mass_tolerance: float = 5.0) -> dict[str, float]:
    """Recall@k and mean rank, over the whole library and among entries within ±mass_tolerance."""
    ranks, ranks_mass = matching_ranks(query_vecs, library_vecs, true_index, query_masses, library_masses,
                                       similarity, mass_tolerance)
    size = len(library_vecs) if isinstance(library_vecs, np.ndarray) else sum(len(part) for part in library_vecs)
    return matching_metrics(ranks, ranks_mass, size, ks, mass_tolerance)
