"""How unlike the training compounds an evaluation compound is, and simple chemical classes, for benchmark subsets."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rdkit import Chem, DataStructs
from rdkit.Chem import rdFingerprintGenerator

from nextims.data.featurize import nominal_mass

HALOGENS = {"F", "Cl", "Br", "I"}


def _binary_morgan(smiles: Sequence[str], radius: int, n_bits: int) -> list:
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    return [generator.GetFingerprint(Chem.MolFromSmiles(s)) for s in smiles]


def max_similarity(queries: Sequence[str], reference: Sequence[str], radius: int = 2,
                   n_bits: int = 2048) -> np.ndarray:
    """Per query SMILES, its highest Tanimoto similarity (binary Morgan) to any reference SMILES (0 if none)."""
    if not len(reference):
        return np.zeros(len(queries))
    ref = _binary_morgan(reference, radius, n_bits)
    return np.array([max(DataStructs.BulkTanimotoSimilarity(fp, ref)) for fp in _binary_morgan(queries, radius, n_bits)])


def compound_classes(smiles: Sequence[str]) -> dict[str, np.ndarray]:
    """Boolean masks: halogenated (F, Cl, Br or I), Cl or Br (the halogens with isotope clusters), N-containing,
    aromatic-only (an aromatic ring and no atom outside C and H: benzenes, PAHs) and M > 500 (nominal mass)."""
    mols = [Chem.MolFromSmiles(s) for s in smiles]
    symbols = [{a.GetSymbol() for a in m.GetAtoms()} for m in mols]
    aromatic = [any(a.GetIsAromatic() for a in m.GetAtoms()) for m in mols]
    return {"halogenated": np.array([bool(s & HALOGENS) for s in symbols], dtype=bool),
            "Cl or Br": np.array([bool(s & {"Cl", "Br"}) for s in symbols], dtype=bool),
            "N-containing": np.array(["N" in s for s in symbols], dtype=bool),
            "aromatic-only": np.array([a and s <= {"C", "H"} for a, s in zip(aromatic, symbols)], dtype=bool),
            "M > 500": np.array([nominal_mass(m) > 500 for m in mols], dtype=bool)}
