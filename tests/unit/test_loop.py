"""The training loop: early stopping, best-model restore, LR schedules, and resume equal to an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nextims.errors import InputError
from nextims.training.checkpoint import load_checkpoint
from nextims.training.loop import fit

X = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
Y = X @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1


class Crash(Exception):
    """Stands for the process dying mid-epoch."""


def run(ckpt_dir: Path, max_epochs: int, resume: bool = True, schedule: str = "none", crash_at: int = 0,
        ema_decay: float | None = None, record: list | None = None, keep: str = "all", logged: list | None = None,
        data_key: str = "", limit: int | None = None):
    """Fit a linear model; with crash_at=n the run dies during epoch n (after n - 1 checkpoints)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    calls = {"validate": 0}

    def loss_step(m, batch):
        if record is not None:  # the weights before each step's update
            record.append([p.detach().clone() for p in m.parameters()])
        loss = torch.nn.functional.mse_loss(m(batch["x"]).squeeze(1), batch["y"])
        return loss, {"loss": loss.item()}

    def batches(epoch):
        order = torch.randperm(64, generator=torch.Generator().manual_seed(epoch))
        for s in range(0, 64, 16):
            yield {"x": X[order[s:s + 16]], "y": Y[order[s:s + 16]]}

    def validate(m):
        calls["validate"] += 1
        if calls["validate"] == crash_at:
            raise Crash
        with torch.no_grad():
            return {"val/mse": torch.nn.functional.mse_loss(m(X).squeeze(1), Y).item()}

    cfg = {"lr": 0.05, "weight_decay": 0.0, "max_epochs": max_epochs, "patience": 100, "monitor": "val/mse",
           "mode": "min", "grad_clip": 1.0, "resume": resume, "lr_schedule": schedule, "lr_patience": 1,
           "ema_decay": ema_decay, "keep_checkpoints": keep, "limit_train_batches": limit}
    log = (lambda metrics, step: None) if logged is None else (lambda metrics, step: logged.append((step, metrics)))
    state = fit(model, loss_step, batches, validate, cfg, ckpt_dir, log=log, batches_per_epoch=4, data_key=data_key)
    return model, state


@pytest.mark.parametrize("schedule,ema_decay", [("none", None), ("cosine", None), ("plateau", None), ("cosine", 0.9)])
def test_resume_matches_uninterrupted(tmp_path: Path, schedule: str, ema_decay: float | None) -> None:
    full_model, full = run(tmp_path / "full", max_epochs=5, schedule=schedule, ema_decay=ema_decay)
    with pytest.raises(Crash):
        run(tmp_path / "killed", max_epochs=5, schedule=schedule, crash_at=3, ema_decay=ema_decay)
    assert load_checkpoint(tmp_path / "killed" / "last.ckpt")["loop"]["epoch"] == 2
    resumed_model, resumed = run(tmp_path / "killed", max_epochs=5, schedule=schedule, ema_decay=ema_decay)
    assert resumed.epoch == full.epoch == 5
    for a, b in zip(full.history, resumed.history):
        assert a["val/mse"] == pytest.approx(b["val/mse"], rel=1e-6)
        assert a["train/lr"] == pytest.approx(b["train/lr"])
    for a, b in zip(full_model.parameters(), resumed_model.parameters()):
        torch.testing.assert_close(a, b)
    if schedule == "cosine":
        assert full.history[-1]["train/lr"] < full.history[0]["train/lr"]


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


def test_a_checkpoint_of_other_data_is_not_resumed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run(tmp_path, max_epochs=2, data_key="old-records")
    same, changed = [], []
    run(tmp_path, max_epochs=3, data_key="old-records", record=same)
    assert len(same) == 4  # resumed after epoch 2: one epoch of 4 steps
    run(tmp_path, max_epochs=3, data_key="new-records", record=changed)
    assert len(changed) == 12  # three epochs: trained afresh
    assert "trained on other data" in caplog.text and "training starts afresh" in caplog.text
    assert load_checkpoint(tmp_path / "last.ckpt")["data_key"] == "new-records"


def test_a_truncated_checkpoint_is_named_with_the_way_out(tmp_path: Path) -> None:
    run(tmp_path, max_epochs=1)
    last = tmp_path / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    with pytest.raises(InputError, match=rf"^checkpoint {last} cannot be read \(.*\): delete it, or run with "
                                         r"trainer.resume=false to train from the start$"):
        run(tmp_path, max_epochs=2)
    _, state = run(tmp_path, max_epochs=1, resume=False)  # the way out works
    assert state.epoch == 1


def test_limit_train_batches_ends_each_epoch_early_and_times_validation(tmp_path: Path) -> None:
    steps: list = []
    _, state = run(tmp_path, max_epochs=2, record=steps, limit=3)
    assert len(steps) == 6 and [h["time/batches"] for h in state.history] == [3, 3]
    assert all(h["time/val_s"] >= 0 and h["time/epoch_s"] > 0 for h in state.history)


def test_unknown_schedule_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lr_schedule"):
        run(tmp_path, max_epochs=1, schedule="warp")


def test_ema_weights_are_validated_and_returned(tmp_path: Path) -> None:
    record: list = []
    decay = 0.5
    model, state = run(tmp_path / "ema", max_epochs=1, ema_decay=decay, record=record)
    raw = load_checkpoint(tmp_path / "ema" / "last.ckpt")["model"]
    final = [raw["weight"], raw["bias"]]
    steps = record[1:] + [final]  # the weights after each of the 4 updates
    expected = [p.clone() for p in steps[0]]  # the average starts at the first update's weights
    for weights in steps[1:]:
        expected = [decay * e + (1 - decay) * w for e, w in zip(expected, weights)]
    for got, want in zip(model.parameters(), expected):
        torch.testing.assert_close(got.detach(), want)
    assert not torch.allclose(model.weight, raw["weight"])
    assert state.history[0]["val/mse"] == pytest.approx(
        torch.nn.functional.mse_loss(model(X).squeeze(1), Y).item(), rel=1e-6)


def test_ema_decay_out_of_range_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ema_decay"):
        run(tmp_path / "bad", max_epochs=1, ema_decay=1.0)


def test_best_epoch_metrics_logged_under_their_own_names(tmp_path: Path) -> None:
    logged: list = []
    _, state = run(tmp_path, max_epochs=3, logged=logged)
    assert [step for step, _ in logged[:3]] == [1, 2, 3]  # the curves: one point per epoch, from 1
    step, best = logged[-1]
    assert step == best["best_epoch"] == state.best_epoch + 1
    assert best["best/val/mse"] == state.best_value == state.history[state.best_epoch]["val/mse"]
    assert "best/train/loss" in best and not any(k.startswith(("val/", "best/time/")) for k in best)


@pytest.mark.parametrize("keep,left", [("all", {"best.ckpt", "last.ckpt"}), ("best", {"best.ckpt"}),
                                       ("last", {"last.ckpt"}), ("none", None)])
def test_keep_checkpoints(tmp_path: Path, keep: str, left: set | None) -> None:
    model, state = run(tmp_path / "ckpt", max_epochs=2, keep=keep)
    if left is None:
        assert not (tmp_path / "ckpt").exists()
    else:
        assert {p.name for p in (tmp_path / "ckpt").iterdir()} == left
    assert state.epoch == 2


def test_unknown_keep_checkpoints_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keep_checkpoints"):
        run(tmp_path, max_epochs=1, keep="some")
