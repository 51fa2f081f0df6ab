"""A saved spectrum model together with the featurization it was trained with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from torch_geometric.data import Batch

from nextims.config import build
from nextims.data.molecules import ChunkPreparer, PreparedChunk
from nextims.models.registry import check_targets
from nextims.models.weights import load_model, shipped_weights
from nextims.training.runtime import select_device


def weights_file(model: str, weights_dir: Path) -> Path:
    """A shipped model's name, or a path to a .safetensors file."""
    path = Path(model)
    if path.suffix != ".safetensors":
        path = Path(weights_dir) / f"{model}.safetensors"
    if not path.exists():
        known = [p.stem for p in shipped_weights(weights_dir)]
        raise FileNotFoundError(f"no model weights {path} (shipped models: {', '.join(known) or 'none'})")
    return path


@dataclass
class SpectrumPredictor:
    """Predicts binned spectra of prepared molecules with a saved model."""

    model: torch.nn.Module
    card: dict[str, Any]
    device: torch.device
    name: str = "model"

    @classmethod
    def load(cls, path: Path, device: str = "auto") -> "SpectrumPredictor":
        """Load weights and card; the model is named after the weights file."""
        dev = select_device(device)
        model, card = load_model(path, dev)
        return cls(model, card, dev, Path(path).stem)

    def __post_init__(self) -> None:
        feat = self.card["featurizer"]
        self.n_bits, self.radius = int(feat["fp_bits"]), int(feat["fp_radius"])
        needs_graph = getattr(self.model, "needs_graph", False)
        if needs_graph:  # load() read a checked card; a card handed in directly is checked here
            check_targets(feat["graph"], f"the model card of {self.name}", where="featurizer.graph")
        self.graph_featurizer = build(OmegaConf.create(feat["graph"])) if needs_graph else None

    @property
    def max_mz(self) -> int:
        """The largest predicted m/z."""
        return int(self.card["data"]["max_mz"])

    @property
    def needs_sites(self) -> bool:
        """Whether the model reads cleavage sites (nextims.data.sites)."""
        return bool(getattr(self.model, "needs_sites", False))

    def chunk_preparer(self, max_heavy_atoms: int = 100) -> ChunkPreparer:
        """The preparation of input molecules into this model's inputs, with the card's featurizer settings."""
        return ChunkPreparer(self.max_mz, max_heavy_atoms, self.n_bits, self.radius, self.graph_featurizer,
                             self.needs_sites, int(getattr(self.model, "needs_envelope", 0)),
                             bool(getattr(self.model, "needs_pieces", False)))

    @torch.no_grad()
    def predict_features(self, chunk: PreparedChunk) -> np.ndarray:
        """Relative intensities (n, max_mz + 1) of the chunk's molecules."""
        if not chunk.molecules:
            return np.zeros((0, self.max_mz + 1), np.float32)
        batch = {"fp": torch.from_numpy(chunk.fingerprints).to(self.device),
                 "mass": torch.tensor([m.mass for m in chunk.molecules], device=self.device)}
        if self.graph_featurizer is not None:
            batch["graph"] = Batch.from_data_list(chunk.graphs).to(self.device)
        if self.needs_sites:
            batch["sites"] = chunk.sites.take(np.arange(len(chunk.molecules)), self.device)
        if chunk.envelopes is not None:
            batch["envelope"] = chunk.envelopes.take(np.arange(len(chunk.molecules)), self.device)
        if chunk.pieces is not None:
            batch["pieces"] = chunk.pieces.take(np.arange(len(chunk.molecules)), self.device)
        return self.model(batch).float().pow(2).cpu().numpy()
