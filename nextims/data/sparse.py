"""Count fingerprints kept sparse in memory (CSR rows), made dense one batch at a time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextims.data.sites import ragged_rows


@dataclass
class SparseCounts:
    """Rows of counts over n_bits columns: row i holds counts[offsets[i]:offsets[i+1]] at those columns.

    A dense float32 row of 4,096 bits takes 16 kB; a molecule sets about 50 of them, so a library-size set of
    fingerprints takes megabytes, not gigabytes.
    """

    columns: np.ndarray  # (nnz,) uint16 or int column of each count
    counts: np.ndarray  # (nnz,) the counts
    offsets: np.ndarray  # (rows + 1,) int64
    n_bits: int

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @classmethod
    def from_dense(cls, dense: np.ndarray) -> "SparseCounts":
        """The non-zero entries of a dense (rows, n_bits) array."""
        rows, columns = np.nonzero(dense)
        offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(dense)))]).astype(np.int64)
        return cls(columns.astype(np.uint16 if dense.shape[1] <= 65536 else np.int64), dense[rows, columns],
                   offsets, int(dense.shape[1]))

    @classmethod
    def concat(cls, parts: list["SparseCounts"], n_bits: int) -> "SparseCounts":
        """The rows of several parts, in order."""
        if not parts:
            return cls(np.zeros(0, np.uint16), np.zeros(0, np.float32), np.zeros(1, np.int64), n_bits)
        counts = np.concatenate([np.diff(p.offsets) for p in parts])
        return cls(np.concatenate([p.columns for p in parts]), np.concatenate([p.counts for p in parts]),
                   np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), n_bits)

    def dense(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The given rows (all when None) as a dense float32 array."""
        rows = np.arange(len(self)) if rows is None else np.asarray(rows, dtype=np.int64)
        entries, owner = ragged_rows(self.offsets, rows)
        out = np.zeros((len(rows), self.n_bits), np.float32)
        out[owner, self.columns[entries].astype(np.int64)] = self.counts[entries]
        return out
