"""The one training loop: epochs, validation, early stopping, per-epoch checkpoints and resume."""

from __future__ import annotations

import itertools
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch
from tqdm.auto import tqdm

from nextims.training import distributed as dist
from nextims.training.checkpoint import load_checkpoint, save_checkpoint

Batch = dict[str, Any]
# what a finished training keeps of its checkpoint folder: all (best.ckpt and last.ckpt: the same command
# resumes, or extends with more epochs), best, last, or none (the run folder keeps the best weights anyway)
KEEP_CHECKPOINTS = ("all", "best", "last", "none")

logger = logging.getLogger(__name__)


@dataclass
class LoopState:
    """What the loop needs to resume: epoch counters and the best validation value so far."""

    epoch: int = 0
    best_value: float = -math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


def _better(value: float, best: float, mode: str) -> bool:
    return value > best if mode == "max" else value < best


def _scheduler(optimizer: torch.optim.Optimizer, cfg: Mapping[str, Any]) -> Any:
    """The learning-rate schedule: none, cosine (to 1% over max_epochs) or plateau (halve on a stall)."""
    kind = cfg.get("lr_schedule") or "none"
    if kind == "none":
        return None
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=int(cfg["max_epochs"]),
                                                          eta_min=float(cfg["lr"]) * 0.01)
    if kind == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=cfg.get("mode", "max"), factor=0.5,
                                                          patience=int(cfg.get("lr_patience", 3)))
    raise ValueError(f"unknown trainer.lr_schedule {kind!r} (none, cosine or plateau)")


def _weight_average(model: torch.nn.Module, decay: float | None) -> torch.optim.swa_utils.AveragedModel | None:
    """An exponential moving average of the weights (and buffers), or None when decay is unset."""
    if decay is None:
        return None
    if not 0.0 < float(decay) < 1.0:
        raise ValueError(f"trainer.ema_decay must lie in (0, 1), got {decay}")
    return torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(float(decay)), use_buffers=True)


def _keep_checkpoints(cfg: Mapping[str, Any]) -> str:
    """The trainer's keep_checkpoints option (default all); ValueError when unknown."""
    keep = str(cfg.get("keep_checkpoints") or "all")
    if keep not in KEEP_CHECKPOINTS:
        raise ValueError(f"trainer.keep_checkpoints must be one of {', '.join(KEEP_CHECKPOINTS)}, got {keep!r}")
    return keep


def prune_checkpoints(ckpt_dir: Path, keep: str) -> None:
    """Delete what `keep` does not keep of a finished training's checkpoints (the folder too when emptied)."""
    for name in ("best", "last"):
        if keep not in ("all", name):
            (ckpt_dir / f"{name}.ckpt").unlink(missing_ok=True)
    if ckpt_dir.is_dir() and not any(ckpt_dir.iterdir()):
        ckpt_dir.rmdir()


def best_metrics(state: LoopState) -> tuple[int, dict[str, float]]:
    """(best epoch counted from 1, its metrics as `best/<name>` plus `best_epoch`); (0, {}) before any epoch."""
    if state.best_epoch < 0 or state.best_epoch >= len(state.history):
        return 0, {}
    epoch = state.best_epoch + 1
    chosen = {f"best/{k}": v for k, v in state.history[state.best_epoch].items() if not k.startswith("time/")}
    return epoch, {"best_epoch": epoch, **chosen}


def epoch_line(metrics: Mapping[str, float], state: LoopState, max_epochs: int, monitor: str) -> str:
    """A short report of one epoch: loss, the monitored metric, the best so far and the epoch's duration."""
    shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k in ("train/loss", monitor))
    return (f"epoch {state.epoch}: {shown} | best {state.best_value:.4g} at epoch {state.best_epoch + 1} "
            f"| {metrics['time/epoch_s']:.1f} s (max {max_epochs} epochs)")


def _progress(batches: Iterator[Batch], total: int | None, epoch: int, max_epochs: int) -> Iterator[Batch]:
    """A progress bar over one epoch's batches (rank 0, on a terminal only: tqdm's disable=None)."""
    if not dist.is_main():
        return batches
    return tqdm(batches, total=total, desc=f"epoch {epoch}/{max_epochs}", unit="batch", leave=False,
                disable=None, dynamic_ncols=True)


def _my_share(batches: Iterator[Batch]) -> Iterator[Batch]:
    """This rank's batches: batch i of every full group of world_size batches goes to rank i."""
    world, me = dist.world_size(), dist.rank()
    if world == 1:
        yield from batches
        return
    group: list[Batch] = []
    for batch in batches:
        group.append(batch)
        if len(group) == world:
            yield group[me]
            group = []


def fit(model: torch.nn.Module, loss_step: Callable[[torch.nn.Module, Batch], tuple[torch.Tensor, dict[str, float]]],
        epoch_batches: Callable[[int], Iterator[Batch]], validate: Callable[[torch.nn.Module], dict[str, float]],
        cfg: Mapping[str, Any], ckpt_dir: Path, log: Callable[[dict[str, float], int], None],
        batches_per_epoch: int | None = None, data_key: str = "") -> LoopState:
    """Train until max_epochs or early stopping; the best model's weights are loaded into `model` at the end.

    `loss_step(model, batch)` returns the loss and its parts; `epoch_batches(epoch)` yields the batches of one
    epoch (deterministic given the epoch; `batches_per_epoch` of them, when given, sizes the progress bar);
    `validate(model)` returns metrics holding `cfg.monitor`. `log(metrics, epoch)` receives each epoch's metrics
    (epochs counted from 1) and, at the end, the best epoch's as `best/<name>` with `best_epoch`.
    `limit_train_batches` (when set) ends each epoch after that many batches: a timing run, not a training.
    `data_key` (a hash of the records trained on) is stored in the checkpoints: a last.ckpt written for other data
    is not resumed; training starts afresh and says so.
    Under torchrun each rank trains on its share of every epoch's batches (DDP); rank 0 alone validates,
    logs and writes checkpoints, and its decisions are broadcast. With `amp` on a GPU, steps run in bfloat16.
    With `ema_decay` set, validation, the best checkpoint and the returned weights are the moving average's.
    Once training is over, `keep_checkpoints` (all, best, last, none) says what stays in ckpt_dir.
    """
    keep = _keep_checkpoints(cfg)
    mode = cfg.get("mode", "max")
    monitor = cfg["monitor"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"]))
    scheduler = _scheduler(optimizer, cfg)
    ema = _weight_average(model, cfg.get("ema_decay"))
    state = LoopState(best_value=-math.inf if mode == "max" else math.inf)
    last, best = ckpt_dir / "last.ckpt", ckpt_dir / "best.ckpt"
    ckpt = load_checkpoint(last) if cfg.get("resume", True) and last.exists() else None
    if ckpt is not None and ckpt.get("data_key", "") != data_key:
        logger.warning(f"not resuming from {last}: it was trained on other data (records key "
                       f"{ckpt.get('data_key', '')[:12] or 'unknown'}, now {data_key[:12]}); training starts afresh")
        best.unlink(missing_ok=True)
        ckpt = None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt.get("scheduler"):
            scheduler.load_state_dict(ckpt["scheduler"])
        if ema is not None:
            ema.load_state_dict(ckpt["ema"])
        state = LoopState(**ckpt["loop"])
        torch.set_rng_state(ckpt["torch_rng"])
        logger.info(f"resumed from {last} after epoch {state.epoch}")
    grad_clip = float(cfg.get("grad_clip") or 0)
    device = next(model.parameters()).device
    amp = bool(cfg.get("amp")) and device.type == "cuda"
    train_model = model
    if dist.world_size() > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    max_epochs = int(cfg["max_epochs"])
    limit = cfg.get("limit_train_batches")  # at most this many batches an epoch (a timing run); None: all
    per_rank = None if batches_per_epoch is None else batches_per_epoch // dist.world_size()
    while state.epoch < max_epochs and state.bad_epochs < int(cfg["patience"]):
        model.train()
        start, totals, n = time.perf_counter(), {}, 0
        epoch_share = itertools.islice(_my_share(epoch_batches(state.epoch)), limit)
        for batch in _progress(epoch_share, per_rank if limit is None else min(limit, per_rank or limit),
                               state.epoch + 1, max_epochs):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss, parts = loss_step(train_model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            if ema is not None:
                ema.update_parameters(model)
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + float(v)
            n += 1
        metrics = {f"train/{k}": v / max(n, 1) for k, v in totals.items()}
        metrics["time/epoch_s"] = time.perf_counter() - start
        metrics["time/batches"] = n
        metrics["train/lr"] = optimizer.param_groups[0]["lr"]
        evaluated = model if ema is None else ema.module
        if dist.is_main():
            start = time.perf_counter()
            metrics.update(validate(evaluated))
            metrics["time/val_s"] = time.perf_counter() - start
        metrics = dist.broadcast(metrics)
        value = float(metrics[monitor])
        improved = _better(value, state.best_value, mode)
        if improved:
            state.best_value, state.best_epoch, state.bad_epochs = value, state.epoch, 0
        else:
            state.bad_epochs += 1
        state.history.append(metrics)
        state.epoch += 1
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(value)
        elif scheduler is not None:
            scheduler.step()
        if dist.is_main():
            if improved:
                save_checkpoint({"model": evaluated.state_dict(), "epoch": state.epoch - 1, "metrics": metrics,
                                 "data_key": data_key}, best)
            save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "loop": asdict(state),
                             "torch_rng": torch.get_rng_state(), "data_key": data_key,
                             "scheduler": scheduler.state_dict() if scheduler is not None else {},
                             **({"ema": ema.state_dict()} if ema is not None else {})}, last)
            log(metrics, state.epoch)
            logger.info(epoch_line(metrics, state, max_epochs, monitor))
            logger.debug(f"epoch {state.epoch}: " + " ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
        dist.barrier()
    if best.exists():
        model.load_state_dict(load_checkpoint(best)["model"])
    epoch, chosen = best_metrics(state)
    if dist.is_main() and chosen:
        log(chosen, epoch)
        logger.info(f"best epoch {epoch} of {state.epoch}: {monitor}={state.best_value:.4g}")
    dist.barrier()
    if dist.is_main() and keep != "all":
        prune_checkpoints(ckpt_dir, keep)
    return state
