"""The molecular graphs of a features cache held compactly in memory and batched straight from arrays.

A library-size cache holds millions of atoms; as one torch_geometric `Data` object per molecule they take
gigabytes and minutes to build. Atom and bond feature rows repeat (a few thousand distinct rows among millions),
so each is kept as a code into a table of its distinct rows, losslessly, and a batch is gathered with array
indexing instead of `Batch.from_data_list`.
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np
import torch
from torch_geometric.data import Batch

from nextims.data.sites import ragged_rows

# rows of a feature dataset read (and encoded) at a time
_BLOCK = 1 << 20


def _row_bytes(rows: np.ndarray) -> int:
    return rows.dtype.itemsize * int(rows.shape[1])


def _as_bytes(rows: np.ndarray) -> np.ndarray:
    """The rows of a C-contiguous 2-D array as (n, bytes per row) uint8."""
    return rows.view(np.uint8).reshape(len(rows), _row_bytes(rows))


def _row_hashes(rows: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row's bytes (polynomial over its 32-bit words, or bytes when rows are not whole words)."""
    raw = _as_bytes(rows)
    words = raw.view(np.uint32) if raw.shape[1] % 4 == 0 else raw
    hashes = np.zeros(len(rows), dtype=np.uint64)
    for column in words.T:
        hashes = hashes * np.uint64(0x100000001B3) + column.astype(np.uint64) + np.uint64(1)
    return hashes


def _codes_of(keys: list, examples: np.ndarray, index: dict, table: list[np.ndarray]) -> np.ndarray:
    """The table index of each key (new keys appended to the table with their example row)."""
    local = np.empty(len(keys), dtype=np.int32)
    for j, key in enumerate(keys):
        local[j] = index.setdefault(key, len(index))
        if local[j] == len(table):
            table.append(examples[j])
    return local


@dataclass
class RowCodes:
    """A 2-D array stored as its distinct rows (`table`) and, per row, the index of its row in the table."""

    table: np.ndarray
    codes: np.ndarray

    @classmethod
    def encode(cls, rows: np.ndarray | h5py.Dataset, block: int = _BLOCK) -> "RowCodes":
        """The codes of rows (an array or an HDF5 dataset, read `block` rows at a time); exact: rows are told apart
        by a 64-bit hash of their bytes, checked bit for bit against the table (by the bytes themselves on a
        collision)."""
        index: dict[int | bytes, int] = {}
        table: list[np.ndarray] = []
        codes = np.empty(len(rows), dtype=np.int32)
        for start in range(0, len(rows), block):
            part = np.ascontiguousarray(rows[start:start + block])
            keys = _row_hashes(part)
            distinct, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
            local = _codes_of(distinct.tolist(), part[first], index, table)
            part_codes = local[inverse.ravel()]
            if not np.array_equal(_as_bytes(np.stack(table)[part_codes]), _as_bytes(part)):
                whole_rows = _as_bytes(part).view(np.dtype((np.void, _row_bytes(part)))).ravel()
                distinct, first, inverse = np.unique(whole_rows, return_index=True, return_inverse=True)
                part_codes = _codes_of([key.tobytes() for key in distinct], part[first], index, table)[inverse.ravel()]
            codes[start:start + len(part)] = part_codes
        return cls(np.stack(table) if table else np.zeros((0, int(rows.shape[1])), rows.dtype), codes)

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        return self.table[self.codes[rows]]


@dataclass
class GraphArrays:
    """The graphs of n molecules: molecule i owns atoms atom_offsets[i]:atom_offsets[i+1] and directed edges
    edge_offsets[i]:edge_offsets[i+1]; edge_index holds atom indices local to each molecule."""

    x: RowCodes
    edge_attr: RowCodes
    edge_index: np.ndarray  # (2, E) int32
    frag_mass: np.ndarray  # (E,) int32
    atom_offsets: np.ndarray
    edge_offsets: np.ndarray

    @classmethod
    def read(cls, file: h5py.File | h5py.Group, atom_offsets: np.ndarray, edge_offsets: np.ndarray) -> "GraphArrays":
        """The graph datasets of a features cache (x, edge_attr, edge_index, frag_mass)."""
        return cls(RowCodes.encode(file["x"]), RowCodes.encode(file["edge_attr"]),
                   np.asarray(file["edge_index"][:], dtype=np.int32), np.asarray(file["frag_mass"][:], dtype=np.int32),
                   np.asarray(atom_offsets, dtype=np.int64), np.asarray(edge_offsets, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.atom_offsets) - 1

    def batch(self, molecules: np.ndarray) -> Batch:
        """The graphs of the given molecules as one torch_geometric Batch (what Batch.from_data_list makes of their
        Data objects: x, edge_index shifted per graph, edge_attr, frag_mass, batch and ptr)."""
        molecules = np.asarray(molecules, dtype=np.int64)
        atoms, _ = ragged_rows(self.atom_offsets, molecules)
        edges, edge_owner = ragged_rows(self.edge_offsets, molecules)
        sizes = np.diff(self.atom_offsets)[molecules]
        ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        edge_index = self.edge_index[:, edges].astype(np.int64) + ptr[edge_owner]
        return Batch(x=torch.from_numpy(self.x[atoms]), edge_index=torch.from_numpy(edge_index),
                     edge_attr=torch.from_numpy(self.edge_attr[edges]),
                     frag_mass=torch.from_numpy(self.frag_mass[edges].astype(np.int64)),
                     batch=torch.from_numpy(np.repeat(np.arange(len(molecules)), sizes)),
                     ptr=torch.from_numpy(ptr))
