"""The training loop: early stopping, best-model restore, and resume equal to an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nextims.training.checkpoint import load_checkpoint
from nextims.training.loop import fit

X = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
Y = X @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1


def run(ckpt_dir: Path, max_epochs: int, patience: int = 100, resume: bool = True):
    """Fit a linear model; returns (model, loop state)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)

    def loss_step(m, batch):
        loss = torch.nn.functional.mse_loss(m(batch["x"]).squeeze(1), batch["y"])
        return loss, {"loss": loss.item()}

    def batches(epoch):
        order = torch.randperm(64, generator=torch.Generator().manual_seed(epoch))
        for s in range(0, 64, 16):
            yield {"x": X[order[s:s + 16]], "y": Y[order[s:s + 16]]}

    def validate(m):
        with torch.no_grad():
            return {"val/mse": torch.nn.functional.mse_loss(m(X).squeeze(1), Y).item()}

    cfg = {"lr": 0.05, "weight_decay": 0.0, "max_epochs": max_epochs, "patience": patience, "monitor": "val/mse",
           "mode": "min", "grad_clip": 1.0, "resume": resume}
    state = fit(model, loss_step, batches, validate, cfg, ckpt_dir, log=lambda metrics, step: None)
    return model, state


def test_resume_matches_uninterrupted(tmp_path: Path) -> None:
    full_model, full = run(tmp_path / "full", max_epochs=4)
    run(tmp_path / "split", max_epochs=2)
    resumed_model, resumed = run(tmp_path / "split", max_epochs=4)
    assert resumed.epoch == full.epoch == 4
    assert [h["val/mse"] for h in resumed.history] == pytest.approx([h["val/mse"] for h in full.history], rel=1e-6)
    for a, b in zip(full_model.parameters(), resumed_model.parameters()):
        torch.testing.assert_close(a, b)


def test_best_weights_restored_and_checkpoints_written(tmp_path: Path) -> None:
    model, state = run(tmp_path, max_epochs=3)
    best = load_checkpoint(tmp_path / "best.ckpt")
    assert best["epoch"] == state.best_epoch
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, best["model"][k])
    assert (tmp_path / "last.ckpt").exists()


def test_no_resume_starts_over(tmp_path: Path) -> None:
    run(tmp_path, max_epochs=2)
    _, state = run(tmp_path, max_epochs=1, resume=False)
    assert state.epoch == 1
