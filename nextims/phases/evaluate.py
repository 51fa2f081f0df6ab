"""Phase `evaluate`: score a saved spectrum model (ckpt_path=..., default the shipped NEIMS) on a split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from nextims.evaluation.split_eval import evaluate_split
from nextims.phases.common import load_context, tracked_run, write_metrics
from nextims.phases.spectrum import saved_predictor
from nextims.training.runtime import set_threads

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
    ctx = load_context(cfg)
    predict = saved_predictor(path, cfg, ctx)
    with tracked_run(cfg, {"weights": path.name}, ("phase", "data", "featurizer")) as tracker:
        metrics = evaluate_split(ctx.data, predict, str(cfg.phase.split))
        write_metrics(cfg, metrics, tracker)
    return metrics
