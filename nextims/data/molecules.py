"""Input molecules for prediction: reading SMILES/CSV/SDF files and standardising each structure."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from rdkit import Chem, rdBase
from rdkit.Chem import rdMolDescriptors
from rdkit.Chem.MolStandardize import rdMolStandardize

from nextims.data.featurize import ELEMENTS, mol_from_smiles, nominal_mass
from nextims.errors import RecordError

# Matches any atom of an element outside ELEMENTS (one substructure search instead of a Python loop over atoms).
_EXOTIC_ATOM = Chem.MolFromSmarts(
    "[" + "&".join(f"!#{Chem.GetPeriodicTable().GetAtomicNumber(e)}" for e in ELEMENTS) + "]")


@dataclass
class InputMolecule:
    """A molecule to predict: its name and the structure as given."""

    name: str
    smiles: str


@dataclass
class PreparedMolecule:
    """A standardised molecule ready for featurization, with a note of what standardisation did."""

    name: str
    mol: Chem.Mol
    smiles: str
    inchikey: str
    formula: str
    mass: int
    note: str = ""


def read_molecules(source: str, smiles_column: str = "smiles", name_column: str = "name") -> Iterator[InputMolecule]:
    """Molecules from a SMILES string, or a .smi / .csv / .sdf file (names default to the line number)."""
    path = Path(source)
    if not path.suffix or not path.exists():
        if path.suffix.lower() in (".smi", ".csv", ".sdf", ".txt"):
            raise FileNotFoundError(f"no input file {source}")
        yield InputMolecule(source, source)
        return
    suffix = path.suffix.lower()
    if suffix in (".smi", ".txt"):
        with path.open(encoding="utf-8") as fh:
            for i, line in enumerate(fh, 1):
                parts = line.split(maxsplit=1)
                if parts and not parts[0].startswith("#"):
                    yield InputMolecule(parts[1].strip() if len(parts) > 1 else f"line{i}", parts[0])
    elif suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            if smiles_column not in (reader.fieldnames or []):
                raise ValueError(f"{source}: no column {smiles_column!r} (columns: {reader.fieldnames})")
            for i, row in enumerate(reader, 2):
                yield InputMolecule(row.get(name_column) or f"row{i}", row[smiles_column] or "")
    elif suffix == ".sdf":
        with rdBase.BlockLogs():
            for i, mol in enumerate(Chem.ForwardSDMolSupplier(str(path)), 1):
                name = mol.GetProp("_Name") if mol is not None and mol.HasProp("_Name") else ""
                yield InputMolecule(name or f"mol{i}", Chem.MolToSmiles(mol) if mol is not None else "")
    else:
        raise ValueError(f"{source}: unknown input type {suffix!r} (use a SMILES string, .smi, .csv or .sdf)")


def prepare_molecule(item: InputMolecule, max_mass: int, max_heavy_atoms: int = 100) -> PreparedMolecule:
    """Parse and standardise: keep the largest organic fragment; reject charged, too-large or exotic molecules."""
    if not item.smiles:
        raise RecordError(item.name, "bad_smiles", "no structure")
    mol = mol_from_smiles(item.smiles, item.name)
    note = ""
    if len(Chem.GetMolFrags(mol)) > 1:
        with rdBase.BlockLogs():
            mol = rdMolStandardize.LargestFragmentChooser(preferOrganic=True).choose(mol)
        note = f"largest organic fragment of {item.smiles}"
    if Chem.GetFormalCharge(mol) != 0:
        raise RecordError(item.name, "net_charge", f"charge {Chem.GetFormalCharge(mol):+d}")
    if mol.HasSubstructMatch(_EXOTIC_ATOM):
        exotic = sorted({a.GetSymbol() for a in mol.GetAtoms()} - set(ELEMENTS))
        raise RecordError(item.name, "unsupported_element", ",".join(exotic))
    mass = nominal_mass(mol)
    if mol.GetNumHeavyAtoms() > max_heavy_atoms or mass > max_mass:
        raise RecordError(item.name, "too_large", f"{mol.GetNumHeavyAtoms()} heavy atoms, nominal mass {mass}")
    return PreparedMolecule(item.name, mol, Chem.MolToSmiles(mol), Chem.MolToInchiKey(mol),
                            rdMolDescriptors.CalcMolFormula(mol), mass, note)
