"""Cleavage sites: for each directed non-ring bond of a molecule, what a model without message passing needs to
place the ion on the bond's far side: the Morgan environments of its near and far atoms (the bits each atom
sets in the count fingerprint, radius 0..r), the bond's kind and the far part's nominal mass."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from rdkit import Chem
from rdkit.Chem import rdFingerprintGenerator

from nextims.data.featurize import BOND_TYPES, fragment_masses

# Bump when a site's content or layout changes (part of the features cache key).
SITES_VERSION = 1
NUM_BOND_KINDS = len(BOND_TYPES) + 1  # the last kind: any other bond type


@lru_cache(maxsize=8)
def _generator(n_bits: int, radius: int) -> Any:
    return rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)


def ragged_rows(offsets: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a ragged array whose group i holds rows offsets[i]:offsets[i+1]: the rows of the given groups in their
    order, and for each row its position in `groups`."""
    groups = np.asarray(groups, dtype=np.int64)
    starts, counts = offsets[groups], np.diff(offsets)[groups]
    owner = np.repeat(np.arange(len(groups)), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts) + np.arange(int(counts.sum())) - first, owner


@dataclass
class CleavageSites:
    """The sites of one or more molecules, concatenated; molecule i owns sites offsets[i]:offsets[i+1].

    near, far: (S, radius + 1) fingerprint bits of the two atoms' environments (-1 where an atom has fewer);
    kind: (S,) bond kind (index into BOND_TYPES, or len(BOND_TYPES)); mass: (S,) the far part's nominal mass.
    """

    near: np.ndarray
    far: np.ndarray
    kind: np.ndarray
    mass: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @classmethod
    def concat(cls, parts: Sequence["CleavageSites"], width: int) -> "CleavageSites":
        """The sites of several molecules (or groups of molecules) in order."""
        if not parts:
            return cls(np.zeros((0, width), np.int32), np.zeros((0, width), np.int32), np.zeros(0, np.int8),
                       np.zeros(0, np.int32), np.zeros(1, np.int64))
        counts = np.concatenate([np.diff(p.offsets) for p in parts])
        return cls(np.concatenate([p.near for p in parts]), np.concatenate([p.far for p in parts]),
                   np.concatenate([p.kind for p in parts]), np.concatenate([p.mass for p in parts]),
                   np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))

    def take(self, molecules: np.ndarray, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """Model inputs for the sites of the given molecules: near, far (missing bits as -1), kind, mass and owner
        (each site's position in `molecules`)."""
        rows, owner = ragged_rows(self.offsets, molecules)
        return {"near": torch.from_numpy(self.near[rows].astype(np.int64)).to(device),
                "far": torch.from_numpy(self.far[rows].astype(np.int64)).to(device),
                "kind": torch.from_numpy(self.kind[rows].astype(np.int64)).to(device),
                "mass": torch.from_numpy(self.mass[rows].astype(np.int64)).to(device),
                "owner": torch.from_numpy(owner).to(device)}


def fingerprint_and_sites(mol: Chem.Mol, n_bits: int = 4096, radius: int = 2) -> tuple[np.ndarray, CleavageSites]:
    """The count Morgan fingerprint of mol (float32, as `count_morgan`) and its cleavage sites, from one pass of
    the fingerprint generator."""
    output = rdFingerprintGenerator.AdditionalOutput()
    output.AllocateAtomToBits()
    fp = _generator(n_bits, radius).GetCountFingerprintAsNumPy(mol, additionalOutput=output).astype(np.float32)
    env = np.full((mol.GetNumAtoms(), radius + 1), -1, dtype=np.int32)
    for atom, bits in enumerate(output.GetAtomToBits()):
        env[atom, : len(bits)] = bits[: radius + 1]
    bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx(), b.GetIdx(), b.GetBondType())
             for b in mol.GetBonds() if not b.IsInRing()]
    if not bonds:
        empty = np.zeros((0, radius + 1), np.int32)
        return fp, CleavageSites(empty, empty.copy(), np.zeros(0, np.int8), np.zeros(0, np.int32),
                                 np.zeros(2, np.int64))
    frag = fragment_masses(mol)
    begin, end, index = (np.array([b[i] for b in bonds]) for i in range(3))
    kind = np.array([BOND_TYPES.index(b[3]) if b[3] in BOND_TYPES else len(BOND_TYPES) for b in bonds], np.int8)
    # directed edge 2b runs begin -> end (its far part holds the end atom), 2b+1 end -> begin
    near, far = np.concatenate([begin, end]), np.concatenate([end, begin])
    mass = np.concatenate([frag[2 * index], frag[2 * index + 1]]).astype(np.int32)
    return fp, CleavageSites(env[near], env[far], np.concatenate([kind, kind]), mass,
                             np.array([0, len(mass)], np.int64))
