"""Isotope envelopes for the spectrum heads: for each m/z bin of a molecule, the isotope pattern of the ions that
most likely sit there, so a model can predict one intensity per ion and let the pattern spread it over m, m+1, ...

The ions are the pieces of up to two bond cleavages (`fragment_pieces`, the molecular ion included). A bin takes
the mean pattern of the pieces whose nominal mass is nearest to it (the lighter ones on a tie): a piece's own
mass, the masses its hydrogen transfers reach, and every bin above the molecular ion get the pattern of a piece
that can be there. Patterns hold the offsets 0..width-1 from the nominal mass and sum to 1; isotopologues lighter
than the nominal mass (10B, the lighter Se isotopes) and heavier than width-1 are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from rdkit import Chem

from nextims.data.fragments import Pieces, fragment_pieces
from nextims.data.isotopes import ISOTOPES, isotope_pattern

# offsets 0..12: the molecular cluster of C6Cl6 runs to M+10, of Br4 compounds to M+8
DEFAULT_WIDTH = 13


@lru_cache(maxsize=1 << 16)
def composition_pattern(composition: tuple[tuple[str, int], ...], width: int) -> np.ndarray:
    """The isotope pattern (width,) of an elemental composition ((element, count), ...), summing to 1."""
    low, pattern = isotope_pattern(dict(composition))
    offsets = low + np.arange(len(pattern))
    keep = (offsets >= 0) & (offsets < width)
    out = np.zeros(width, np.float64)
    out[offsets[keep]] = pattern[keep]
    out /= out.sum()
    out.setflags(write=False)
    return out


class EnvelopeTable:
    """Builds envelopes of molecules over `size` bins, sharing one table of distinct patterns."""

    def __init__(self, size: int, width: int = DEFAULT_WIDTH) -> None:
        if width < 1:
            raise ValueError(f"an isotope envelope needs width >= 1, got {width}")
        self.size, self.width = int(size), int(width)
        self._ids: dict[tuple, int] = {}
        self._patterns: list[np.ndarray] = []

    def _pattern_id(self, group: tuple[tuple[tuple[str, int], ...], ...]) -> int:
        found = self._ids.get(group)
        if found is None:
            found = self._ids[group] = len(self._patterns)
            self._patterns.append(np.mean([composition_pattern(c, self.width) for c in group], axis=0))
        return found

    def row(self, mol: Chem.Mol, pieces: Pieces | None = None) -> np.ndarray:
        """The pattern index (size,) of each bin of mol; pieces: its `fragment_pieces(mol, max_cuts=2)` when
        already enumerated."""
        pieces = fragment_pieces(mol, max_cuts=2) if pieces is None else pieces
        columns = [k for k, e in enumerate(pieces.elements) if e in ISOTOPES]
        names = [pieces.elements[k] for k in columns]
        by_mass: dict[int, set] = {}
        for mass, counts in zip(pieces.mass.tolist(), pieces.counts[:, columns].tolist()):
            by_mass.setdefault(mass, set()).add(tuple((e, c) for e, c in zip(names, counts) if c))
        masses = np.array(sorted(by_mass), dtype=np.int64)
        ids = np.array([self._pattern_id(tuple(sorted(by_mass[m]))) for m in masses.tolist()], dtype=np.int32)
        bins = np.arange(self.size)
        above = np.searchsorted(masses, bins).clip(max=len(masses) - 1)
        below = (above - 1).clip(min=0)
        nearer_below = np.abs(bins - masses[below]) <= np.abs(masses[above] - bins)
        return ids[np.where(nearer_below, below, above)]

    def envelopes(self, rows: Sequence[np.ndarray]) -> "Envelopes":
        """The envelopes of molecules whose rows this table built."""
        patterns = (np.stack(self._patterns) if self._patterns else np.zeros((0, self.width))).astype(np.float32)
        index = np.stack(rows) if len(rows) else np.zeros((0, self.size), np.int32)
        return Envelopes(patterns, index.astype(np.int32))


@dataclass
class Envelopes:
    """Isotope envelopes of molecules: index (molecules, bins) into patterns (distinct patterns, width)."""

    patterns: np.ndarray
    index: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    @classmethod
    def of(cls, mols: Sequence[Chem.Mol], size: int, width: int = DEFAULT_WIDTH) -> "Envelopes":
        """The envelopes of mols over `size` bins."""
        table = EnvelopeTable(size, width)
        return table.envelopes([table.row(m) for m in mols])

    @classmethod
    def concat(cls, parts: Sequence["Envelopes"], size: int, width: int) -> "Envelopes":
        """The envelopes of several groups of molecules, in order."""
        offsets = np.cumsum([0] + [len(p.patterns) for p in parts])
        patterns = [p.patterns for p in parts] or [np.zeros((0, width), np.float32)]
        index = [p.index + np.int32(o) for p, o in zip(parts, offsets)] or [np.zeros((0, size), np.int32)]
        return cls(np.concatenate(patterns), np.concatenate(index))

    def take(self, molecules: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
        """The envelopes (len(molecules), bins, width) of the given molecules."""
        return torch.from_numpy(self.patterns[self.index[np.asarray(molecules, dtype=np.int64)]]).to(device)
