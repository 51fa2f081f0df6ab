"""ms_entropy's indexed Flash entropy search over the same library, for comparison (an optional package)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

# unit-m/z peaks: any tolerance below 0.5 Da matches a bin to itself only
MS2_TOLERANCE_DA = 0.4


@dataclass
class FlashLibrary:
    """A built FlashEntropySearch and, per library entry in its (precursor-sorted) order, our row."""

    search: Any
    rows: np.ndarray
    build_s: float


def flash_peaks(mz: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    """Peaks as ms_entropy wants them: (n, 2) float32 of m/z and intensity."""
    return np.column_stack([np.asarray(mz, np.float32), np.asarray(intensity, np.float32)])


def build_flash(entries: Iterable[tuple[int, float, np.ndarray]]) -> FlashLibrary:
    """A FlashEntropySearch over (row, nominal mass, peaks) entries, peaks as `flash_peaks`; nothing is cleaned away
    (no noise threshold, the molecular ion kept), so it searches the very spectra our index holds."""
    from ms_entropy import FlashEntropySearch

    start = time.perf_counter()
    spectra = [{"precursor_mz": float(mass), "peaks": peaks, "row": row} for row, mass, peaks in entries]
    search = FlashEntropySearch(max_ms2_tolerance_in_da=MS2_TOLERANCE_DA * 1.25)
    spectra = search.build_index(spectra, precursor_ions_removal_da=None, noise_threshold=0.0,
                                 min_ms2_difference_in_da=2.5 * MS2_TOLERANCE_DA)
    rows = np.array([s["row"] for s in spectra], dtype=np.int64)
    return FlashLibrary(search, rows, time.perf_counter() - start)


def flash_top_k(library: FlashLibrary, mass: float, peaks: np.ndarray, k: int,
                mass_window: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Our rows of the k best entries by entropy similarity (open search; with mass_window, its identity search
    within that many Da of the mass) and their similarities."""
    kwargs = dict(ms2_tolerance_in_da=MS2_TOLERANCE_DA, precursor_ions_removal_da=None, noise_threshold=0.0,
                  min_ms2_difference_in_da=2.5 * MS2_TOLERANCE_DA)
    if mass_window is None:
        scores = library.search.search(precursor_mz=float(mass), peaks=peaks, method="open", **kwargs)["open_search"]
    else:
        scores = library.search.search(precursor_mz=float(mass), peaks=peaks, method="identity",
                                       ms1_tolerance_in_da=float(mass_window), **kwargs)["identity_search"]
    k = min(k, len(scores))
    best = np.argpartition(-scores, k - 1)[:k]
    best = best[np.lexsort((library.rows[best], -scores[best]))]
    return library.rows[best], scores[best]
