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

from nextims.data.featurize import BOND_TYPES, side_masses

# Bump when a site's content or layout changes (part of the features cache key).
SITES_VERSION = 1
NUM_BOND_KINDS = len(BOND_TYPES) + 1  # the last kind: any other bond type
# the bond orders RDKit's adjacency matrix gives the bonds of BOND_TYPES (single, double, triple, aromatic)
BOND_ORDERS = (1.0, 2.0, 3.0, 1.5)


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
    pad = (-1,) * (radius + 1)
    env = np.array([(bits + pad)[: radius + 1] for bits in output.GetAtomToBits()], dtype=np.int32)
    env = env.reshape(mol.GetNumAtoms(), radius + 1)
    # bonds from the bond-order matrix (one RDKit call instead of a loop over bond objects)
    order = Chem.GetAdjacencyMatrix(mol, useBO=True)
    begin, end = np.nonzero(order)
    upper = begin < end  # each bond once (np.triu would cost more than the rest of the bond bookkeeping)
    begin, end = begin[upper], end[upper]
    end_side, begin_side = side_masses(mol, begin, end)
    acyclic = end_side > 0  # side_masses gives ring bonds 0; both parts of any other cut hold an atom
    begin, end, end_side, begin_side = begin[acyclic], end[acyclic], end_side[acyclic], begin_side[acyclic]
    kind = np.full(len(begin), len(BOND_ORDERS), dtype=np.int8)
    for k, bond_order in enumerate(BOND_ORDERS):
        kind[order[begin, end] == bond_order] = k
    # each bond in both directions: near -> far, the ion is the far part
    near, far = np.concatenate([begin, end]), np.concatenate([end, begin])
    mass = np.concatenate([end_side, begin_side]).astype(np.int32)
    return fp, CleavageSites(env[near], env[far], np.concatenate([kind, kind]), mass,
                             np.array([0, len(mass)], np.int64))
