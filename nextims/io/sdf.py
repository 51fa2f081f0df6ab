"""Reader for NEIMS-style SDF (NIST library SDF export: a mol block, then spectrum and name properties)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rdkit import Chem, rdBase

from nextims.errors import DropReport, RecordError
from nextims.io.text import RecordFormat, iter_spectra, parse_peak_pairs, store_field
from nextims.spectrum import Spectrum, validate_peaks

PEAKS_PROPERTY = "MASS SPECTRAL PEAKS"
# Properties (upper-cased) that map to standard metadata keys; the rest keep their lower-cased names.
_PROPERTIES = {"NAME": "name", "INCHIKEY": "inchikey", "FORMULA": "formula", "MOLECULAR FORMULA": "formula",
               "MW": "mw", "MOLECULAR WEIGHT": "mw", "EXACT MASS": "exact_mass", "EXACT_MASS": "exact_mass",
               "INCHI": "inchi"}
_FLOATS = {"mw", "exact_mass"}
_PROPERTY_HEADER = re.compile(r"^>.*?<([^>]*)>")


def parse_sdf_record(text: str, terminated: bool = True, where: str = "?") -> Spectrum:
    """The Spectrum of one SDF record's text (without `$$$$`); its structure is parsed with RDKit."""
    mol_block, properties, joined = _split(text)
    title = text.partition("\n")[0].strip()
    record = _record_id(title, properties) or where
    if not terminated:
        raise RecordError(record, "truncated", "the file ends before the record's $$$$ line")
    if not mol_block:
        raise RecordError(record, "bad_structure", "no `M  END` line")
    if joined:
        raise RecordError(record, *joined)
    if PEAKS_PROPERTY not in properties:
        raise RecordError(record, "no_peaks", f"no <{PEAKS_PROPERTY}> property")
    mz, intensities = parse_peak_pairs("\n".join(properties.pop(PEAKS_PROPERTY)), record)
    validate_peaks(mz, intensities, record)
    metadata = _metadata(properties)
    if title:
        metadata.setdefault("name", title)
    metadata["id"] = record
    metadata.update(_structure(mol_block, record, metadata.get("inchikey")))
    return Spectrum(mz, intensities, metadata)


def read_sdf(path: str | Path, report: DropReport | None = None, encoding: str = "utf-8") -> Iterator[Spectrum]:
    """Spectra of a NEIMS-style SDF file (plain, .gz, .xz or .bz2)."""
    return iter_spectra(path, FORMAT, report, encoding)


def _is_end(line: bytes) -> bool:
    return line.rstrip() == b"$$$$"


def _split(text: str) -> tuple[str, dict[str, list[str]], tuple[str, str] | None]:
    """The mol block (through `M  END`; empty if there is none) and the data items (name -> lines) of a record, and
    (reason, detail) when the text holds two records that a lost `$$$$` line joined: a second `M  END` line, lines
    in the mol block that belong to none of its parts, or a data item given twice with different values (given
    twice alike, it is kept once)."""
    lines = text.splitlines()
    end = next((i for i, line in enumerate(lines) if line.startswith("M  END")), None)
    if end is None:
        return "", {}, None
    items: list[tuple[str, list[str]]] = []
    joined: tuple[str, str] | None = None
    if _foreign_lines(lines[:end]):
        joined = ("bad_structure", "lines after the mol block's bonds that are no property lines (another record's "
                                   "text: a $$$$ line missing?)")
    current: list[str] | None = None
    for line in lines[end + 1:]:
        header = _PROPERTY_HEADER.match(line)
        if header:
            current = []
            items.append((header.group(1).strip().upper(), current))
        elif line.startswith("M  END"):
            joined = joined or ("bad_structure", "two mol blocks (`M  END` twice): a $$$$ line is missing")
        elif not line.strip():
            current = None
        elif current is not None:
            current.append(line.rstrip())
    properties: dict[str, list[str]] = {}
    for name, values in items:
        if properties.setdefault(name, values) != values:
            joined = joined or ("conflicting_field", f"<{name}> given twice: {' '.join(properties[name])!r} and "
                                                     f"{' '.join(values)!r}")
    return "\n".join(lines[:end + 1]) + "\n", properties, joined


def _foreign_lines(lines: list[str]) -> bool:
    """Whether the lines of a V2000 mol block before `M  END` hold, after the atoms and bonds its counts line
    announces, a line that is no property line: RDKit ignores such lines, so the block reads as a molecule even
    when the lines are those of the next record's mol block."""
    try:
        i = 4 + int(lines[3][0:3]) + int(lines[3][3:6])
    except (IndexError, ValueError):
        return False  # no counts line to go by: RDKit refuses the block or reads it as it is
    while i < len(lines):
        if not lines[i].startswith(("M  ", "A  ", "G  ", "V  ", "S  ")):
            return True
        i += 2 if lines[i].startswith(("A  ", "G  ")) else 1  # an atom alias or group: a line of text follows
    return False


def _record_id(title: str, properties: dict[str, list[str]]) -> str | None:
    """ID DB NO, else NIST NO, else NAME, else the mol block's title."""
    for key in ("ID DB NO", "NIST NO", "NAME"):
        if properties.get(key):
            return properties[key][0].strip()
    return title or None


def _record_name(text: str) -> str | None:
    return _record_id(text.partition("\n")[0].strip(), _split(text)[1])


def _metadata(properties: dict[str, list[str]]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"synonyms": [s.strip() for s in properties.pop("SYNONYMS", []) if s.strip()]}
    for name, lines in properties.items():
        store_field(metadata, _PROPERTIES.get(name, name.lower()), " ".join(line.strip() for line in lines), _FLOATS)
    return metadata


def _structure(mol_block: str, record: str, inchikey: str | None) -> dict[str, str]:
    """`smiles` (RDKit canonical) and, when the record has none, `inchikey` of the mol block."""
    with rdBase.BlockLogs():
        mol = Chem.MolFromMolBlock(mol_block)
        if mol is None or mol.GetNumAtoms() == 0:
            raise RecordError(record, "bad_structure", "RDKit cannot read the mol block")
        out = {"smiles": Chem.MolToSmiles(mol)}
        if not inchikey:
            key = Chem.MolToInchiKey(mol)
            if key:
                out["inchikey"] = key
    return out


FORMAT = RecordFormat(_is_end, parse_sdf_record, _record_name)
