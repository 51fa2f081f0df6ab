"""The one training loop: epochs, validation, early stopping, per-epoch checkpoints and resume."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch

from nextims.training.checkpoint import load_checkpoint, save_checkpoint

Batch = dict[str, Any]


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


def fit(model: torch.nn.Module, loss_step: Callable[[torch.nn.Module, Batch], tuple[torch.Tensor, dict[str, float]]],
        epoch_batches: Callable[[int], Iterator[Batch]], validate: Callable[[torch.nn.Module], dict[str, float]],
        cfg: Mapping[str, Any], ckpt_dir: Path, log: Callable[[dict[str, float], int], None]) -> LoopState:
    """Train until max_epochs or early stopping; the best model's weights are loaded into `model` at the end.

    `loss_step(model, batch)` returns the loss and its parts; `epoch_batches(epoch)` yields the batches of one
    epoch (deterministic given the epoch); `validate(model)` returns metrics holding `cfg.monitor`.
    """
    mode = cfg.get("mode", "max")
    monitor = cfg["monitor"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"]))
    state = LoopState(best_value=-math.inf if mode == "max" else math.inf)
    last, best = ckpt_dir / "last.ckpt", ckpt_dir / "best.ckpt"
    if cfg.get("resume", True) and last.exists():
        ckpt = load_checkpoint(last)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        state = LoopState(**ckpt["loop"])
        torch.set_rng_state(ckpt["torch_rng"])
        print(f"resumed from {last} after epoch {state.epoch}")
    grad_clip = float(cfg.get("grad_clip") or 0)
    while state.epoch < int(cfg["max_epochs"]) and state.bad_epochs < int(cfg["patience"]):
        model.train()
        start, totals, n = time.perf_counter(), {}, 0
        for batch in epoch_batches(state.epoch):
            loss, parts = loss_step(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + float(v)
            n += 1
        metrics = {f"train/{k}": v / max(n, 1) for k, v in totals.items()}
        metrics["time/epoch_s"] = time.perf_counter() - start
        metrics.update(validate(model))
        value = float(metrics[monitor])
        if _better(value, state.best_value, mode):
            state.best_value, state.best_epoch, state.bad_epochs = value, state.epoch, 0
            save_checkpoint({"model": model.state_dict(), "epoch": state.epoch, "metrics": metrics}, best)
        else:
            state.bad_epochs += 1
        state.history.append(metrics)
        state.epoch += 1
        log(metrics, state.epoch)
        print(f"epoch {state.epoch}: " + " ".join(f"{k}={v:.4g}" for k, v in metrics.items()), flush=True)
        save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "loop": asdict(state),
                         "torch_rng": torch.get_rng_state()}, last)
    if best.exists():
        model.load_state_dict(load_checkpoint(best)["model"])
    return state
