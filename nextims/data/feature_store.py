"""Molecule features (fingerprints, nominal masses, graphs) computed once and cached in HDF5."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch_geometric.data import Data

from nextims.data.cache import H5Reader, ReopensByPath, append_rows, atomic_h5, cache_is_valid, content_hash
from nextims.data.featurize import MolGraphFeaturizer, featurizer_signature, mol_from_smiles, nominal_mass
from nextims.data.graph_store import GraphArrays
from nextims.data.parallel import chunked, ordered_map
from nextims.data.sites import SITES_VERSION, CleavageSites, fingerprint_and_sites
from nextims.data.sparse import SparseCounts

log = logging.getLogger(__name__)

# Bump when the stored datasets change (part of the cache key, so an older file is rebuilt, never misread).
STORE_VERSION = 3
MAX_COUNT = np.iinfo(np.uint16).max
# fingerprint rows made sparse at a time when the cache is read
_SPARSE_BLOCK = 4096
_COMPRESSION = {"compression": "gzip", "compression_opts": 4, "shuffle": True}


class FeatureSet(ReopensByPath):
    """Read access to a features cache file; picklable, opens the file lazily in each process."""

    def __init__(self, path: str | Path) -> None:
        self.reader = H5Reader(path)
        self.key = str(self.reader.attrs["cache_key"])
        self.ids: list[str] = list(self.reader["ids"].asstr()[:])
        self.masses: np.ndarray = self.reader["mass"][:]
        self.atom_offsets: np.ndarray = self.reader["atom_offsets"][:]
        self.edge_offsets: np.ndarray = self.reader["edge_offsets"][:]

    @property
    def path(self) -> Path:
        """The cache file."""
        return self.reader.path

    @property
    def fingerprints(self) -> np.ndarray:
        """All count fingerprints, float32 (n x n_bits), read from disk on each access."""
        return self.reader["fingerprints"][:].astype(np.float32)

    @functools.cached_property
    def sparse_fingerprints(self) -> SparseCounts:
        """All count fingerprints kept sparse (read once, block by block, never whole and dense)."""
        dataset = self.reader["fingerprints"]
        blocks = [SparseCounts.from_dense(dataset[s:s + _SPARSE_BLOCK].astype(np.float32))
                  for s in range(0, len(dataset), _SPARSE_BLOCK)]
        return SparseCounts.concat(blocks, int(dataset.shape[1]))

    def fingerprint(self, i: int) -> np.ndarray:
        """The count fingerprint of compound i, float32."""
        return self.reader["fingerprints"][i].astype(np.float32)

    def graph(self, i: int) -> Data:
        """The molecular graph of compound i (see MolGraphFeaturizer for the layout)."""
        a0, a1 = self.atom_offsets[i], self.atom_offsets[i + 1]
        e0, e1 = self.edge_offsets[i], self.edge_offsets[i + 1]
        return Data(
            x=torch.from_numpy(self.reader["x"][a0:a1]),
            edge_index=torch.from_numpy(self.reader["edge_index"][:, e0:e1].astype(np.int64)),
            edge_attr=torch.from_numpy(self.reader["edge_attr"][e0:e1]),
            frag_mass=torch.from_numpy(self.reader["frag_mass"][e0:e1].astype(np.int64)),
            num_nodes=int(a1 - a0),
        )

    @functools.cached_property
    def graph_arrays(self) -> GraphArrays:
        """Every compound's graph, held compactly in memory (read once) and batched from arrays."""
        return GraphArrays.read(self.reader.file, self.atom_offsets, self.edge_offsets)

    def sites(self) -> CleavageSites:
        """The cleavage sites of every compound (see nextims.data.sites), read into memory."""
        return CleavageSites(*(self.reader[f"site_{name}"][:] for name in ("near", "far", "kind", "mass", "offsets")))

    def __len__(self) -> int:
        return len(self.ids)


def features_key(ids: Sequence[str], smiles: Sequence[str], featurizer: MolGraphFeaturizer,
                 n_bits: int, radius: int) -> str:
    """The cache key of the features of these compounds."""
    return content_hash({"store_version": STORE_VERSION, "sites_version": SITES_VERSION,
                         **featurizer_signature(featurizer, n_bits, radius)},
                        list(ids), list(smiles))


@dataclass(frozen=True)
class BlockFeaturizer:
    """The features of a block of (id, SMILES) pairs as arrays ready to append (picklable: runs in workers)."""

    featurizer: MolGraphFeaturizer
    n_bits: int
    radius: int

    def __call__(self, block: list[tuple[str, str]]) -> dict[str, Any]:
        """Fingerprints, masses, graph arrays and cleavage sites of the block's compounds, in order."""
        mols = [mol_from_smiles(smi, cid) for cid, smi in block]
        graphs = [self.featurizer(mol) for mol in mols]
        fp_sites = [fingerprint_and_sites(m, self.n_bits, self.radius) for m in mols]
        return {"fingerprints": np.minimum(np.stack([fp for fp, _ in fp_sites]), MAX_COUNT).astype(np.uint16),
                "sites": CleavageSites.concat([s for _, s in fp_sites], self.radius + 1),
                "mass": [nominal_mass(m) for m in mols],
                "atoms": [g.num_nodes for g in graphs], "edges": [g.edge_index.shape[1] for g in graphs],
                "x": torch.cat([g.x for g in graphs]).numpy(),
                "edge_index": torch.cat([g.edge_index for g in graphs], dim=1).numpy().astype(np.int32),
                "edge_attr": torch.cat([g.edge_attr for g in graphs]).numpy(),
                "frag_mass": torch.cat([g.frag_mass for g in graphs]).numpy().astype(np.int32)}


def _write_features(f: h5py.File, ids: Sequence[str], smiles: Sequence[str],
                    featurizer: MolGraphFeaturizer, n_bits: int, radius: int, block_size: int,
                    on_block: Callable[[int, int], None] | None, workers: int = 0) -> None:
    """Featurize the compounds block by block (in `workers` processes) into the open file f."""
    n = len(ids)
    f.attrs["signature"] = json.dumps(featurizer_signature(featurizer, n_bits, radius), sort_keys=True)
    f.create_dataset("ids", data=np.array(list(ids), dtype=object), dtype=h5py.string_dtype())
    fps = f.create_dataset("fingerprints", shape=(n, n_bits), maxshape=(None, n_bits),
                           dtype=np.uint16, chunks=(16, n_bits), **_COMPRESSION)
    masses = f.create_dataset("mass", shape=(n,), dtype=np.int32)
    graph_data = {
        "x": f.create_dataset("x", shape=(0, featurizer.atom_dim), maxshape=(None, featurizer.atom_dim),
                              dtype=np.float32, chunks=(4096, featurizer.atom_dim), **_COMPRESSION),
        "edge_attr": f.create_dataset("edge_attr", shape=(0, featurizer.bond_dim),
                                      maxshape=(None, featurizer.bond_dim), dtype=np.float32,
                                      chunks=(8192, featurizer.bond_dim), **_COMPRESSION),
        "frag_mass": f.create_dataset("frag_mass", shape=(0,), maxshape=(None,), dtype=np.int32, chunks=(8192,),
                                      **_COMPRESSION)}
    edge_index = f.create_dataset("edge_index", shape=(2, 0), maxshape=(2, None), dtype=np.int32,
                                  chunks=(2, 8192), **_COMPRESSION)
    site_data = {name: f.create_dataset(f"site_{name}", shape=shape, maxshape=(None, *shape[1:]), dtype=dtype,
                                        chunks=(8192, *shape[1:]), **_COMPRESSION)
                 for name, shape, dtype in (("near", (0, radius + 1), np.int32), ("far", (0, radius + 1), np.int32),
                                            ("kind", (0,), np.int8), ("mass", (0,), np.int32))}
    atom_counts, edge_counts = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    site_counts = np.zeros(n, dtype=np.int64)
    blocks = chunked(zip(ids, smiles), block_size)
    start = 0
    for block in ordered_map(BlockFeaturizer(featurizer, n_bits, radius), blocks, workers):
        stop = start + len(block["mass"])
        fps[start:stop] = block["fingerprints"]
        sites = block["sites"]
        site_counts[start:stop] = np.diff(sites.offsets)
        for name, dataset in site_data.items():
            append_rows(dataset, getattr(sites, name))
        masses[start:stop] = block["mass"]
        atom_counts[start:stop], edge_counts[start:stop] = block["atoms"], block["edges"]
        for name, dataset in graph_data.items():
            append_rows(dataset, block[name])
        append_rows(edge_index, block["edge_index"], axis=1)
        if on_block is not None:
            on_block(stop, n)
        start = stop
    f.create_dataset("atom_offsets", data=np.concatenate([[0], np.cumsum(atom_counts)]))
    f.create_dataset("edge_offsets", data=np.concatenate([[0], np.cumsum(edge_counts)]))
    f.create_dataset("site_offsets", data=np.concatenate([[0], np.cumsum(site_counts)]))


def build_or_load(ids: Sequence[str], smiles: Sequence[str], featurizer: MolGraphFeaturizer,
                  n_bits: int, radius: int, cache_dir: str | Path, block_size: int = 1024,
                  on_block: Callable[[int, int], None] | None = None, workers: int = 0) -> FeatureSet:
    """Features of the compounds, from `cache_dir/features-<key[:16]>.h5` when valid, else built there (blocks
    featurized in `workers` processes, written in order: the same file as one process writes).

    Bad SMILES raise RecordError (drop them before). on_block(done, total) is called after each
    block of compounds is written while building.
    """
    if len(ids) != len(smiles):
        raise ValueError(f"{len(ids)} ids but {len(smiles)} SMILES")
    key = features_key(ids, smiles, featurizer, n_bits, radius)
    path = Path(cache_dir) / f"features-{key[:16]}.h5"
    if cache_is_valid(path, key):
        log.info("reusing features cache %s (%d compounds)", path, len(ids))
    else:
        log.info("building features cache %s (%d compounds)", path, len(ids))
        with atomic_h5(path, cache_key=key) as f:
            _write_features(f, ids, smiles, featurizer, n_bits, radius, block_size, on_block, workers)
    return FeatureSet(path)


@dataclass
class FeatureStore:
    """Feature settings bound to a cache folder (what a config instantiates)."""

    cache_dir: Path
    featurizer: MolGraphFeaturizer = field(default_factory=MolGraphFeaturizer)
    n_bits: int = 4096
    radius: int = 2

    def build_or_load(self, ids: Sequence[str], smiles: Sequence[str],
                      on_block: Callable[[int, int], None] | None = None) -> FeatureSet:
        """Features of the compounds (see the module-level build_or_load)."""
        return build_or_load(ids, smiles, self.featurizer, self.n_bits, self.radius,
                             self.cache_dir, on_block=on_block)
