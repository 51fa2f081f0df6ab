"""Soft labels for distillation: the teacher's predicted spectra of the training compounds, cached in HDF5.

The file is keyed by the teacher's weights (sha256 of its files), the training compounds (keys and SMILES),
the featurizer, the m/z range and the format, so a new teacher or new data rebuilds it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from nextims.data.cache import H5Reader, atomic_h5, cache_is_valid, content_hash
from nextims.models.weights import weights_digest
from nextims.phases.common import SpectrumContext
from nextims.predictor import weights_file

SOFT_LABELS_VERSION = 1


def teacher_weights(cfg: DictConfig) -> Path:
    """The teacher named by `teacher.checkpoint`: a shipped model's name or a .safetensors path."""
    return weights_file(str(cfg.teacher.checkpoint), Path(cfg.paths.weights_dir))


def soft_labels_key(cfg: DictConfig, ctx: SpectrumContext, weights: Path) -> str:
    """The cache key: teacher weights content, training compounds, featurizer, m/z range, format."""
    train = ctx.data.compound_indices("train")
    keys = [str(ctx.data.compound_keys[i]) for i in train]
    smiles = [str(ctx.data.compound_smiles[i]) for i in train]
    return content_hash("soft-labels", SOFT_LABELS_VERSION, weights_digest(weights), keys, smiles,
                        OmegaConf.to_container(cfg.featurizer, resolve=True), int(cfg.data.max_mz))


def build_soft_labels(cfg: DictConfig, ctx: SpectrumContext, weights: Path, path: Path, key: str) -> None:
    """Predict the training compounds with the teacher and write them (float16 intensities) atomically."""
    from nextims.phases.spectrum import saved_predictor

    train = ctx.data.compound_indices("train")
    predicted = saved_predictor(weights, cfg, ctx)(train)
    with atomic_h5(path, key, format_version=SOFT_LABELS_VERSION) as f:
        f.attrs["teacher"] = str(weights)
        f.create_dataset("compound_keys", data=np.array([str(ctx.data.compound_keys[i]) for i in train], dtype="S"))
        f.create_dataset("intensities", data=predicted.astype(np.float16), compression="gzip", compression_opts=4)


def ensure_soft_labels(cfg: DictConfig, ctx: SpectrumContext, tracker: Any = None) -> tuple[np.ndarray, str]:
    """Soft labels aligned with the dataset's compounds (NaN rows outside the training split) and their key."""
    weights = teacher_weights(cfg)
    key = soft_labels_key(cfg, ctx, weights)
    path = Path(cfg.paths.cache_dir) / f"soft_labels-{key[:16]}.h5"
    if cache_is_valid(path, key, format_version=SOFT_LABELS_VERSION):
        print(f"reusing soft labels {path}")
    else:
        start = time.perf_counter()
        build_soft_labels(cfg, ctx, weights, path, key)
        print(f"built soft labels {path} from teacher {weights} in {time.perf_counter() - start:.1f} s")
    reader = H5Reader(path)
    stored = reader["compound_keys"][:].astype(str)
    index = {str(k): i for i, k in enumerate(ctx.data.compound_keys)}
    labels = np.full((len(ctx.data.compound_keys), int(cfg.data.max_mz) + 1), np.nan, np.float32)
    labels[[index[k] for k in stored]] = reader["intensities"][:].astype(np.float32)
    reader.close()
    if tracker is not None:
        tracker.log_dict({"path": str(path), "teacher": str(weights), "key": key, "compounds": len(stored)},
                         "soft_labels.json")
    return labels, key
