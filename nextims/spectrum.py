"""`Spectrum`, the common currency of readers, writers, models and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nextims.errors import RecordError

# Largest m/z any reader accepts; larger values are taken as corrupt input.
MZ_LIMIT = 5000.0

# Standard metadata keys (readers fill what their format has):
# id, name, synonyms, smiles, inchi, inchikey, formula, mw, exact_mass, license, copyright,
# contributor, ionization_energy_ev, ms_type, ion_mode, isotope_labeled,
# smiles_is_underivatized_parent, derivatized, source.


@dataclass
class Spectrum:
    """A centroided mass spectrum (m/z ascending) with its metadata."""

    mz: np.ndarray
    intensities: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mz = np.asarray(self.mz, dtype=np.float64)
        self.intensities = np.asarray(self.intensities, dtype=np.float64)
        order = np.argsort(self.mz, kind="stable")
        self.mz, self.intensities = self.mz[order], self.intensities[order]

    @property
    def id(self) -> str:
        """The record id (accession, or name where the format has none)."""
        return str(self.metadata.get("id") or self.metadata.get("name") or "?")

    def get(self, key: str, default: Any = None) -> Any:
        """A metadata value."""
        return self.metadata.get(key, default)

    def __len__(self) -> int:
        return len(self.mz)


def validate_peaks(mz: np.ndarray, intensities: np.ndarray, record: str) -> None:
    """Raise RecordError unless the peaks are a usable spectrum."""
    mz = np.asarray(mz, dtype=np.float64)
    intensities = np.asarray(intensities, dtype=np.float64)
    if mz.shape != intensities.shape or mz.ndim != 1:
        raise RecordError(record, "malformed_peaks", "m/z and intensity lists differ in length")
    if len(mz) == 0:
        raise RecordError(record, "no_peaks")
    # min and max carry NaN and infinities, so four reductions decide every check
    mz_low, mz_high, low, high = mz.min(), mz.max(), intensities.min(), intensities.max()
    if not np.isfinite((mz_low, mz_high, low, high)).all():
        raise RecordError(record, "nan_value", "m/z or intensity is NaN or infinite")
    if low < 0:
        raise RecordError(record, "negative_intensity", f"min intensity {low:g}")
    if mz_low <= 0 or mz_high > MZ_LIMIT:
        raise RecordError(record, "mz_out_of_range", f"m/z range {mz_low:g}..{mz_high:g}")
    if high <= 0:
        raise RecordError(record, "no_peaks", "all intensities are zero")


def bin_spectrum(spectrum: Spectrum, max_mz: int) -> np.ndarray:
    """Unit-m/z bins 0..max_mz (peaks rounded to the nearest integer, summed), scaled to max 1."""
    idx = np.floor(spectrum.mz + 0.5).astype(np.int64)
    keep = (idx >= 0) & (idx <= max_mz)
    out = np.bincount(idx[keep], spectrum.intensities[keep], minlength=max_mz + 1).astype(np.float32)
    top = out.max()
    return out / top if top > 0 else out


def unbin_spectrum(binned: np.ndarray, metadata: dict[str, Any] | None = None,
                   min_relative: float = 0.0) -> Spectrum:
    """A Spectrum of the non-zero bins from m/z 1 on (bin 0 is no peak: validate_peaks rejects m/z 0), intensities
    relative to the maximum, above min_relative."""
    binned = np.array(binned, dtype=np.float64)
    binned[:1] = 0.0
    top = binned.max() if binned.size else 0.0
    rel = binned / top if top > 0 else binned
    idx = np.nonzero(rel > min_relative)[0]
    return Spectrum(idx.astype(np.float64), rel[idx], dict(metadata or {}))
