"""Molecule featurization: RDKit parsing, count Morgan fingerprints, nominal mass and graphs."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, NoReturn

import numpy as np
import rdkit
import torch
from rdkit import Chem, rdBase
from rdkit.Chem import rdFingerprintGenerator, rdMolDescriptors
from torch_geometric.data import Data

from nextims.errors import RecordError

# Bump whenever a change to this module changes any feature value or layout (invalidates caches).
FEATURE_VERSION = 1

ELEMENTS = ("C", "H", "N", "O", "S", "Cl", "F", "P", "Br", "I", "Si", "B", "Se")
MAX_DEGREE = 5
FORMAL_CHARGES = (-2, -1, 0, 1, 2)
MAX_HS = 4
HYBRIDIZATIONS = (
    Chem.HybridizationType.S,
    Chem.HybridizationType.SP,
    Chem.HybridizationType.SP2,
    Chem.HybridizationType.SP3,
    Chem.HybridizationType.SP3D,
    Chem.HybridizationType.SP3D2,
)
RING_SIZES = (3, 4, 5, 6, 7, 8)
BOND_TYPES = (
    Chem.BondType.SINGLE,
    Chem.BondType.DOUBLE,
    Chem.BondType.TRIPLE,
    Chem.BondType.AROMATIC,
)
Z_STEREO = (Chem.BondStereo.STEREOZ, Chem.BondStereo.STEREOCIS)
E_STEREO = (Chem.BondStereo.STEREOE, Chem.BondStereo.STEREOTRANS)

_PERIODIC_TABLE = Chem.GetPeriodicTable()
# one element of a formula: `[13C]` (a label), or a symbol, each with its count
_FORMULA_PART = re.compile(r"(?:\[(\d+)([A-Z][a-z]?)\]|([A-Z][a-z]?))(\d*)")


def mol_from_smiles(smiles: str, record: str = "?") -> Chem.Mol:
    """Parse and sanitize a SMILES string, raising RecordError(record, 'bad_smiles') on failure."""
    if not isinstance(smiles, str) or not smiles.strip():
        raise RecordError(record, "bad_smiles", f"empty or not a string: {smiles!r}")
    with rdBase.BlockLogs():  # silence RDKit's own error logging; the RecordError says it all
        mol = Chem.MolFromSmiles(smiles)
        if mol is None:
            _raise_parse_error(smiles, record)
    if mol.GetNumAtoms() == 0:
        raise RecordError(record, "bad_smiles", f"no atoms in {smiles!r}")
    return mol


def _raise_parse_error(smiles: str, record: str) -> NoReturn:
    """Raise a RecordError saying why smiles cannot be parsed or sanitized."""
    mol = Chem.MolFromSmiles(smiles, sanitize=False)
    if mol is None:
        raise RecordError(record, "bad_smiles", f"cannot parse {smiles!r}")
    try:
        Chem.SanitizeMol(mol)
    except Exception as err:  # RDKit raises several unrelated exception types
        raise RecordError(record, "bad_smiles", f"cannot sanitize {smiles!r}: {err}") from None
    raise RecordError(record, "bad_smiles", f"cannot read {smiles!r}")


@lru_cache(maxsize=8)
def _morgan_generator(n_bits: int, radius: int) -> Any:
    return rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)


def count_morgan(mol: Chem.Mol, n_bits: int = 4096, radius: int = 2) -> np.ndarray:
    """Count Morgan fingerprint of mol as a float32 vector of length n_bits."""
    return _morgan_generator(n_bits, radius).GetCountFingerprintAsNumPy(mol).astype(np.float32)


def nominal_mass(mol: Chem.Mol) -> int:
    """Nominal mass: integer masses of the most abundant isotopes (or labelled ones), hydrogens included."""
    return _formula_nominal_mass(rdMolDescriptors.CalcMolFormula(mol, True, False))


@lru_cache(maxsize=65536)
def _formula_nominal_mass(formula: str) -> int:
    """Nominal mass of a formula as CalcMolFormula writes it with isotopes apart (`C[13C]H3[2H]2Cl`)."""
    total = 0
    for label, labelled, element, count in _FORMULA_PART.findall(formula):
        mass = int(label) if label else _PERIODIC_TABLE.GetMostCommonIsotope(labelled or element)
        total += mass * (int(count) if count else 1)
    return total


def atom_masses(mol: Chem.Mol) -> np.ndarray:
    """Per atom, its nominal mass (most abundant isotope, or its label) plus its hydrogens'."""
    most_common, atom_at = _PERIODIC_TABLE.GetMostCommonIsotope, mol.GetAtomWithIdx
    masses = []
    for i in range(mol.GetNumAtoms()):  # by index: iterating mol.GetAtoms() costs more than the work
        atom = atom_at(i)
        masses.append((atom.GetIsotope() or most_common(atom.GetAtomicNum())) + atom.GetTotalNumHs())
    return np.array(masses, dtype=np.int64)


def ring_bonds(mol: Chem.Mol, begin: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Whether each bond begin[i]-end[i] lies in a ring (its two atoms share a ring of the ring perception)."""
    rings = mol.GetRingInfo().AtomRings()
    if not rings or not len(begin):
        return np.zeros(len(begin), dtype=bool)
    member = np.zeros((len(rings), mol.GetNumAtoms()), dtype=bool)
    member[np.repeat(np.arange(len(rings)), [len(r) for r in rings]), np.concatenate(rings)] = True
    return (member[:, begin] & member[:, end]).any(axis=0)


def side_masses(mol: Chem.Mol, begin: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each bond begin[i]-end[i]: the nominal masses of the part holding end[i] and of the part holding
    begin[i] once the bond is cut (0 and 0 for ring bonds, whose cut leaves the molecule in one piece).

    Cutting a bond outside a ring leaves on end's side exactly the atoms nearer (in bonds) to end than to begin,
    so one topological distance matrix (computed in RDKit, cached on the molecule) gives every bond's parts.
    """
    begin, end = np.asarray(begin, dtype=np.int64), np.asarray(end, dtype=np.int64)
    if not len(begin):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    mass = atom_masses(mol)
    distance = Chem.GetDistanceMatrix(mol)
    near_end = distance[:, end] < distance[:, begin]
    near_begin = distance[:, begin] < distance[:, end]
    ring = ring_bonds(mol, begin, end)
    return np.where(ring, 0, mass @ near_end), np.where(ring, 0, mass @ near_begin)


def fragment_masses(mol: Chem.Mol) -> np.ndarray:
    """Per directed edge (2b: begin->end, 2b+1: end->begin of bond b), the nominal mass of the part holding the
    edge's end atom once bond b is cut; 0 for ring bonds, whose cut leaves the molecule in one piece."""
    ends = np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()], dtype=np.int64).reshape(-1, 2)
    end_side, begin_side = side_masses(mol, ends[:, 0], ends[:, 1])
    return np.stack([end_side, begin_side], axis=1).reshape(-1).astype(np.int32)


def _one_hot_index(value: Any, choices: tuple) -> int:
    """Position of value in choices, or len(choices) for 'other'."""
    try:
        return choices.index(value)
    except ValueError:
        return len(choices)


@dataclass(frozen=True)
class MolGraphFeaturizer:
    """Turns an RDKit molecule into a torch_geometric graph.

    Atom features (`x`, float32): element one-hot (ELEMENTS + other), degree one-hot (0..5, capped),
    formal charge one-hot (-2..2 + other), total H count one-hot (0..4, capped; only when hydrogens are
    implicit), hybridisation one-hot (S, SP, SP2, SP3, SP3D, SP3D2 + other), aromatic, in ring,
    in ring of size 3..8, atomic mass / 100.

    Bond features (`edge_attr`, float32): bond type one-hot (single, double, triple, aromatic),
    conjugated, in ring, stereo one-hot (none, Z/cis, E/trans, other).

    Fragment masses (`frag_mass`, int64, per edge): see `fragment_masses`.

    Edge order: edge columns 2b and 2b+1 are RDKit bond b (of the featurized molecule, i.e. after
    `Chem.AddHs` when `explicit_hydrogens`) as begin->end and end->begin. Per-bond data (such as bond
    dissociation energies) indexed by RDKit bond index therefore maps to edges by `repeat_interleave(2)`.
    """

    explicit_hydrogens: bool = False

    @property
    def atom_dim(self) -> int:
        """Number of atom features."""
        n = (len(ELEMENTS) + 1) + (MAX_DEGREE + 1) + (len(FORMAL_CHARGES) + 1)
        n += 0 if self.explicit_hydrogens else MAX_HS + 1
        return n + (len(HYBRIDIZATIONS) + 1) + 2 + len(RING_SIZES) + 1

    @property
    def bond_dim(self) -> int:
        """Number of bond features."""
        return len(BOND_TYPES) + 2 + 4

    def prepare(self, mol: Chem.Mol) -> Chem.Mol:
        """The molecule whose atoms and bonds become nodes and edges (hydrogens added when explicit)."""
        return Chem.AddHs(mol) if self.explicit_hydrogens else mol

    def _atom_hot(self, atom: Chem.Atom) -> list[int]:
        """Column indices of the atom's one-hot and binary features that are 1."""
        hot = [_one_hot_index(atom.GetSymbol(), ELEMENTS)]
        offset = len(ELEMENTS) + 1
        hot.append(offset + min(atom.GetDegree(), MAX_DEGREE))
        offset += MAX_DEGREE + 1
        hot.append(offset + _one_hot_index(atom.GetFormalCharge(), FORMAL_CHARGES))
        offset += len(FORMAL_CHARGES) + 1
        if not self.explicit_hydrogens:
            hot.append(offset + min(atom.GetTotalNumHs(), MAX_HS))
            offset += MAX_HS + 1
        hot.append(offset + _one_hot_index(atom.GetHybridization(), HYBRIDIZATIONS))
        offset += len(HYBRIDIZATIONS) + 1
        if atom.GetIsAromatic():
            hot.append(offset)
        if atom.IsInRing():
            hot.append(offset + 1)
            hot.extend(offset + 2 + i for i, k in enumerate(RING_SIZES) if atom.IsInRingSize(k))
        return hot

    @staticmethod
    def _bond_hot(bond: Chem.Bond) -> list[int]:
        """Column indices of the bond's features that are 1."""
        hot = []
        kind = _one_hot_index(bond.GetBondType(), BOND_TYPES)
        if kind < len(BOND_TYPES):
            hot.append(kind)
        offset = len(BOND_TYPES)
        if bond.GetIsConjugated():
            hot.append(offset)
        if bond.IsInRing():
            hot.append(offset + 1)
        stereo = bond.GetStereo()
        if stereo == Chem.BondStereo.STEREONONE:
            hot.append(offset + 2)
        elif stereo in Z_STEREO:
            hot.append(offset + 3)
        elif stereo in E_STEREO:
            hot.append(offset + 4)
        else:
            hot.append(offset + 5)
        return hot

    def __call__(self, mol: Chem.Mol) -> Data:
        """The graph of mol (see the class docstring for the feature and edge layout)."""
        mol = self.prepare(mol)
        atoms = list(mol.GetAtoms())
        x = np.zeros((len(atoms), self.atom_dim), dtype=np.float32)
        for i, atom in enumerate(atoms):
            x[i, self._atom_hot(atom)] = 1.0
        x[:, -1] = [atom.GetMass() / 100.0 for atom in atoms]

        bonds = list(mol.GetBonds())
        edge_attr = np.zeros((2 * len(bonds), self.bond_dim), dtype=np.float32)
        ends = np.zeros((len(bonds), 2), dtype=np.int64)
        for b, bond in enumerate(bonds):
            ends[b] = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
            edge_attr[2 * b : 2 * b + 2, self._bond_hot(bond)] = 1.0
        # Rows (begin, end) and (end, begin) interleaved: column 2b is begin->end, 2b+1 is end->begin.
        edge_index = np.stack([ends, ends[:, ::-1]], axis=1).reshape(-1, 2).T
        return Data(
            x=torch.from_numpy(x),
            edge_index=torch.from_numpy(np.ascontiguousarray(edge_index)),
            edge_attr=torch.from_numpy(edge_attr),
            frag_mass=torch.from_numpy(fragment_masses(mol).astype(np.int64)),
            num_nodes=len(atoms),
        )


def featurizer_signature(featurizer: MolGraphFeaturizer, n_bits: int, radius: int) -> dict[str, Any]:
    """Everything that determines the features, for cache keys."""
    return {
        "feature_version": FEATURE_VERSION,
        "rdkit": rdkit.__version__,
        "fingerprint": {"kind": "count_morgan", "n_bits": int(n_bits), "radius": int(radius)},
        "graph": {"class": type(featurizer).__name__, **asdict(featurizer)},
    }
