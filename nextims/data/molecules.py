"""Input molecules for prediction: reading SMILES/CSV/SDF files, standardising each structure and preparing
chunks of them into model inputs, in worker processes when asked."""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from rdkit import Chem, rdBase
from rdkit.Chem import rdMolDescriptors
from rdkit.Chem.MolStandardize import rdMolStandardize
from torch_geometric.data import Data

from nextims.data.envelopes import Envelopes
from nextims.data.pieces import TwoCutPieces, envelopes_and_pieces
from nextims.data.featurize import ELEMENTS, count_morgan, mol_from_smiles, nominal_mass
from nextims.data.parallel import chunked, ordered_map
from nextims.data.sites import CleavageSites, fingerprint_and_sites
from nextims.errors import InputError, RecordError
from nextims.io.text import STREAM_ERRORS, inner_suffix, open_binary

# Bump when prepare_molecule keeps, refuses or changes molecules differently (joins the keys of what it made).
PREPARE_VERSION = 2
# Matches any atom of an element outside ELEMENTS (one substructure search instead of a Python loop over atoms).
_EXOTIC_ATOM = Chem.MolFromSmarts(
    "[" + "&".join(f"!#{Chem.GetPeriodicTable().GetAtomicNumber(e)}" for e in ELEMENTS) + "]")
_CARBON = Chem.MolFromSmarts("[#6]")


@dataclass
class InputMolecule:
    """A molecule to predict: its name and the structure as given."""

    name: str
    smiles: str
    # (reason, detail) when the reader could not use the record (an undecodable line, a broken mol block)
    error: tuple[str, str] | None = None


@dataclass
class PreparedMolecule:
    """What standardisation made of an input molecule, with a note of what it did (no RDKit object)."""

    name: str
    smiles: str
    inchikey: str
    formula: str
    mass: int
    note: str = ""


# What each input type must be, for the one-line error about a file that is not UTF-8 text.
_EXPECTED = {".smi": "UTF-8 text, one SMILES per line (optionally followed by a name)",
             ".txt": "UTF-8 text, one SMILES per line (optionally followed by a name)",
             ".csv": "UTF-8 CSV text with a header row",
             ".sdf": "a UTF-8 SD file (mol blocks separated by $$$$ lines)"}


def _not_text(source: str, suffix: str) -> InputError:
    """The error for an input file that is not UTF-8 text (binary, UTF-16)."""
    return InputError(f"{source}: not UTF-8 text; expected {_EXPECTED[suffix]}")


def _check_text(path: Path, suffix: str) -> bytes:
    """The (decompressed) start of a file, refused when it shows the file is not UTF-8 text: NUL bytes (binary,
    UTF-16/32) or a UTF-16/32 BOM. A compressed stream cut short is checked on what comes before the cut
    (read_molecules reports the cut)."""
    head = b""
    with open_binary(path) as fh:
        try:
            while len(head) < 8192 and (chunk := fh.read1(8192 - len(head))):
                head += chunk
        except STREAM_ERRORS:
            pass
    if b"\x00" in head or head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _not_text(str(path), suffix)
    return head


def _undecodable(text: str, where: str) -> tuple[str, str] | None:
    """("undecodable_line", detail) when text, read with errors="surrogateescape", holds bytes that are not UTF-8."""
    bad = next((c for c in text if "\udc80" <= c <= "\udcff"), None)
    if bad is None:
        return None
    return "undecodable_line", f"{where}: byte 0x{ord(bad) - 0xDC00:02x} is not UTF-8"


@contextlib.contextmanager
def _rdkit_log() -> Iterator[io.StringIO]:
    """RDKit's log messages for the duration, captured in the yielded buffer instead of printed."""
    buffer = io.StringIO()
    rdBase.LogToPythonStderr()
    try:
        with contextlib.redirect_stderr(buffer):
            yield buffer
    finally:
        rdBase.LogToCppStreams()


def _molblock_error(block: str) -> str:
    """Why RDKit cannot read a mol block: its parse error or the sanitisation exception."""
    with _rdkit_log() as log:
        mol = Chem.MolFromMolBlock(block, sanitize=False)
    if mol is None:
        messages = [line.split("] ", 1)[-1].strip() for line in log.getvalue().splitlines() if line.strip()]
        return "; ".join(messages) or "unreadable mol block"
    try:
        with rdBase.BlockLogs():
            Chem.SanitizeMol(mol)
    except Exception as err:  # RDKit's sanitisation exceptions share no public base class beyond Exception
        return str(err)
    return "unreadable mol block"


def _sdf_records(fh: Iterable[str]) -> Iterator[tuple[int, str]]:
    """The raw records of an SD file as (first line number, text up to and without the $$$$ line)."""
    lines: list[str] = []
    start = 1
    for number, line in enumerate(fh, 1):
        if line.startswith("$$$$"):
            yield start, "".join(lines)
            lines, start = [], number + 1
        else:
            lines.append(line)
    if any(line.strip() for line in lines):
        yield start, "".join(lines)


def _read_sdf(fh: Iterable[str]) -> Iterator[InputMolecule]:
    """The molecules of an SD file; a record RDKit cannot read is listed by its title (or number) and reason."""
    for i, (line, block) in enumerate(_sdf_records(fh), 1):
        where = f"record {i} (line {line})"
        error = _undecodable(block, where)
        if error:
            yield InputMolecule(f"mol{i}", "", error)
            continue
        with rdBase.BlockLogs():
            mol = Chem.MolFromMolBlock(block)
        title = block.split("\n", 1)[0].strip()
        if mol is None:
            yield InputMolecule(title or f"mol{i}", "", ("bad_molblock", f"{where}: {_molblock_error(block)}"))
        else:
            name = mol.GetProp("_Name") if mol.HasProp("_Name") else ""
            yield InputMolecule(name or f"mol{i}", Chem.MolToSmiles(mol))


def read_molecules(source: str, smiles_column: str = "smiles", name_column: str = "name") -> Iterator[InputMolecule]:
    """Molecules from a SMILES string, or a .smi / .csv / .sdf file, also gzip/xz/bzip2-compressed (names default
    to the line number); a line that is not UTF-8 is yielded with an "undecodable_line" error, a file that is not
    text raises InputError."""
    path = Path(source)
    suffix = inner_suffix(path)
    if not path.suffix or not path.exists():
        if suffix in _EXPECTED:
            raise FileNotFoundError(f"no input file {source}")
        yield InputMolecule(source, source)
        return
    if suffix not in _EXPECTED:
        raise ValueError(f"{source}: unknown input type {suffix!r} (use a SMILES string, .smi, .csv or .sdf)")
    head = _check_text(path, suffix)
    # utf-8-sig only when a whole BOM is there: its decoder swallows a file that is just a BOM's first bytes
    encoding = "utf-8-sig" if head.startswith(codecs.BOM_UTF8) else "utf-8"
    count = 0
    try:
        with io.TextIOWrapper(open_binary(path, check=False), encoding=encoding, errors="surrogateescape",
                              newline="" if suffix == ".csv" else None) as fh:
            for molecule in _file_molecules(fh, source, suffix, smiles_column, name_column):
                count += 1
                yield molecule
    except STREAM_ERRORS:
        yield InputMolecule(f"{path.name}:cut", "", ("truncated_file", f"the compressed stream ends early after "
                                                                      f"{count} molecules; the rest is lost"))


def _file_molecules(fh: io.TextIOWrapper, source: str, suffix: str, smiles_column: str,
                    name_column: str) -> Iterator[InputMolecule]:
    """The molecules of an open .smi, .csv or .sdf text stream (see read_molecules)."""
    if suffix == ".sdf":
        yield from _read_sdf(fh)
    elif suffix == ".csv":
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        if _undecodable("".join(fields), "header"):
            raise _not_text(source, suffix)
        if smiles_column not in fields:
            raise InputError(f"{source}: no column {smiles_column!r} (columns: {reader.fieldnames})")
        for row in reader:
            line = reader.line_num
            # every field, those past the header's columns (a list under None) too
            values = (v for value in row.values() for v in (value if isinstance(value, list) else [value]))
            error = _undecodable("".join(v for v in values if v is not None), f"line {line}")
            if error:
                yield InputMolecule(f"line{line}", "", error)
            else:
                yield InputMolecule(row.get(name_column) or f"row{line}", row[smiles_column] or "")
    else:
        for i, line in enumerate(fh, 1):
            error = _undecodable(line, f"line {i}")
            parts = line.split(maxsplit=1)
            if error:
                yield InputMolecule(f"line{i}", "", error)
            elif parts and not parts[0].startswith("#"):
                yield InputMolecule(parts[1].strip() if len(parts) > 1 else f"line{i}", parts[0])


def _neutralised(mol: Chem.Mol, record: str) -> tuple[Chem.Mol, str]:
    """mol with a net charge removed by adding or removing hydrogens, and a note saying so (a neutral molecule,
    zwitterions included, is returned as it is, with no note); RecordError "net_charge" when hydrogens cannot
    neutralise it (a quaternary ammonium) or it is an inorganic ion."""
    charge = Chem.GetFormalCharge(mol)
    if charge == 0:
        return mol, ""
    charged = Chem.MolToSmiles(mol)
    if not mol.HasSubstructMatch(_CARBON):
        raise RecordError(record, "net_charge", f"charge {charge:+d} of {charged}, an inorganic ion")
    with rdBase.BlockLogs():
        neutral = rdMolStandardize.Uncharger().uncharge(mol)
    if Chem.GetFormalCharge(neutral) != 0:
        raise RecordError(record, "net_charge",
                          f"charge {charge:+d} of {charged}, which adding or removing hydrogens cannot neutralise")
    return neutral, f"neutralised from {charged}"


def _check_unlabelled(mol: Chem.Mol, record: str) -> None:
    """Refuse isotope labels (RecordError "isotope_label" naming them and the unlabelled compound): the models
    predict natural-abundance spectra at unit m/z, which a label's mass shift would contradict."""
    labels = Counter(f"{a.GetIsotope()}{a.GetSymbol()}" for a in mol.GetAtoms() if a.GetIsotope())
    if not labels:
        return
    unlabelled = Chem.Mol(mol)
    for atom in unlabelled.GetAtoms():
        atom.SetIsotope(0)
    named = ", ".join(f"{n} x {label}" for label, n in sorted(labels.items()))
    raise RecordError(record, "isotope_label",
                      f"{named}; the models predict natural-abundance spectra: remove the labels to predict the "
                      f"unlabelled compound {Chem.MolToSmiles(Chem.RemoveHs(unlabelled))}")


def _radical_note(mol: Chem.Mol) -> str:
    """A note naming the atoms with unpaired electrons and the closed-shell molecule that hydrogens in their
    place would make ("" when there are none)."""
    radicals = [a for a in mol.GetAtoms() if a.GetNumRadicalElectrons()]
    if not radicals:
        return ""
    closed = Chem.RWMol(mol)
    for radical in radicals:
        atom = closed.GetAtomWithIdx(radical.GetIdx())
        atom.SetNumExplicitHs(atom.GetTotalNumHs() + atom.GetNumRadicalElectrons())
        atom.SetNumRadicalElectrons(0)
        atom.SetNoImplicit(True)
    Chem.SanitizeMol(closed)
    named = ", ".join(f"{Chem.MolFragmentToSmiles(mol, [a.GetIdx()])} {a.GetNumRadicalElectrons()}" for a in radicals)
    return (f"radical (unpaired electrons: {named}), predicted as written; if hydrogens were left out, "
            f"the closed-shell molecule is {Chem.MolToSmiles(closed)}")


def prepare_molecule(item: InputMolecule, max_mass: int,
                     max_heavy_atoms: int = 100) -> tuple[Chem.Mol, PreparedMolecule]:
    """Parse and standardise: keep the largest organic fragment and neutralise it; reject charges hydrogens
    cannot remove, isotope labels, too-large or exotic molecules; note radicals. Returns the standardised
    molecule and its description."""
    if item.error:
        raise RecordError(item.name, *item.error)
    if not item.smiles:
        raise RecordError(item.name, "bad_smiles", "no structure")
    mol = mol_from_smiles(item.smiles, item.name)
    fragment = ""
    if len(Chem.GetMolFrags(mol)) > 1:
        with rdBase.BlockLogs():
            mol = rdMolStandardize.LargestFragmentChooser(preferOrganic=True).choose(mol)
        fragment = f"largest organic fragment of {item.smiles}"
    mol, neutralised = _neutralised(mol, item.name)
    if mol.HasSubstructMatch(_EXOTIC_ATOM):
        exotic = sorted({a.GetSymbol() for a in mol.GetAtoms()} - set(ELEMENTS))
        raise RecordError(item.name, "unsupported_element", ",".join(exotic))
    # only bracket atoms carry isotope labels or unpaired electrons: SMILES without one skips both atom loops
    bracketed = "[" in item.smiles
    if bracketed:
        _check_unlabelled(mol, item.name)
    mass = nominal_mass(mol)
    if mol.GetNumHeavyAtoms() > max_heavy_atoms or mass > max_mass:
        raise RecordError(item.name, "too_large", f"{mol.GetNumHeavyAtoms()} heavy atoms, nominal mass {mass} (the "
                          f"model covers at most {max_heavy_atoms} heavy atoms and nominal mass {max_mass})")
    note = "; ".join(n for n in (fragment, neutralised, _radical_note(mol) if bracketed else "") if n)
    return mol, PreparedMolecule(item.name, Chem.MolToSmiles(mol), Chem.MolToInchiKey(mol),
                                 rdMolDescriptors.CalcMolFormula(mol), mass, note)


@dataclass
class PreparedChunk:
    """Model inputs for a chunk of input molecules, in input order, and the molecules that failed
    as (name, reason, detail); holds no RDKit object, so worker processes send it back cheaply."""

    molecules: list[PreparedMolecule]
    fingerprints: np.ndarray
    graphs: list[Data] | None
    failures: list[tuple[str, str, str]]
    sites: CleavageSites | None = None
    envelopes: Envelopes | None = None
    pieces: TwoCutPieces | None = None

    @property
    def size(self) -> int:
        """Number of input molecules in the chunk, failed ones included."""
        return len(self.molecules) + len(self.failures)

    def __getstate__(self) -> dict[str, Any]:
        # Fingerprints travel as their non-zero entries: a dense chunk of 512 x 4096 is 8 MB, ~100 kB sparse.
        # Graphs travel as numpy arrays: multiprocessing moves every torch tensor through shared memory,
        # which costs ~0.5 ms per graph.
        state = dict(self.__dict__)
        fp = state.pop("fingerprints")
        index = np.flatnonzero(fp != 0)
        state["sparse_fingerprints"] = (fp.shape, index, fp.ravel()[index])
        if self.graphs is not None:
            state["graphs"] = [{key: value.numpy() if torch.is_tensor(value) else value
                                for key, value in graph.to_dict().items()} for graph in self.graphs]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        shape, index, values = state.pop("sparse_fingerprints")
        fp = np.zeros(shape, values.dtype)
        fp.ravel()[index] = values
        if state["graphs"] is not None:
            state["graphs"] = [Data(**{key: torch.from_numpy(value) if isinstance(value, np.ndarray) else value
                                       for key, value in graph.items()}) for graph in state["graphs"]]
        self.__dict__.update(state, fingerprints=fp)


@dataclass(frozen=True)
class ChunkPreparer:
    """Prepares a chunk of input molecules into model inputs: the standardised molecules, their count Morgan
    fingerprints and, given a graph featurizer, their graphs, with `sites` their cleavage sites and with
    `envelope_width` their isotope envelopes over m/z 0..max_mass, with `pieces` their two-cut pieces (picklable,
    so it runs in worker processes)."""

    max_mass: int
    max_heavy_atoms: int = 100
    fp_bits: int = 4096
    fp_radius: int = 2
    graph_featurizer: Callable[[Chem.Mol], Data] | None = None
    sites: bool = False
    envelope_width: int = 0
    pieces: bool = False

    def __call__(self, items: Iterable[InputMolecule]) -> PreparedChunk:
        """The chunk's model inputs; molecules that fail preparation are listed with the reason."""
        molecules, fingerprints, graphs, sites, failures, mols = [], [], [], [], [], []
        for item in items:
            try:
                mol, prepared = prepare_molecule(item, self.max_mass, self.max_heavy_atoms)
            except RecordError as err:
                failures.append((err.record, err.reason, err.detail))
                continue
            molecules.append(prepared)
            if self.sites:
                fp, mol_sites = fingerprint_and_sites(mol, self.fp_bits, self.fp_radius)
                fingerprints.append(fp)
                sites.append(mol_sites)
            else:
                fingerprints.append(count_morgan(mol, self.fp_bits, self.fp_radius))
            if self.graph_featurizer is not None:
                graphs.append(self.graph_featurizer(mol))
            if self.envelope_width or self.pieces:
                mols.append(mol)
        envelopes, pieces = envelopes_and_pieces(mols, self.max_mass + 1, self.envelope_width, self.pieces)
        fp = np.stack(fingerprints) if fingerprints else np.zeros((0, self.fp_bits), np.float32)
        return PreparedChunk(molecules, fp, graphs if self.graph_featurizer is not None else None, failures,
                             CleavageSites.concat(sites, self.fp_radius + 1) if self.sites else None,
                             envelopes, pieces)


def prepared_chunks(items: Iterable[InputMolecule], prepare: ChunkPreparer, chunk_size: int, workers: int = 0,
                    start_method: str | None = None) -> Iterator[PreparedChunk]:
    """The prepared chunks of chunk_size consecutive items, in input order. With workers > 1 a pool of that
    many processes (started by start_method; None: the platform's default) prepares them, at most two chunks
    per worker ahead of the consumer; an input of a single chunk is prepared in this process."""
    return ordered_map(prepare, chunked(items, chunk_size), workers, start_method)
