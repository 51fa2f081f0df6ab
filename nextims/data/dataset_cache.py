"""The filtered, binned spectra of a `data` config cached in HDF5, keyed by the input's content and every setting
that shapes the records, so that a rerun or a sweep trial loads them in seconds; built in worker processes."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import rdkit

from nextims.data.cache import atomic_h5, cache_is_valid, content_hash, file_sha256
from nextims.data.spectra import (LISTED_REASONS, CompoundRecord, FilteredChunk, SpectraData, filtered_records,
                                  load_spectra, split_dataset)
from nextims.errors import DropReport
from nextims.io import record_format
from nextims.io.text import spectrum_files

log = logging.getLogger(__name__)

# Bump when filtering, binning or keying records changes (part of the key: an older file is rebuilt, never misread).
DATASET_VERSION = 2
_STRINGS = ("id", "key", "smiles", "license")


def source_digest(path: str | Path) -> str:
    """sha256 over the content of the file(s) a spectrum path stands for (a MassBank directory: each *.txt by its
    path inside the directory)."""
    root = Path(path)
    files = spectrum_files(root)
    return content_hash([[str(f.relative_to(root)) if root.is_dir() else "", file_sha256(f)] for f in files])


def dataset_key(cfg: Mapping[str, Any]) -> str:
    """The cache key of a `data` config: its input's content and the settings that decide which records are kept
    and how they are binned (the split is not part of it: it is assigned at every load)."""
    fmt = record_format(cfg["path"], cfg.get("format", "auto"))
    return content_hash("spectra-dataset", DATASET_VERSION, rdkit.__version__, source_digest(cfg["path"]),
                        fmt.parse.__module__, str(cfg.get("encoding") or "utf-8"), int(cfg["max_mz"]),
                        dict(cfg.get("filters") or {}))


def load_dataset(cfg: Mapping[str, Any], cache_dir: str | Path | None, workers: int = 0,
                 progress: bool | None = None) -> SpectraData:
    """The SpectraData of a `data` config: read from `<cache_dir>/spectra-<key>.h5` when a complete cache for the
    same input and settings is there, else read and filtered in `workers` processes and cached (atomically);
    cache_dir None reads without a cache."""
    if cache_dir is None:
        return load_spectra(cfg, workers, progress)
    start = time.perf_counter()
    key = dataset_key(cfg)
    path = Path(cache_dir) / f"spectra-{key[:16]}.h5"
    if cache_is_valid(path, key, DATASET_VERSION):
        filtered = read_cache(path)
        log.info("dataset: %d records from the cache %s in %.1f s", len(filtered.records), path.name,
                 time.perf_counter() - start)
    else:
        filtered = filtered_records(cfg, workers, progress)
        elapsed = time.perf_counter() - start
        read = filtered.report.kept + filtered.report.total_dropped
        log.info("dataset: %d records read and filtered in %.1f s (%.0f records/s, %d workers); cached as %s",
                 read, elapsed, read / max(elapsed, 1e-9), workers, path.name)
        write_cache(path, key, filtered)
    return split_dataset(filtered, cfg)


def write_cache(path: Path, key: str, filtered: FilteredChunk) -> None:
    """Write filtered records to path atomically (a killed writer leaves no file that cache_is_valid accepts)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    records = filtered.records
    with atomic_h5(path, key, DATASET_VERSION) as f:
        for name in _STRINGS:
            f.create_dataset(name, data=[getattr(r, name) or "" for r in records], dtype=h5py.string_dtype())
        f["mass"] = np.array([r.mass for r in records], dtype=np.int64)
        f["energy_ev"] = np.array([np.nan if r.energy_ev is None else r.energy_ev for r in records], np.float64)
        f["counts"], f["bins"], f["values"] = filtered.counts, filtered.bins, filtered.values
        f.attrs["report"] = json.dumps(filtered.report.to_dict())


def read_cache(path: Path) -> FilteredChunk:
    """The filtered records that write_cache wrote."""
    with h5py.File(path, "r") as f:
        columns = {name: f[name].asstr()[:].tolist() for name in _STRINGS}
        mass, energy = f["mass"][:].tolist(), f["energy_ev"][:].tolist()
        records = [CompoundRecord(i, k, smi, m, None, None if e != e else e, lic or None)
                   for i, k, smi, m, e, lic in zip(columns["id"], columns["key"], columns["smiles"], mass, energy,
                                                   columns["license"])]
        report = DropReport.from_dict(json.loads(f.attrs["report"]), LISTED_REASONS)
        return FilteredChunk(records, f["counts"][:], f["bins"][:], f["values"][:], report)
