"""The two-cut pieces of molecules for the fragment head: for each molecule, the pieces that two bond cleavages
cut out (`fragment_pieces` with n_cuts 2: the middle piece of two bonds outside rings, either side of a ring
system opened twice), each with its atoms, its two cut bonds and its nominal mass, stored ragged so that
batches gather them as the graphs' atoms and bonds are gathered.

Atom indices are those of the molecule as parsed (the graph featurizer's node order without explicit hydrogens);
bond indices are RDKit's, so bond b is the graph's edges 2b and 2b+1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from rdkit import Chem

from nextims.data.envelopes import Envelopes, EnvelopeTable
from nextims.data.fragments import Pieces, fragment_pieces
from nextims.data.sites import ragged_rows


@dataclass
class TwoCutPieces:
    """The two-cut pieces of one or more molecules: molecule i owns pieces piece_offsets[i]:piece_offsets[i+1];
    piece p owns atoms[atom_offsets[p]:atom_offsets[p+1]] (local to its molecule); cuts (P, 2) its cut bonds;
    mass (P,) its nominal mass, hydrogens included."""

    mass: np.ndarray
    cuts: np.ndarray
    atoms: np.ndarray
    atom_offsets: np.ndarray
    piece_offsets: np.ndarray

    @classmethod
    def from_pieces(cls, pieces: Pieces) -> "TwoCutPieces":
        """The two-cut pieces of one molecule's `fragment_pieces(mol, max_cuts=2)`."""
        two = np.flatnonzero(pieces.n_cuts == 2)
        rows = pieces.atoms[two]
        atoms = pieces.nodes[np.nonzero(rows)[1]].astype(np.int32)
        sizes = rows.sum(axis=1)
        cuts = np.array([pieces.cuts[p] for p in two.tolist()], dtype=np.int32).reshape(-1, 2)
        return cls(pieces.mass[two].astype(np.int32), cuts, atoms,
                   np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64), np.array([0, len(two)], np.int64))

    @classmethod
    def of(cls, mols: Sequence[Chem.Mol]) -> "TwoCutPieces":
        """The two-cut pieces of mols."""
        return cls.concat([cls.from_pieces(fragment_pieces(m, max_cuts=2)) for m in mols])

    @classmethod
    def concat(cls, parts: Sequence["TwoCutPieces"]) -> "TwoCutPieces":
        """The pieces of several groups of molecules, in order."""
        if not parts:
            return cls(np.zeros(0, np.int32), np.zeros((0, 2), np.int32), np.zeros(0, np.int32),
                       np.zeros(1, np.int64), np.zeros(1, np.int64))
        atom_shift = np.cumsum([0] + [len(p.atoms) for p in parts])
        piece_shift = np.cumsum([0] + [len(p.mass) for p in parts])
        return cls(np.concatenate([p.mass for p in parts]), np.concatenate([p.cuts for p in parts]),
                   np.concatenate([p.atoms for p in parts]),
                   np.concatenate([[0]] + [p.atom_offsets[1:] + s for p, s in zip(parts, atom_shift)]),
                   np.concatenate([[0]] + [p.piece_offsets[1:] + s for p, s in zip(parts, piece_shift)]))

    def take(self, molecules: np.ndarray, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """The pieces of the given molecules as tensors: owner (P,) the molecule's position in `molecules`, mass
        (P,), cuts (P, 2) bond indices local to the molecule, atom (A,) atom indices local to the molecule and
        atom_piece (A,) the piece (0..P-1) each atom entry belongs to."""
        pieces, owner = ragged_rows(self.piece_offsets, np.asarray(molecules, dtype=np.int64))
        atom_rows, atom_piece = ragged_rows(self.atom_offsets, pieces)
        out = {"owner": owner, "mass": self.mass[pieces].astype(np.int64), "cuts": self.cuts[pieces].astype(np.int64),
               "atom": self.atoms[atom_rows].astype(np.int64), "atom_piece": atom_piece}
        return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in out.items()}


def envelopes_and_pieces(mols: Sequence[Chem.Mol], size: int, envelope_width: int,
                         with_pieces: bool) -> tuple[Envelopes | None, TwoCutPieces | None]:
    """The isotope envelopes over `size` bins (with envelope_width) and the two-cut pieces (with with_pieces) of
    mols, from one fragment enumeration per molecule."""
    if not envelope_width and not with_pieces:
        return None, None
    table = EnvelopeTable(size, envelope_width) if envelope_width else None
    rows, two_cut = [], []
    for mol in mols:
        pieces = fragment_pieces(mol, max_cuts=2)
        if table is not None:
            rows.append(table.row(mol, pieces))
        if with_pieces:
            two_cut.append(TwoCutPieces.from_pieces(pieces))
    return (table.envelopes(rows) if table is not None else None,
            TwoCutPieces.concat(two_cut) if with_pieces else None)
