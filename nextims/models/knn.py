"""Nearest-neighbour baseline: the spectrum of the most Tanimoto-similar training compound."""

from __future__ import annotations

import numpy as np


class TanimotoKNN:
    """Predicts the mean spectrum of the k training compounds of highest ECFP Tanimoto similarity."""

    needs_graph = False

    def __init__(self, k: int = 1) -> None:
        self.k = k
        self.bits: np.ndarray | None = None
        self.spectra: np.ndarray | None = None

    def fit(self, fingerprints: np.ndarray, spectra: np.ndarray) -> "TanimotoKNN":
        """Store the training compounds' fingerprints (as bits) and spectra."""
        self.bits = (np.asarray(fingerprints) > 0).astype(np.float32)
        self.spectra = np.asarray(spectra, dtype=np.float32)
        return self

    def predict(self, fingerprints: np.ndarray, chunk: int = 1024) -> np.ndarray:
        """Predicted spectra (intensities) for query fingerprints."""
        if self.bits is None or self.spectra is None:
            raise RuntimeError("TanimotoKNN.predict called before fit")
        q = (np.asarray(fingerprints) > 0).astype(np.float32)
        ref_n = self.bits.sum(1)
        out = np.empty((len(q), self.spectra.shape[1]), dtype=np.float32)
        for s in range(0, len(q), chunk):
            qq = q[s:s + chunk]
            inter = qq @ self.bits.T
            sim = inter / np.maximum(qq.sum(1, keepdims=True) + ref_n[None, :] - inter, 1e-9)
            top = np.argsort(-sim, axis=1, kind="stable")[:, : self.k]
            out[s:s + chunk] = self.spectra[top].mean(axis=1)
        return out
