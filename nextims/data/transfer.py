"""The transfer set: unlabelled molecules with the teacher's predicted spectra (soft labels), stored in HDF5
shards, each holding what the student reads (sparse count fingerprint, cleavage sites, nominal mass)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from nextims.data.cache import H5Reader
from nextims.data.molecules import InputMolecule, PreparedChunk, read_molecules
from nextims.data.sites import CleavageSites, ragged_rows
from nextims.data.sparse import SparseCounts

_COMPRESSION = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
SITE_FIELDS = ("near", "far", "kind", "mass")


def read_smiles_lines(paths: Sequence[str | Path]) -> Iterator[InputMolecule]:
    """The molecules of SMILES files, one after the other (read as `predict` reads a .smi file, compressed or
    not: undecodable lines come with their reason)."""
    for path in paths:
        yield from read_molecules(str(path))


def write_shard(f: h5py.File, chunks: Sequence[PreparedChunk], keep: Sequence[np.ndarray],
                soft: Sequence[np.ndarray]) -> int:
    """Write the kept molecules of prepared chunks (keep[i]: boolean mask over chunk i's molecules) and their soft
    labels into the open file f; returns the number written."""
    fps = np.concatenate([c.fingerprints[k] for c, k in zip(chunks, keep)])
    rows, cols = np.nonzero(fps)
    counts = np.bincount(rows, minlength=len(fps))
    sites = CleavageSites.concat([_subset(c.sites, k) for c, k in zip(chunks, keep)], chunks[0].sites.near.shape[1])
    molecules = [m for c, k in zip(chunks, keep) for m, kept in zip(c.molecules, k) if kept]
    f.create_dataset("keys", data=np.array([m.inchikey[:14] for m in molecules], dtype="S14"))
    f.create_dataset("smiles", data=np.array([m.smiles for m in molecules], dtype=object), dtype=h5py.string_dtype())
    f.create_dataset("mass", data=np.array([m.mass for m in molecules], dtype=np.int32))
    f.create_dataset("fp_bits", data=cols.astype(np.uint16), **_COMPRESSION)
    f.create_dataset("fp_counts", data=np.minimum(fps[rows, cols], np.iinfo(np.uint16).max).astype(np.uint16),
                     **_COMPRESSION)
    f.create_dataset("fp_offsets", data=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
    for name in SITE_FIELDS:
        f.create_dataset(f"site_{name}", data=getattr(sites, name).astype(np.int16), **_COMPRESSION)
    f.create_dataset("site_offsets", data=sites.offsets)
    f.create_dataset("soft", data=np.concatenate(soft).astype(np.float16), chunks=True, **_COMPRESSION)
    return len(molecules)


def _subset(sites: CleavageSites, keep: np.ndarray) -> CleavageSites:
    """The sites of the kept molecules."""
    rows, _ = ragged_rows(sites.offsets, np.flatnonzero(keep))
    counts = np.diff(sites.offsets)[np.asarray(keep, dtype=bool)]
    return CleavageSites(sites.near[rows], sites.far[rows], sites.kind[rows], sites.mass[rows],
                         np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))


@dataclass
class TransferSet:
    """Transfer molecules in memory: sparse count fingerprints, cleavage sites, nominal masses, soft labels."""

    keys: np.ndarray
    mass: np.ndarray
    fingerprints: SparseCounts
    sites: CleavageSites
    soft: np.ndarray
    n_bits: int
    key: str = ""

    def __len__(self) -> int:
        return len(self.mass)

    @classmethod
    def load(cls, shards: Sequence[Path], n_bits: int, key: str = "") -> "TransferSet":
        """Read and concatenate shard files (as written by write_shard); key: what made them."""
        parts: dict[str, list[np.ndarray]] = {}
        for path in shards:
            reader = H5Reader(path)
            for name in ("keys", "mass", "fp_bits", "fp_counts", "soft", *(f"site_{n}" for n in SITE_FIELDS)):
                parts.setdefault(name, []).append(reader[name][:])
            for name in ("fp_offsets", "site_offsets"):
                parts.setdefault(name, []).append(np.diff(reader[name][:]))
            reader.close()
        joined = {k: np.concatenate(v) for k, v in parts.items()}
        offsets = {k: np.concatenate([[0], np.cumsum(joined[k])]).astype(np.int64)
                   for k in ("fp_offsets", "site_offsets")}
        sites = CleavageSites(*(joined[f"site_{n}"] for n in SITE_FIELDS), offsets["site_offsets"])
        fingerprints = SparseCounts(joined["fp_bits"], joined["fp_counts"], offsets["fp_offsets"], int(n_bits))
        return cls(joined["keys"].astype(str), joined["mass"], fingerprints, sites, joined["soft"], int(n_bits), key)

    def batch(self, molecules: np.ndarray, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """Model inputs (dense `fp` counts, `mass`, `sites`) and the teacher's `soft` intensities; no observed
        `target`."""
        molecules = np.asarray(molecules, dtype=np.int64)
        fp = self.fingerprints.dense(molecules)
        return {"fp": torch.from_numpy(fp).to(device), "mass": torch.from_numpy(self.mass[molecules].astype(np.int64)).to(device),
                "sites": self.sites.take(molecules, device),
                "soft": torch.from_numpy(self.soft[molecules].astype(np.float32)).to(device)}
