"""Mini-batches of (features, observed spectrum) pairs for the spectrum models."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from rdkit import Chem

from nextims.data.feature_store import FeatureSet
from nextims.data.pieces import envelopes_and_pieces
from nextims.data.sites import ragged_rows
from nextims.data.spectra import SpectraData


class SpectrumBatches:
    """Builds model inputs for compounds and training batches for records."""

    def __init__(self, data: SpectraData, features: FeatureSet, needs_graph: bool, device: torch.device,
                 bde: list[np.ndarray] | None = None, soft: np.ndarray | None = None, needs_sites: bool = False,
                 envelope_width: int = 0, needs_pieces: bool = False) -> None:
        self.data = data
        self.soft = None if soft is None else torch.from_numpy(np.asarray(soft, dtype=np.float32))
        # every compound's bond BDEs in one array; compound i owns bde[bde_offsets[i]:bde_offsets[i + 1]]
        self.bde = None if bde is None else np.concatenate([np.zeros(0, np.float32), *bde]).astype(np.float32)
        self.bde_offsets = None if bde is None else np.concatenate([[0], np.cumsum([len(b) for b in bde])])
        self.features = features
        self.needs_graph = needs_graph
        self.device = device
        self.fp = features.sparse_fingerprints  # dense one batch at a time
        self.mass = torch.from_numpy(np.asarray(data.compound_masses, dtype=np.int64))
        self.spectra = torch.from_numpy(data.spectra)
        self.graphs = features.graph_arrays if needs_graph else None
        self.sites = features.sites() if needs_sites else None
        self.envelopes, self.pieces = envelopes_and_pieces([Chem.MolFromSmiles(s) for s in data.compound_smiles]
                                                           if envelope_width or needs_pieces else [],
                                                           data.max_mz + 1, envelope_width, needs_pieces)

    @classmethod
    def for_model(cls, model: torch.nn.Module, data: SpectraData, features: FeatureSet, device: torch.device,
                  **kwargs: object) -> "SpectrumBatches":
        """Batches holding the inputs that `model` reads (graphs, cleavage sites, isotope envelopes, pieces)."""
        return cls(data, features, bool(getattr(model, "needs_graph", False)), device,
                   needs_sites=bool(getattr(model, "needs_sites", False)),
                   envelope_width=int(getattr(model, "needs_envelope", 0)),
                   needs_pieces=bool(getattr(model, "needs_pieces", False)), **kwargs)

    def compounds(self, compound_idx: np.ndarray) -> dict[str, torch.Tensor]:
        """Model inputs for the given compounds."""
        idx = torch.as_tensor(np.asarray(compound_idx, dtype=np.int64))
        batch = {"fp": torch.from_numpy(self.fp.dense(idx.numpy())).to(self.device), "mass": self.mass[idx].to(self.device)}
        if self.soft is not None:
            batch["soft"] = self.soft[idx].to(self.device)
        if self.sites is not None:
            batch["sites"] = self.sites.take(idx.numpy(), self.device)
        if self.envelopes is not None:
            batch["envelope"] = self.envelopes.take(idx.numpy(), self.device)
        if self.pieces is not None:
            batch["pieces"] = self.pieces.take(idx.numpy(), self.device)
        if self.needs_graph:
            batch["graph"] = self.graphs.batch(idx.numpy()).to(self.device)
            if self.bde is not None:
                bonds, _ = ragged_rows(self.bde_offsets, idx.numpy())
                batch["bde"] = torch.from_numpy(self.bde[bonds]).to(self.device)
        return batch

    def records(self, record_idx: np.ndarray) -> dict[str, torch.Tensor]:
        """Model inputs plus `target` spectra for the given records."""
        record_idx = np.asarray(record_idx, dtype=np.int64)
        batch = self.compounds(self.data.record_compound[record_idx])
        batch["target"] = self.spectra[torch.as_tensor(record_idx)].to(self.device)
        return batch


@torch.no_grad()
def predict_intensities(model: torch.nn.Module, batches: SpectrumBatches, compound_idx: np.ndarray,
                        batch_size: int = 512) -> np.ndarray:
    """Predicted spectra (intensities, squared from the models' square-root output) for compounds."""
    was_training = model.training
    model.eval()
    out = [model(batches.compounds(compound_idx[s:s + batch_size])).float().pow(2).cpu().numpy()
           for s in range(0, len(compound_idx), batch_size)]
    model.train(was_training)
    width = batches.data.max_mz + 1
    return np.concatenate(out) if out else np.zeros((0, width), np.float32)


def _plan(record_idx: np.ndarray, batch_size: int, seed: int, epoch: int, transfer_size: int = 0,
          per_epoch: int = 0, transfer_batch_size: int | None = None) -> list[tuple[str, np.ndarray]]:
    """An epoch's batches as (source, indices): the shuffled records, then `per_epoch` transfer molecules (the
    epoch's slice of one fixed permutation, so epochs cycle through all of them), all in shuffled order when
    there are transfer batches (records alone keep their order)."""
    rng = np.random.default_rng(seed * 100003 + epoch)
    order = rng.permutation(np.asarray(record_idx))
    plan = [("records", order[s:s + batch_size]) for s in range(0, len(order), batch_size)]
    if not transfer_size or per_epoch <= 0:
        return plan
    cycle = np.random.default_rng(seed).permutation(transfer_size)
    take = cycle[(np.arange(per_epoch) + epoch * per_epoch) % transfer_size]
    size = transfer_batch_size or batch_size
    plan += [("transfer", take[s:s + size]) for s in range(0, len(take), size)]
    return [plan[i] for i in rng.permutation(len(plan))]


def epoch_batch_count(n_records: int, batch_size: int, transfer_size: int = 0, per_epoch: int = 0,
                      transfer_batch_size: int | None = None) -> int:
    """How many batches `mixed_epoch` yields per epoch."""
    count = -(-n_records // batch_size)
    if transfer_size and per_epoch > 0:
        count += -(-per_epoch // (transfer_batch_size or batch_size))
    return count


def mixed_epoch(batches: SpectrumBatches, record_idx: np.ndarray, batch_size: int, seed: int, epoch: int,
                transfer: Any = None, per_epoch: int = 0,
                transfer_batch_size: int | None = None) -> Iterator[dict[str, torch.Tensor]]:
    """One epoch of training batches (see `_plan`): observed records and, given a transfer set, `per_epoch` of its
    molecules in batches of transfer_batch_size (default batch_size), each batch from one source; deterministic
    given seed and epoch."""
    size = len(transfer) if transfer is not None else 0
    for source, idx in _plan(record_idx, batch_size, seed, epoch, size, per_epoch, transfer_batch_size):
        yield batches.records(idx) if source == "records" else transfer.batch(idx, batches.device)
