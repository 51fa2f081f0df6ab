"""Molecule graphs with one row per bond (hydrogens explicit), bond-type codes, and packed mini-batches.

Bond b of a graph is RDKit bond b of `Chem.AddHs(mol)`: the molecule's own (heavy-atom) bonds first, in
their order, then the X-H bonds. Edges 2b and 2b+1 of `MolGraphFeaturizer(explicit_hydrogens=True)` are
the same bond, so per-bond values map to those graphs' edges by `repeat_interleave(2)`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import rdkit
import torch
from rdkit import Chem

from nextims.data.featurize import BOND_TYPES, ELEMENTS, FEATURE_VERSION, MolGraphFeaturizer

BDE_FEATURIZER = MolGraphFeaturizer(explicit_hydrogens=True)
N_ELEMENTS = len(ELEMENTS) + 1  # the featurizer's elements + other
N_ORDERS = len(BOND_TYPES) + 1  # single, double, triple, aromatic + other
N_BOND_TYPES = N_ELEMENTS * N_ELEMENTS * N_ORDERS * 2 * 3
ORDER_NAMES = ("single", "double", "triple", "aromatic", "other")


def featurizer_signature() -> dict[str, Any]:
    """What determines the BDE graphs' features, for cache keys and model cards."""
    return {"feature_version": FEATURE_VERSION, "rdkit": rdkit.__version__,
            "graph": {"class": type(BDE_FEATURIZER).__name__, **asdict(BDE_FEATURIZER)}}


def element_index(symbol: str) -> int:
    """Position of an element in the featurizer's element list (len(ELEMENTS) for any other element)."""
    return ELEMENTS.index(symbol) if symbol in ELEMENTS else len(ELEMENTS)


def bond_type_code(element_a: int, element_b: int, order: int, in_ring: bool, charged: int = 0) -> int:
    """One integer for (unordered element pair, bond order, ring membership, number of charged atoms 0-2).

    The charge count tells a nitro group's [N+]-[O-] bond from a nitrate's O-[N+] bond.
    """
    lo, hi = min(element_a, element_b), max(element_a, element_b)
    return (((lo * N_ELEMENTS + hi) * N_ORDERS + order) * 2 + int(in_ring)) * 3 + int(charged)


def bond_type_label(code: int) -> str:
    """The element pair of a bond-type code as BDE-db2 writes it ('C-H', 'Br-C'; X for other elements)."""
    pair = code // (6 * N_ORDERS)
    symbols = [ELEMENTS[i] if i < len(ELEMENTS) else "X" for i in divmod(pair, N_ELEMENTS)]
    return "-".join(sorted(symbols))


def bond_type_name(code: int) -> str:
    """A bond-type code in words ('C-H single', 'C-C aromatic ring', 'N-O single 2 charged')."""
    order = ORDER_NAMES[(code // 6) % N_ORDERS]
    charged = code % 3
    return (f"{bond_type_label(code)} {order}" + (" ring" if (code // 3) % 2 else "")
            + (f" {charged} charged" if charged else ""))


@dataclass
class MolArrays:
    """The graph of one molecule (hydrogens explicit) with one row per bond."""

    x: np.ndarray  # float32 (atoms, atom_dim)
    elements: np.ndarray  # int8 (atoms,): element_index
    bond_atoms: np.ndarray  # int32 (bonds, 2): begin, end atom of RDKit bond b
    bond_attr: np.ndarray  # float32 (bonds, bond_dim)
    bond_type: np.ndarray  # int16 (bonds,): bond_type_code


def mol_arrays(mol: Chem.Mol) -> MolArrays:
    """The graph arrays of a molecule (hydrogens are added; a molecule that has them keeps them)."""
    graph = BDE_FEATURIZER(mol)
    mol_h = BDE_FEATURIZER.prepare(mol)
    elements = np.array([element_index(a.GetSymbol()) for a in mol_h.GetAtoms()], dtype=np.int8)
    bond_atoms = graph.edge_index[:, 0::2].T.numpy().astype(np.int32)
    kinds = [BOND_TYPES.index(b.GetBondType()) if b.GetBondType() in BOND_TYPES else len(BOND_TYPES)
             for b in mol_h.GetBonds()]
    rings = [b.IsInRing() for b in mol_h.GetBonds()]
    charged = [int(a.GetFormalCharge() != 0) for a in mol_h.GetAtoms()]
    codes = [bond_type_code(int(elements[a]), int(elements[b]), k, r, charged[a] + charged[b])
             for (a, b), k, r in zip(bond_atoms, kinds, rings)]
    return MolArrays(graph.x.numpy(), elements, bond_atoms, graph.edge_attr[0::2].numpy(),
                     np.array(codes, dtype=np.int16).reshape(-1))


def ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The concatenation of arange(s, s + c) for each start s and count c."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    shift = np.asarray(starts, dtype=np.int64) - (np.cumsum(counts) - counts)
    return np.repeat(shift, counts) + np.arange(total)


@dataclass
class PackedGraphs:
    """Many molecules' graphs as flat arrays with offsets (the layout of the HDF5 caches)."""

    x: np.ndarray
    elements: np.ndarray
    atom_offsets: np.ndarray  # int64 (molecules + 1,)
    bond_atoms: np.ndarray  # local atom indices within each molecule
    bond_attr: np.ndarray
    bond_type: np.ndarray
    bond_offsets: np.ndarray  # int64 (molecules + 1,)

    ARRAYS = ("x", "elements", "atom_offsets", "bond_atoms", "bond_attr", "bond_type", "bond_offsets")

    @classmethod
    def pack(cls, graphs: Sequence[MolArrays]) -> "PackedGraphs":
        """Concatenate single-molecule graphs."""
        def offsets(counts: list[int]) -> np.ndarray:
            return np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)

        def cat(name: str, width: int | None, dtype: Any) -> np.ndarray:
            parts = [getattr(g, name) for g in graphs]
            if parts:
                return np.concatenate(parts).astype(dtype, copy=False)
            return np.zeros((0,) if width is None else (0, width), dtype=dtype)

        return cls(cat("x", BDE_FEATURIZER.atom_dim, np.float32), cat("elements", None, np.int8),
                   offsets([len(g.x) for g in graphs]), cat("bond_atoms", 2, np.int32),
                   cat("bond_attr", BDE_FEATURIZER.bond_dim, np.float32), cat("bond_type", None, np.int16),
                   offsets([len(g.bond_type) for g in graphs]))

    def __len__(self) -> int:
        return len(self.atom_offsets) - 1

    @property
    def num_bonds(self) -> np.ndarray:
        """Bonds per molecule."""
        return np.diff(self.bond_offsets)

    def atom_rows(self, mol_idx: np.ndarray) -> np.ndarray:
        """Rows of the per-atom arrays that belong to the given molecules, in their order."""
        mol_idx = np.asarray(mol_idx, dtype=np.int64)
        return ranges(self.atom_offsets[mol_idx], np.diff(self.atom_offsets)[mol_idx])

    def bond_rows(self, mol_idx: np.ndarray) -> np.ndarray:
        """Rows of the per-bond arrays that belong to the given molecules, in their order."""
        mol_idx = np.asarray(mol_idx, dtype=np.int64)
        return ranges(self.bond_offsets[mol_idx], self.num_bonds[mol_idx])

    def batch(self, mol_idx: np.ndarray, device: torch.device | str = "cpu") -> dict[str, Any]:
        """Model inputs for the given molecules: one disjoint graph, atoms and bonds in molecule order."""
        mol_idx = np.asarray(mol_idx, dtype=np.int64)
        n_atoms = np.diff(self.atom_offsets)[mol_idx]
        n_bonds = self.num_bonds[mol_idx]
        atom_rows = ranges(self.atom_offsets[mol_idx], n_atoms)
        bond_rows = ranges(self.bond_offsets[mol_idx], n_bonds)
        first_atom = np.cumsum(n_atoms) - n_atoms
        bond_atoms = self.bond_atoms[bond_rows].astype(np.int64) + np.repeat(first_atom, n_bonds)[:, None]
        k = np.arange(len(mol_idx))

        def tensor(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).to(device=device, dtype=dtype)

        return {"x": tensor(self.x[atom_rows], torch.float32),
                "elements": tensor(self.elements[atom_rows], torch.long),
                "bond_atoms": tensor(bond_atoms, torch.long),
                "bond_attr": tensor(self.bond_attr[bond_rows], torch.float32),
                "bond_type": tensor(self.bond_type[bond_rows], torch.long),
                "atom_mol": tensor(np.repeat(k, n_atoms), torch.long),
                "bond_mol": tensor(np.repeat(k, n_bonds), torch.long),
                "num_mols": len(mol_idx), "bond_rows": bond_rows}
