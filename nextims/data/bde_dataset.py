"""BDE tables validated and featurized once, cached in HDF5 (keyed by the file's content), split by molecule."""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from rdkit import Chem

from nextims.data.bde_db2 import (VALUE_RANGE, BDERow, SET_NAMES, group_by_molecule, read_rows,
                                  validate_molecule)
from nextims.data.bde_graphs import MolArrays, PackedGraphs, featurizer_signature, mol_arrays
from nextims.data.cache import atomic_h5, cache_is_valid, content_hash, file_sha256
from nextims.data.splits import SPLIT_NAMES, hash_split, train_subset
from nextims.errors import DropReport

log = logging.getLogger(__name__)

# Bump whenever validation, targets or the file layout change (invalidates the table caches).
BDE_TABLE_VERSION = 4
_CHUNK = 512
_COMPRESSION = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
Entry = tuple[str, str, MolArrays, np.ndarray, np.ndarray, int]


@dataclass
class BDEDataset:
    """A validated BDE table: molecule graphs, per-bond targets (NaN where unknown) and each molecule's split."""

    graphs: PackedGraphs
    smiles: np.ndarray  # canonical SMILES per molecule
    sets: np.ndarray  # the table's set per molecule (train/val/test, "" when it has none)
    targets: np.ndarray  # float32 (bonds, 2): bde, bdfe in kcal/mol
    bond_class: np.ndarray  # int32 (bonds,): index (within its molecule) of the first bond of its symmetry class
    report: DropReport
    meta: dict[str, Any] = field(default_factory=dict)
    split: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.smiles)

    def content_key(self) -> str:
        """A hash of the table as used: its molecules, their split and per-bond targets."""
        return content_hash(self.smiles, self.split if self.split is not None else self.sets, self.targets)

    def unique_bonds(self) -> np.ndarray:
        """Per bond: True for the first bond of each symmetry class (one row per distinct BDE)."""
        local = np.arange(len(self.bond_class)) - np.repeat(self.graphs.bond_offsets[:-1], self.graphs.num_bonds)
        return self.bond_class == local

    def has_target(self) -> np.ndarray:
        """Per molecule: whether any of its bonds has a BDE."""
        known = np.concatenate([[0], np.cumsum(~np.isnan(self.targets[:, 0]))])
        return known[self.graphs.bond_offsets[1:]] > known[self.graphs.bond_offsets[:-1]]

    def molecules(self, split: str) -> np.ndarray:
        """Indices of the molecules of one split that have at least one BDE."""
        if self.split is None:
            raise ValueError("no split assigned (see assign_split)")
        return np.nonzero((self.split == split) & self.has_target())[0]


def _process(chunk: list[tuple[str, list[BDERow]]], propagate: bool) -> tuple[list[Entry], DropReport]:
    """Validate and featurize the molecules of one chunk (runs in worker processes)."""
    report = DropReport(name="rows")
    out = []
    for smiles, rows in chunk:
        mol = validate_molecule(smiles, rows, report, propagate)
        if mol is not None:
            canonical = Chem.MolToSmiles(Chem.MolFromSmiles(smiles))
            out.append((canonical, SET_NAMES.get(mol.set.lower(), ""), mol_arrays(mol.mol), mol.targets,
                        mol.bond_class, mol.propagated))
    return out, report


def _validate_all(groups: dict[str, list[BDERow]], propagate: bool, workers: int,
                  report: DropReport) -> list[Entry]:
    """Validate every molecule, in worker processes when workers > 1; drops are added to report."""
    items = list(groups.items())
    chunks = [items[i:i + _CHUNK] for i in range(0, len(items), _CHUNK)]
    entries: list[Entry] = []

    def collect(result: tuple[list[Entry], DropReport]) -> None:
        entries.extend(result[0])
        report.keep(result[1].kept)
        report.add_drops(result[1])

    if workers > 1 and len(chunks) > 1:
        # spawn: forked children of a process that has run torch/OpenMP threads can hang
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for result in pool.starmap(_process, [(c, propagate) for c in chunks], chunksize=1):
                collect(result)
    else:
        for c in chunks:
            collect(_process(c, propagate))
    return entries


def _write(f: h5py.File, entries: list[Entry], report: DropReport, meta: dict[str, Any]) -> None:
    """Write a validated table into an open HDF5 file."""
    graphs = PackedGraphs.pack([e[2] for e in entries])
    strings = h5py.string_dtype()
    f.create_dataset("smiles", data=np.array([e[0] for e in entries], dtype=object), dtype=strings)
    f.create_dataset("sets", data=np.array([e[1] for e in entries], dtype=object), dtype=strings)
    for name in PackedGraphs.ARRAYS:
        value = getattr(graphs, name)
        f.create_dataset(name, data=value, **(_COMPRESSION if value.ndim == 2 and len(value) else {}))
    targets = np.concatenate([e[3] for e in entries]) if entries else np.zeros((0, 2), np.float32)
    classes = np.concatenate([e[4] for e in entries]) if entries else np.zeros(0, np.int32)
    f.create_dataset("targets", data=targets.astype(np.float32))
    f.create_dataset("bond_class", data=classes.astype(np.int32))
    f.attrs["report"] = json.dumps(report.to_dict())
    f.attrs["meta"] = json.dumps(meta)


def _read(path: Path) -> BDEDataset:
    """Load a table cache file into memory."""
    with h5py.File(path, "r") as f:
        graphs = PackedGraphs(**{name: f[name][:] for name in PackedGraphs.ARRAYS})
        info = json.loads(f.attrs["report"])
        report = DropReport(name=info["name"], kept=info["kept"], dropped=Counter(info["dropped"]),
                            examples={k: list(v) for k, v in info["examples"].items()})
        return BDEDataset(graphs, f["smiles"].asstr()[:], f["sets"].asstr()[:], f["targets"][:],
                          f["bond_class"][:], report, json.loads(f.attrs["meta"]))


def build_or_load_table(path: str | Path, cache_dir: str | Path, columns: Mapping[str, str] | None = None,
                        propagate: bool = True, workers: int = 1,
                        value_range: tuple[float, float] = VALUE_RANGE) -> BDEDataset:
    """A BDE table, validated and featurized, from `cache_dir/bde-table-<key16>.h5` when valid, else built there.

    The key holds the sha256 of the file's bytes, the column mapping, the allowed value range, the featurizer
    and the code version, so an edited file or new code rebuilds it; the file is written atomically.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no BDE table {path} (see data/bde/README.md: python -m nextims.prepare bde)")
    columns = dict(columns or {})
    sha = file_sha256(path)
    key = content_hash("bde-table", BDE_TABLE_VERSION, sha, columns, bool(propagate), value_range,
                       featurizer_signature())
    cache = Path(cache_dir) / f"bde-table-{key[:16]}.h5"
    if cache_is_valid(cache, key):
        log.info("reusing BDE table cache %s", cache)
        return _read(cache)
    start = time.perf_counter()
    report = DropReport(name=f"BDE rows of {path.name}")
    groups = group_by_molecule(read_rows(path, columns, report, value_range))
    entries = _validate_all(groups, propagate, workers, report)
    meta = {"source": path.name, "sha256": sha, "molecules_in_file": len(groups), "molecules": len(entries),
            "propagated_bonds": int(sum(e[5] for e in entries)),
            "build_seconds": round(time.perf_counter() - start, 1)}
    with atomic_h5(cache, cache_key=key) as f:
        _write(f, entries, report, meta)
    log.info("built BDE table cache %s in %.1f s", cache, time.perf_counter() - start)
    return _read(cache)


def assign_split(data: BDEDataset, split_cfg: Mapping[str, Any]) -> np.ndarray:
    """train/val/test per molecule: the table's set column (method column, or auto when the table has one; rows
    with another set are dropped when read), else a salted hash of the canonical SMILES (method hash)."""
    method = split_cfg.get("method", "auto")
    has_column = len(data.sets) > 0 and bool(np.all(np.isin(data.sets, SPLIT_NAMES)))
    if method == "column" and not has_column:
        raise ValueError("bde_data.split.method=column but the table has no set column for every molecule")
    if method in ("auto", "column") and has_column:
        return data.sets.astype(str)
    if method not in ("auto", "hash"):
        raise ValueError(f"unknown bde_data.split.method {method!r} (auto, column or hash)")
    return hash_split(list(data.smiles), fractions=tuple(split_cfg.get("fractions", (0.9, 0.05, 0.05))),
                      salt=str(split_cfg.get("salt", "nextims-bde-v1")))


def _value_range(cfg: Mapping[str, Any]) -> tuple[float, float]:
    """`bde_data.value_range` (kcal/mol, for bde and bdfe), VALUE_RANGE when unset; ValueError when malformed."""
    value = cfg.get("value_range") or VALUE_RANGE
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"bde_data.value_range must be [low, high] in kcal/mol, not {value!r}") from None
    if not low < high:
        raise ValueError(f"bde_data.value_range {value!r}: low must be below high")
    return low, high


def load_bde_table(cfg: Mapping[str, Any], cache_dir: str | Path) -> BDEDataset:
    """The table a `bde_data` config describes, with its split assigned."""
    data = build_or_load_table(cfg["path"], cache_dir, cfg.get("columns"), bool(cfg.get("propagate_symmetric", True)),
                               int(cfg.get("workers") or 1), _value_range(cfg))
    split = assign_split(data, dict(cfg.get("split") or {}))
    data.split = train_subset(split, list(data.smiles), float(cfg.get("train_fraction", 1.0)))
    return data


@dataclass
class HeldOutSet:
    """An external test table and the molecules of it that are evaluated."""

    name: str
    data: BDEDataset
    molecules: np.ndarray
    excluded: int  # molecules left out because the training table holds them


def load_heldout_sets(cfg: Mapping[str, Any], cache_dir: str | Path, table: BDEDataset) -> list[HeldOutSet]:
    """The held-out tables of a `bde_data` config (with exclude_training_molecules, `table`'s molecules left out)."""
    known = set(table.smiles.tolist())
    out = []
    for name, spec in (cfg.get("heldout") or {}).items():
        data = build_or_load_table(spec["path"], cache_dir, spec.get("columns"),
                                   bool(cfg.get("propagate_symmetric", True)), value_range=_value_range(cfg))
        keep = data.has_target()
        excluded = 0
        if spec.get("exclude_training_molecules", False):
            seen = np.array([s in known for s in data.smiles], dtype=bool)
            excluded = int(np.count_nonzero(seen & keep))
            keep &= ~seen
        out.append(HeldOutSet(str(name), data, np.nonzero(keep)[0], excluded))
    return out
