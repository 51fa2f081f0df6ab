"""Phase `bde_cache`: the predicted BDE of every bond of every spectrum molecule, in one HDF5 file.

Layout of `paths.cache_dir/bde-<key16>.h5` (units kcal/mol), keyed by compound id (the InChIKey first
block of the spectrum data): `ids` (n), `offsets` (n + 1), and per bond `bde`, `bdfe` (float32), `flagged`
(bool: an element or bond type the model never saw in training; the value is still given) and
`bond_atoms` (int32 begin, end). The bonds of compound i are rows offsets[i]:offsets[i+1], in RDKit
order of the molecule with explicit hydrogens (`Chem.AddHs` of the compound's SMILES): the first
`mol.GetNumBonds()` rows are the heavy-atom bonds in the order of the implicit-hydrogen graph, then the
X-H bonds. Attributes: model_hash (sha256 of the weights files), data_hash, units, format_version.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import h5py
import numpy as np
import torch
from omegaconf import DictConfig

from nextims.data.bde_graphs import BDE_FEATURIZER, MolArrays, PackedGraphs, featurizer_signature, mol_arrays
from nextims.data.cache import H5Reader, ReopensByPath, append_rows, atomic_h5, cache_is_valid, content_hash
from nextims.data.featurize import ELEMENTS, mol_from_smiles
from nextims.data.spectra import SpectraData
from nextims.errors import RecordError
from nextims.models.bondnet import BondNet, load_bondnet, predict_bonds
from nextims.models.weights import weights_digest
from nextims.phases.common import load_data, tracked_run, write_metrics
from nextims.training.runtime import select_device, set_threads

# Bump whenever the layout or meaning of the cache file changes.
BDE_CACHE_VERSION = 1
DEFAULT_WEIGHTS = "bondnet_bde_db2.safetensors"

log = logging.getLogger(__name__)


class BDECache(ReopensByPath):
    """Read access to a BDE cache by compound id; picklable, opens the file lazily in each process."""

    def __init__(self, path: str | Path) -> None:
        self.reader = H5Reader(path)
        self.ids: list[str] = list(self.reader["ids"].asstr()[:])
        self.index = {cid: i for i, cid in enumerate(self.ids)}
        self.offsets: np.ndarray = self.reader["offsets"][:]

    @property
    def path(self) -> Path:
        """The cache file."""
        return self.reader.path

    @property
    def attrs(self) -> dict[str, Any]:
        """The file's attributes (model_hash, data_hash, units, format_version, coverage, ...)."""
        return dict(self.reader.attrs)

    def _rows(self, compound_id: str) -> slice:
        try:
            i = self.index[compound_id]
        except KeyError:
            raise KeyError(f"compound {compound_id!r} is not in the BDE cache {self.path}") from None
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def __getitem__(self, compound_id: str) -> np.ndarray:
        """The predicted BDE (kcal/mol, float32) of each bond of the compound."""
        return self.reader["bde"][self._rows(compound_id)]

    def bdfe(self, compound_id: str) -> np.ndarray:
        """The predicted BDFE (kcal/mol, float32) of each bond of the compound."""
        return self.reader["bdfe"][self._rows(compound_id)]

    def flagged(self, compound_id: str) -> np.ndarray:
        """Per bond: True where the bond is outside the model's training domain."""
        return self.reader["flagged"][self._rows(compound_id)].astype(bool)

    def bond_atoms(self, compound_id: str) -> np.ndarray:
        """Per bond: (begin, end) atom indices in the molecule with explicit hydrogens."""
        return self.reader["bond_atoms"][self._rows(compound_id)]

    def bonds(self, compound_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(BDE per bond, flagged per bond) of the compound."""
        rows = self._rows(compound_id)
        return self.reader["bde"][rows], self.reader["flagged"][rows].astype(bool)

    def __contains__(self, compound_id: object) -> bool:
        return compound_id in self.index

    def __len__(self) -> int:
        return len(self.ids)


def cache_key(model_hash: str, ids: Sequence[str], smiles: Sequence[str]) -> tuple[str, str]:
    """(cache key, data hash) of the BDEs of these compounds predicted by the model with this weights hash."""
    data_hash = content_hash(list(ids), list(smiles))
    return content_hash("bde-cache", BDE_CACHE_VERSION, model_hash, data_hash, featurizer_signature()), data_hash


def featurize(ids: Sequence[str], smiles: Sequence[str]) -> tuple[list[MolArrays], list[str]]:
    """Graphs of the compounds (an empty graph for one whose SMILES fails) and the ids that failed."""
    graphs, failed = [], []
    for cid, smi in zip(ids, smiles):
        try:
            graphs.append(mol_arrays(mol_from_smiles(smi, cid)))
        except RecordError:
            failed.append(cid)
            graphs.append(MolArrays(np.zeros((0, BDE_FEATURIZER.atom_dim), np.float32), np.zeros(0, np.int8),
                                    np.zeros((0, 2), np.int32), np.zeros((0, BDE_FEATURIZER.bond_dim), np.float32),
                                    np.zeros(0, np.int16)))
    return graphs, failed


def coverage(graphs: PackedGraphs, bde: np.ndarray, flagged: np.ndarray, failed: list[str],
             known_elements: np.ndarray) -> dict[str, Any]:
    """Bonds covered, flagged bonds, and molecules with unknown elements or bond types."""
    n = len(graphs)
    atom_mol = np.repeat(np.arange(n), np.diff(graphs.atom_offsets))
    bond_mol = np.repeat(np.arange(n), graphs.num_bonds)
    odd_element = ~known_elements[graphs.elements.astype(np.int64)]
    mol_odd_element = np.bincount(atom_mol[odd_element], minlength=n) > 0
    mol_flagged = np.bincount(bond_mol[flagged], minlength=n) > 0
    odd = sorted({ELEMENTS[e] if e < len(ELEMENTS) else "other" for e in graphs.elements[odd_element].tolist()})
    return {"molecules": n, "molecules_failed": len(failed), "bonds": int(len(bde)),
            "bonds_covered": int(np.count_nonzero(np.isfinite(bde))), "bonds_flagged": int(np.count_nonzero(flagged)),
            "molecules_with_flagged_elements": int(np.count_nonzero(mol_odd_element)),
            "molecules_with_flagged_bond_types": int(np.count_nonzero(mol_flagged & ~mol_odd_element)),
            "flagged_elements": odd, "failed_examples": failed[:5]}


def build_cache(model: BondNet, model_hash: str, ids: Sequence[str], smiles: Sequence[str], path: Path, key: str,
                data_hash: str, batch_size: int = 256, device: torch.device | str = "cpu",
                on_batch: Callable[[int, int], None] | None = None, block_batches: int = 64) -> dict[str, Any]:
    """Predict every bond of every compound and write the cache file atomically; returns the coverage report.

    Compounds are featurized, predicted and written `block_batches` batches at a time (the same batches as all at
    once), so memory holds one block's graphs, not the whole dataset's. on_batch(done, total) is called after each
    batch of molecules is predicted (before anything is final).
    """
    failed: list[str] = []
    elements, atom_counts, bond_counts = [], [], []
    block = batch_size * max(1, block_batches)
    with atomic_h5(path, cache_key=key, format_version=BDE_CACHE_VERSION) as f:
        columns = {name: f.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype,
                                          chunks=(65536, *shape))
                   for name, shape, dtype in (("bde", (), np.float32), ("bdfe", (), np.float32),
                                              ("flagged", (), bool), ("bond_atoms", (2,), np.int32))}
        for start in range(0, len(ids), block):
            arrays, block_failed = featurize(ids[start:start + block], smiles[start:start + block])
            failed += block_failed
            graphs = PackedGraphs.pack(arrays)
            for s in range(0, len(graphs), batch_size):
                v, fl = predict_bonds(model, graphs, np.arange(s, min(s + batch_size, len(graphs))), batch_size,
                                      device)
                for name, rows in (("bde", v[:, 0]), ("bdfe", v[:, 1]), ("flagged", fl)):
                    append_rows(columns[name], rows.astype(columns[name].dtype))
                if on_batch is not None:
                    on_batch(min(start + s + batch_size, len(ids)), len(ids))
            append_rows(columns["bond_atoms"], graphs.bond_atoms.astype(np.int32))
            elements.append(graphs.elements)
            atom_counts.append(np.diff(graphs.atom_offsets))
            bond_counts.append(graphs.num_bonds)
        # what the coverage report reads of all the graphs: their elements and atom and bond offsets
        summary = PackedGraphs.pack([])
        summary.elements = np.concatenate([summary.elements, *elements])
        summary.atom_offsets = np.concatenate([[0], np.cumsum(np.concatenate([[], *atom_counts]))]).astype(np.int64)
        summary.bond_offsets = np.concatenate([[0], np.cumsum(np.concatenate([[], *bond_counts]))]).astype(np.int64)
        report = coverage(summary, columns["bde"][:], columns["flagged"][:], failed,
                          model.known_elements.cpu().numpy())
        f.create_dataset("ids", data=np.array(list(ids), dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("offsets", data=summary.bond_offsets)
        f.attrs.update({"model_hash": model_hash, "data_hash": data_hash, "units": "kcal/mol",
                        "featurizer": json.dumps(featurizer_signature()), "coverage": json.dumps(report)})
    return report


def weights_path(cfg: DictConfig) -> Path:
    """The BDE model: ckpt_path in phase bde_cache, else phase.bde_weights, else the shipped model."""
    if cfg.phase.name == "bde_cache" and cfg.get("ckpt_path"):
        return Path(cfg.ckpt_path)
    chosen = cfg.phase.get("bde_weights")
    return Path(chosen) if chosen else Path(cfg.paths.weights_dir) / DEFAULT_WEIGHTS


def format_coverage(report: dict[str, Any]) -> str:
    """The coverage report as text."""
    share = report["bonds_covered"] / max(report["bonds"], 1)
    return (f"BDE cache coverage: {report['molecules']} molecules ({report['molecules_failed']} failed), "
            f"{report['bonds_covered']}/{report['bonds']} bonds covered ({share:.2%}), "
            f"{report['bonds_flagged']} bonds flagged out of domain; molecules with unknown elements "
            f"{report['molecules_with_flagged_elements']} ({', '.join(report['flagged_elements']) or 'none'}), "
            f"with unknown bond types only {report['molecules_with_flagged_bond_types']}")


def ensure_cache(cfg: DictConfig, tracker: Any = None, data: SpectraData | None = None) -> Path:
    """The BDE cache of the spectrum data `cfg.data` (or the already loaded `data`) for the configured model:
    reused when its key matches (same weights file content, compounds, featurizer, format), else built;
    coverage printed and logged."""
    data = data if data is not None else load_data(cfg)
    ids, smiles = [str(k) for k in data.compound_keys], list(data.compound_smiles)
    weights = weights_path(cfg)
    if not weights.exists():
        raise FileNotFoundError(f"no BDE model weights at {weights}; train them with "
                                "`python -m nextims.train experiment=bondnet_bde_db2` or pass ckpt_path=...")
    model_hash = weights_digest(weights)
    key, data_hash = cache_key(model_hash, ids, smiles)
    path = Path(cfg.paths.cache_dir) / f"bde-{key[:16]}.h5"
    start = time.perf_counter()
    if cache_is_valid(path, key, format_version=BDE_CACHE_VERSION):
        report = json.loads(BDECache(path).attrs["coverage"])
        log.info(f"reusing BDE cache {path}")
    else:
        device = select_device(cfg.trainer.device)
        model, _ = load_bondnet(weights, device)
        report = build_cache(model, model_hash, ids, smiles, path, key, data_hash,
                             int(cfg.phase.get("batch_size", 256)), device)
        log.info(f"built BDE cache {path} in {time.perf_counter() - start:.1f} s")
    log.info(format_coverage(report))
    if tracker is not None:
        numbers = {f"bde_cache/{k}": float(v) for k, v in report.items() if isinstance(v, (int, float))}
        tracker.log_metrics(numbers)
        tracker.log_dict({**report, "path": str(path), "weights": str(weights)}, "bde_cache_coverage.json")
    return path


def run(cfg: DictConfig) -> dict[str, Any]:
    """Build (or reuse) the BDE cache of the spectrum data and report its coverage."""
    set_threads(cfg.trainer.num_threads)
    with tracked_run(cfg, {"bde_weights": weights_path(cfg).name}, ("phase", "data")) as tracker:
        start = time.perf_counter()
        path = ensure_cache(cfg, tracker)
        report = json.loads(BDECache(path).attrs["coverage"])
        metrics = {f"bde_cache/{k}": v for k, v in report.items() if isinstance(v, (int, float))}
        metrics["bde_cache/seconds"] = time.perf_counter() - start
        write_metrics(cfg, metrics, tracker)
    return metrics
