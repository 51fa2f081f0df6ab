"""Phase `evaluate`: score a saved spectrum model (ckpt_path=..., default the shipped NEIMS) on a split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nextims.evaluation.split_eval import evaluate_split
from nextims.models.weights import check_compatible, load_model
from nextims.phases.common import load_context, tracked_run, write_metrics
from nextims.training.batches import SpectrumBatches, predict_intensities
from nextims.training.runtime import select_device, set_threads

DEFAULT_WEIGHTS = "neims_massbank.safetensors"


def weights_path(cfg: DictConfig) -> Path:
    """The weights to evaluate: ckpt_path, or the shipped NEIMS baseline."""
    path = Path(cfg.ckpt_path) if cfg.get("ckpt_path") else Path(cfg.paths.weights_dir) / DEFAULT_WEIGHTS
    if not path.exists():
        raise FileNotFoundError(f"no weights at {path}; train one with `python -m nextims.train phase=baseline` "
                                "and pass ckpt_path=<run folder>/model.safetensors")
    return path


def run(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate the model on cfg.phase.split and write metrics.json."""
    set_threads(cfg.trainer.num_threads)
    path = weights_path(cfg)
    device = select_device(cfg.trainer.device)
    model, card = load_model(path, device)
    check_compatible(card, OmegaConf.to_container(cfg.featurizer, resolve=True), int(cfg.data.max_mz), path)
    ctx = load_context(cfg)
    with tracked_run(cfg, {"weights": path.name}) as tracker:
        batches = SpectrumBatches(ctx.data, ctx.features, getattr(model, "needs_graph", False), device)
        metrics = evaluate_split(ctx.data, lambda idx: predict_intensities(model, batches, idx), str(cfg.phase.split))
        write_metrics(cfg, metrics, tracker)
    return metrics
