"""Isotope patterns at unit mass resolution, from an elemental formula (natural abundances, IUPAC 2013)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import numpy as np
from rdkit import Chem

# Per element: (nominal mass offset from the most abundant isotope, abundance). Elements not listed are taken as
# monoisotopic (F, P, I, Na, ...).
ISOTOPES: dict[str, tuple[tuple[int, float], ...]] = {
    "H": ((0, 0.999885), (1, 0.000115)),
    "C": ((0, 0.9893), (1, 0.0107)),
    "N": ((0, 0.99636), (1, 0.00364)),
    "O": ((0, 0.99757), (1, 0.00038), (2, 0.00205)),
    "S": ((0, 0.9499), (1, 0.0075), (2, 0.0425), (4, 0.0001)),
    "Si": ((0, 0.92223), (1, 0.04685), (2, 0.03092)),
    "Cl": ((0, 0.7576), (2, 0.2424)),
    "Br": ((0, 0.5069), (2, 0.4931)),
    "B": ((-1, 0.199), (0, 0.801)),
    "Se": ((-6, 0.0089), (-4, 0.0937), (-3, 0.0763), (-2, 0.2377), (0, 0.4961), (2, 0.0873)),
}


def _element_pattern(element: str) -> tuple[int, np.ndarray]:
    """(lowest offset, abundances by offset) of one atom of element."""
    isotopes = ISOTOPES.get(element, ((0, 1.0),))
    low = min(o for o, _ in isotopes)
    out = np.zeros(max(o for o, _ in isotopes) - low + 1)
    for offset, abundance in isotopes:
        out[offset - low] = abundance
    return low, out


def _trimmed(pattern: np.ndarray, floor: float) -> np.ndarray:
    """pattern scaled to a maximum of 1, its trailing entries below floor dropped."""
    pattern = pattern / pattern.max()
    return pattern[: np.nonzero(pattern >= floor)[0][-1] + 1]


def isotope_pattern(counts: Mapping[str, int], floor: float = 1e-9) -> tuple[int, np.ndarray]:
    """The unit-mass isotope pattern of a formula: (offset of the first entry from the nominal mass, relative
    abundances scaled to a maximum of 1). Entries below `floor` of the maximum are trimmed from both ends."""
    low, pattern = 0, np.ones(1)
    for element, n in counts.items():
        if n < 0:
            raise ValueError(f"negative count {n} of {element}")
        element_low, base = _element_pattern(element)
        power, k = np.ones(1), int(n)
        while k:  # exponentiation by squaring: an n-fold convolution in log2(n) steps
            if k & 1:
                power = _trimmed(np.convolve(power, base), floor * 1e-3)
            base = _trimmed(np.convolve(base, base), floor * 1e-3)
            k >>= 1
        low += element_low * int(n)
        pattern = _trimmed(np.convolve(pattern, power), floor * 1e-3)
    kept = np.nonzero(pattern >= floor)[0]
    return low + int(kept[0]), pattern[kept[0]: kept[-1] + 1]


def element_counts(mol: Chem.Mol) -> Counter:
    """Element symbol -> number of atoms, implicit hydrogens included (isotope labels ignored)."""
    counts: Counter = Counter()
    for atom in mol.GetAtoms():
        counts[atom.GetSymbol()] += 1
        counts["H"] += atom.GetTotalNumHs()
    return +counts  # drops zero counts


def heaviest_isotopologue_offset(counts: Mapping[str, int], min_abundance: float = 0.05) -> int:
    """How far above the nominal mass the heaviest isotopologue with at least min_abundance of the most
    abundant one lies (e.g. 8 for C2Cl4 at 0.05: its cluster runs M..M+8)."""
    low, pattern = isotope_pattern(counts)
    return low + int(np.nonzero(pattern >= min_abundance)[0][-1])
