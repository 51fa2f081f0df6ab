"""The spectra dataset: read records, filter them (counting each drop by reason), bin, key and split."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
from rdkit import Chem
from tqdm import tqdm

from nextims.data.cache import content_hash
from nextims.data.featurize import mol_from_smiles, nominal_mass
from nextims.data.isotopes import element_counts, heaviest_isotopologue_offset
from nextims.data.parallel import chunked, ordered_map
from nextims.data.splits import hash_split, list_split, read_key_list, scaffold_split, split_counts
from nextims.errors import DropReport, RecordError
from nextims.io import record_format
from nextims.io.text import RawRecord, RecordFormat, inner_suffix, parse_energy, raw_records, spectrum_files
from nextims.spectrum import Spectrum, bin_spectrum

SPLITS = ("train", "val", "test")
# drop reasons whose every record the dataset report lists (a user should be able to check each one)
LISTED_REASONS = ("peak_above_molecular_ion", "inchikey_mismatch")
# where a record's compound key (the InChIKey's first block) comes from (filters.inchikey)
KEY_SOURCES = ("record", "structure", "verify")
_INCHIKEY = re.compile(r"[A-Z]{14}-[A-Z]{10}-[A-Z]")
_BORON_OR_SELENIUM = Chem.MolFromSmarts("[#5,#34]")


@dataclass
class CompoundRecord:
    """What filtering keeps of one record: its structure, compound key and binned spectrum."""

    id: str
    key: str
    smiles: str
    mass: int
    spectrum: np.ndarray | None  # binned; None once the dataset holds it (SpectraData.spectra)
    energy_ev: float | None
    license: str | None


@dataclass
class SpectraData:
    """Filtered, binned and split records, indexed both by record and by compound."""

    records: list[CompoundRecord]
    split: np.ndarray
    report: DropReport
    max_mz: int
    meta: dict[str, Any] = field(default_factory=dict)
    # (records, max_mz + 1) float32 binned spectra; None: stacked from the records' own
    spectra: np.ndarray | None = None

    def __post_init__(self) -> None:
        keys = [r.key for r in self.records]
        self.compound_keys, first, self.record_compound = np.unique(keys, return_index=True, return_inverse=True)
        self.compound_smiles = [self.records[i].smiles for i in first]
        self.compound_masses = np.array([self.records[i].mass for i in first], dtype=np.int64)
        self.compound_split = self.split[first]
        if self.spectra is None:
            self.spectra = (np.stack([r.spectrum for r in self.records]) if self.records
                            else np.zeros((0, self.max_mz + 1), np.float32))

    def __len__(self) -> int:
        return len(self.records)

    def content_key(self) -> str:
        """A hash of the records as used: their compounds, split and binned spectra."""
        return content_hash([r.key for r in self.records], self.split, self.spectra)

    def record_indices(self, split: str) -> np.ndarray:
        """Record indices of one split."""
        return np.nonzero(self.split == split)[0]

    def compound_indices(self, split: str | Iterable[str]) -> np.ndarray:
        """Compound indices of one or several splits."""
        splits = [split] if isinstance(split, str) else list(split)
        return np.nonzero(np.isin(self.compound_split, splits))[0]

    def representative_records(self) -> np.ndarray:
        """One record per compound for the reference library: 70 eV first, then the smallest record id."""
        order = sorted(range(len(self.records)),
                       key=lambda i: (self.record_compound[i], self.records[i].energy_ev != 70.0, self.records[i].id))
        rep = np.full(len(self.compound_keys), -1, dtype=np.int64)
        for i in order:
            c = self.record_compound[i]
            if rep[c] < 0:
                rep[c] = i
        return rep

    def summary(self) -> dict[str, Any]:
        """Counts per split (records and compounds) and the drop report."""
        return {"split_counts": split_counts(self.split, [r.key for r in self.records]),
                "report": self.report.to_dict(), **self.meta}


def _energy_ok(energy: float | None, filters: Mapping[str, Any]) -> bool:
    if energy is None:
        return bool(filters.get("keep_unspecified_energy", True))
    return float(filters.get("min_energy_ev", 0)) <= energy <= float(filters.get("max_energy_ev", 1e9))


def energy_ev(spec: Spectrum) -> float | None:
    """The record's ionization energy in eV (a number, or text such as `70 eV`); RecordError `bad_energy` when it
    is neither."""
    value = spec.get("ionization_energy_ev")
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        energy = float(value)
    else:
        energy = parse_energy(str(value))
    if energy is None or not np.isfinite(energy):
        raise RecordError(spec.id, "bad_energy", f"ionization_energy_ev is {value!r}, not a number of eV")
    return energy


def filter_record(spec: Spectrum, filters: Mapping[str, Any], max_mz: int) -> CompoundRecord:
    """Turn a Spectrum into a CompoundRecord, or raise RecordError with the reason it is dropped."""
    rid = spec.id
    if filters.get("drop_ms2", True) and str(spec.get("ms_type") or "MS").upper() not in ("MS", "MS1", ""):
        raise RecordError(rid, "ms2", str(spec.get("ms_type")))
    if filters.get("drop_isotope_labeled", True) and spec.get("isotope_labeled"):
        raise RecordError(rid, "isotope_labeled")
    if filters.get("drop_parent_of_derivative", True) and spec.get("smiles_is_underivatized_parent"):
        raise RecordError(rid, "parent_of_derivative")
    energy = energy_ev(spec)
    if not _energy_ok(energy, filters):
        raise RecordError(rid, "ionization_energy", f"{energy:g} eV")
    smiles = spec.get("smiles")
    if not smiles:
        raise RecordError(rid, "no_structure")
    mol = mol_from_smiles(smiles, rid)
    # a SMILES without a dot is one connected molecule
    if filters.get("drop_mixtures", True) and "." in smiles and len(Chem.GetMolFrags(mol)) > 1:
        raise RecordError(rid, "mixture_or_salt", smiles)
    if filters.get("drop_charged", True) and Chem.GetFormalCharge(mol) != 0:
        raise RecordError(rid, "charged", smiles)
    mass = nominal_mass(mol)
    if mass > int(filters.get("max_molecule_mass", max_mz)):
        raise RecordError(rid, "too_heavy", f"nominal mass {mass} > {filters.get('max_molecule_mass', max_mz)}")
    check_molecular_ion(spec, mol, mass, filters)
    binned = bin_spectrum(spec, max_mz)
    if np.count_nonzero(binned) < int(filters.get("min_peaks", 1)):
        raise RecordError(rid, "no_peaks_in_range")
    key = compound_key(spec, mol, str(filters.get("inchikey", "record")))
    return CompoundRecord(rid, key, Chem.MolToSmiles(mol), mass, binned, energy, spec.get("license"))


def compound_key(spec: Spectrum, mol: Chem.Mol, source: str = "record") -> str:
    """The record's compound key, the first block of an InChIKey: with source "record" the record's own InChIKey
    when it has a well-formed one (a library's identifier, e.g. NIST's), else the structure's; "structure": always
    the structure's; "verify": the structure's, and RecordError `inchikey_mismatch` when the record states another."""
    stated = str(spec.get("inchikey") or "").strip().upper()
    if source == "record" and _INCHIKEY.fullmatch(stated):
        return stated[:14]
    key = Chem.MolToInchiKey(mol)[:14]
    if not key:
        raise RecordError(spec.id, "no_inchikey", spec.get("smiles"))
    if source == "verify" and stated and stated[:14] != key:
        raise RecordError(spec.id, "inchikey_mismatch", f"the record states {stated}, its structure "
                                                        f"{spec.get('smiles')} gives {Chem.MolToInchiKey(mol)}")
    return key


def check_molecular_ion(spec: Spectrum, mol: Chem.Mol, mass: int, filters: Mapping[str, Any]) -> None:
    """Raise RecordError('peak_above_molecular_ion') when the spectrum has a peak of at least
    `filters.max_above_molecular_ion` of its base peak above the heaviest isotopologue of the structure that
    reaches `filters.isotope_min_abundance` of its most abundant one, plus `filters.protonation_margin` ([M+H]+):
    such a spectrum cannot belong to that structure. Off when max_above_molecular_ion is null."""
    threshold = filters.get("max_above_molecular_ion")
    if threshold is None or not len(spec.intensities) or spec.intensities.max() <= 0:
        return
    margin = int(filters.get("protonation_margin", 1))
    floor = float(threshold) * spec.intensities.max()
    tail = np.searchsorted(spec.mz, mass + margin + 0.5)  # m/z ascending: only the tail can round above M + margin
    if (not (spec.intensities[tail:] >= floor)[np.rint(spec.mz[tail:]) > mass + margin].any()
            and not mol.HasSubstructMatch(_BORON_OR_SELENIUM)):
        return  # nothing strong above M + margin, and only B and Se can make the heaviest offset negative
    formula = tuple(sorted(element_counts(mol).items()))
    offset = _heaviest_offset(formula, float(filters.get("isotope_min_abundance", 0.05)))
    limit = mass + offset + margin
    above = (np.rint(spec.mz) > limit) & (spec.intensities >= floor)
    if above.any():
        i = int(np.argmax(np.where(above, spec.intensities, -1.0)))
        raise RecordError(spec.id, "peak_above_molecular_ion",
                          f"m/z {spec.mz[i]:g} at {100 * spec.intensities[i] / spec.intensities.max():.0f}% of the "
                          f"base peak > {limit} (M {mass} + isotopes {offset} + {limit - mass - offset})")


@functools.lru_cache(maxsize=65536)
def _heaviest_offset(formula: tuple[tuple[str, int], ...], min_abundance: float) -> int:
    """heaviest_isotopologue_offset of a formula given as sorted (element, count) pairs (cached)."""
    return heaviest_isotopologue_offset(dict(formula), min_abundance)


def assign_splits(records: list[CompoundRecord], split_cfg: Mapping[str, Any]) -> np.ndarray:
    """Split labels per record, by the configured method (all compound-disjoint)."""
    keys = [r.key for r in records]
    method = split_cfg.get("method", "hash")
    fractions = tuple(split_cfg.get("fractions", (0.8, 0.1, 0.1)))
    if method == "hash":
        return hash_split(keys, fractions=fractions, salt=str(split_cfg.get("salt", "nextims-v1")))
    if method == "scaffold":
        return scaffold_split([r.smiles for r in records], keys, fractions=fractions)
    if method == "lists":
        test, val = split_cfg.get("test_list"), split_cfg.get("val_list")
        if not test:
            raise ValueError("data.split.method=lists needs data.split.test_list (a file of InChIKeys)")
        return list_split(keys, read_key_list(Path(test)), read_key_list(Path(val)) if val else set())
    raise ValueError(f"unknown data.split.method {method!r} (hash, scaffold or lists)")


@dataclass
class FilteredChunk:
    """What filtering kept of a chunk of raw records (records without their spectra, the spectra as CSR rows of
    binned intensities) and the drops by reason."""

    records: list[CompoundRecord]
    counts: np.ndarray  # (records,) non-zero bins per spectrum
    bins: np.ndarray  # (sum of counts,) uint16
    values: np.ndarray  # (sum of counts,) float32
    report: DropReport


@dataclass(frozen=True)
class ChunkFilter:
    """Parses and filters chunks of raw records (file name, location, raw record) of one format (picklable, so
    it runs in worker processes)."""

    fmt: RecordFormat
    encoding: str
    filters: dict[str, Any]
    max_mz: int

    def __post_init__(self) -> None:
        source = str(self.filters.get("inchikey", "record"))
        if source not in KEY_SOURCES:
            raise ValueError(f"data.filters.inchikey={source!r}: expected one of {', '.join(KEY_SOURCES)}")

    def __call__(self, items: list[tuple[str, str, RawRecord]]) -> FilteredChunk:
        """The chunk's kept records and drops."""
        report = DropReport(listed_reasons=LISTED_REASONS)
        records, rows = [], []
        for source, where, raw in items:
            try:
                record = filter_record(self.fmt.spectrum(raw, where, source, self.encoding), self.filters,
                                       self.max_mz)
            except RecordError as err:
                report.drop_error(err)
                continue
            report.keep()
            rows.append(record.spectrum)
            record.spectrum = None
            records.append(record)
        dense = np.stack(rows) if rows else np.zeros((0, self.max_mz + 1), np.float32)
        row, col = np.nonzero(dense)
        return FilteredChunk(records, np.bincount(row, minlength=len(rows)), col.astype(np.uint16),
                             dense[row, col].astype(np.float32), report)


def dense_spectra(counts: np.ndarray, bins: np.ndarray, values: np.ndarray, max_mz: int) -> np.ndarray:
    """(len(counts), max_mz + 1) float32 spectra from CSR rows (counts per row, their bins and values)."""
    out = np.zeros((len(counts), max_mz + 1), np.float32)
    out[np.repeat(np.arange(len(counts)), counts), bins.astype(np.int64)] = values
    return out


def filtered_records(cfg: Mapping[str, Any], workers: int = 0, progress: bool | None = False,
                     chunk_size: int = 512) -> FilteredChunk:
    """Read and filter the records of a `data` config in `workers` processes (0 or 1: this one): every kept
    record in file order with its spectrum as a CSR row, and the report of every drop. progress: a bar of the
    bytes read (None: on a terminal only)."""
    path = cfg["path"]
    fmt = record_format(path, cfg.get("format", "auto"))
    prepare = ChunkFilter(fmt, str(cfg.get("encoding") or "utf-8"), dict(cfg.get("filters") or {}),
                          int(cfg["max_mz"]))
    report = DropReport(name=f"dataset {cfg.get('name', '')}".strip(), listed_reasons=LISTED_REASONS)
    files = spectrum_files(path)
    plain = all(inner_suffix(f) == f.suffix.lower() for f in files)  # a compressed file's size says little
    bar = tqdm(total=sum(f.stat().st_size for f in files) if plain else None, unit="B", unit_scale=True,
               desc="reading spectra", disable=None if progress is None else not progress)

    def tracked() -> Iterator[tuple[str, str, RawRecord]]:
        for item in raw_records(path, fmt, report):
            bar.update(len(item[2].data))
            yield item

    records: list[CompoundRecord] = []
    counts, bins, values = [], [], []
    with bar:
        for chunk in ordered_map(prepare, chunked(tracked(), chunk_size), workers):
            records += chunk.records
            counts.append(chunk.counts)
            bins.append(chunk.bins)
            values.append(chunk.values)
            report.keep(chunk.report.kept)
            report.add_drops(chunk.report)
    return FilteredChunk(records, np.concatenate([np.zeros(0, np.int64), *counts]),
                         np.concatenate([np.zeros(0, np.uint16), *bins]),
                         np.concatenate([np.zeros(0, np.float32), *values]), report)


def split_dataset(filtered: FilteredChunk, cfg: Mapping[str, Any]) -> SpectraData:
    """The SpectraData of filtered records, split as the `data` config says."""
    if not filtered.records:
        raise ValueError(f"no usable records in {cfg['path']}:\n{filtered.report.format()}")
    max_mz = int(cfg["max_mz"])
    split = assign_splits(filtered.records, dict(cfg.get("split") or {}))
    return SpectraData(filtered.records, np.asarray(split), filtered.report, max_mz, meta={"path": str(cfg["path"])},
                       spectra=dense_spectra(filtered.counts, filtered.bins, filtered.values, max_mz))


def load_spectra(cfg: Mapping[str, Any], workers: int = 0, progress: bool | None = False) -> SpectraData:
    """Read, filter, bin and split the spectra described by a `data` config (in `workers` processes)."""
    return split_dataset(filtered_records(cfg, workers, progress), cfg)
