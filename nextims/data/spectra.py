"""The spectra dataset: read records, filter them (counting each drop by reason), bin, key and split."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
from rdkit import Chem

from nextims.data.featurize import mol_from_smiles, nominal_mass
from nextims.data.isotopes import element_counts, heaviest_isotopologue_offset
from nextims.data.splits import hash_split, list_split, read_key_list, scaffold_split, split_counts
from nextims.data.cache import content_hash
from nextims.errors import DropReport, RecordError
from nextims.io import read_spectra
from nextims.io.text import parse_energy
from nextims.spectrum import Spectrum, bin_spectrum

SPLITS = ("train", "val", "test")
# drop reasons whose every record the dataset report lists (a user should be able to check each one)
LISTED_REASONS = ("peak_above_molecular_ion",)


@dataclass
class CompoundRecord:
    """What filtering keeps of one record: its structure, compound key and binned spectrum."""

    id: str
    key: str
    smiles: str
    mass: int
    spectrum: np.ndarray
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

    def __post_init__(self) -> None:
        keys = [r.key for r in self.records]
        self.compound_keys, first, self.record_compound = np.unique(keys, return_index=True, return_inverse=True)
        self.compound_smiles = [self.records[i].smiles for i in first]
        self.compound_masses = np.array([self.records[i].mass for i in first], dtype=np.int64)
        self.compound_split = self.split[first]
        self.spectra = np.stack([r.spectrum for r in self.records]) if self.records else np.zeros((0, self.max_mz + 1), np.float32)

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
    if filters.get("drop_mixtures", True) and len(Chem.GetMolFrags(mol)) > 1:
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
    key = Chem.MolToInchiKey(mol)[:14]
    if not key:
        raise RecordError(rid, "no_inchikey", smiles)
    return CompoundRecord(rid, key, Chem.MolToSmiles(mol), mass, binned, energy, spec.get("license"))


def check_molecular_ion(spec: Spectrum, mol: Chem.Mol, mass: int, filters: Mapping[str, Any]) -> None:
    """Raise RecordError('peak_above_molecular_ion') when the spectrum has a peak of at least
    `filters.max_above_molecular_ion` of its base peak above the heaviest isotopologue of the structure that
    reaches `filters.isotope_min_abundance` of its most abundant one, plus `filters.protonation_margin` ([M+H]+):
    such a spectrum cannot belong to that structure. Off when max_above_molecular_ion is null."""
    threshold = filters.get("max_above_molecular_ion")
    if threshold is None or not len(spec.intensities) or spec.intensities.max() <= 0:
        return
    offset = heaviest_isotopologue_offset(element_counts(mol), float(filters.get("isotope_min_abundance", 0.05)))
    limit = mass + offset + int(filters.get("protonation_margin", 1))
    above = (np.rint(spec.mz) > limit) & (spec.intensities >= float(threshold) * spec.intensities.max())
    if above.any():
        i = int(np.argmax(np.where(above, spec.intensities, -1.0)))
        raise RecordError(spec.id, "peak_above_molecular_ion",
                          f"m/z {spec.mz[i]:g} at {100 * spec.intensities[i] / spec.intensities.max():.0f}% of the "
                          f"base peak > {limit} (M {mass} + isotopes {offset} + {limit - mass - offset})")


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


def load_spectra(cfg: Mapping[str, Any]) -> SpectraData:
    """Read, filter, bin and split the spectra described by a `data` config."""
    max_mz = int(cfg["max_mz"])
    filters = dict(cfg.get("filters") or {})
    read_report = DropReport(name="read")
    report = DropReport(name=f"dataset {cfg.get('name', '')}".strip(), listed_reasons=LISTED_REASONS)
    records: list[CompoundRecord] = []
    for spec in read_spectra(cfg["path"], fmt=cfg.get("format", "auto"), report=read_report,
                             encoding=str(cfg.get("encoding") or "utf-8")):
        try:
            records.append(filter_record(spec, filters, max_mz))
            report.keep()
        except RecordError as err:
            report.drop_error(err)
    report.add_drops(read_report)
    if not records:
        raise ValueError(f"no usable records in {cfg['path']}:\n{report.format()}")
    split = assign_splits(records, dict(cfg.get("split") or {}))
    return SpectraData(records, np.asarray(split), report, max_mz, meta={"path": str(cfg["path"])})
