"""Phases bde and bde_cache on tiny data: one epoch, export and benchmark, resume after kill -9, the cache."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nextims.phases.bde import bench_bde
from nextims.phases.bde_cache import BDECache
from nextims.train import train

ROOT = Path(__file__).resolve().parents[2]
TINY_BDE = ["phase=bde", "bde_data=tiny", "trainer=tiny", "tracking=none", "model.hidden_dim=16",
            "model.num_layers=2", "model.readout_dim=16"]


def test_one_epoch_export_bench_and_cache(compose_cfg, tmp_path: Path, capsys) -> None:
    weights_dir = tmp_path / "weights"
    metrics = train(compose_cfg(TINY_BDE + ["export_name=bde_tiny", "ship=true", f"paths.weights_dir={weights_dir}"]))
    for key in ("val/mae", "val/rmse", "test/mae", "test/rmse", "test/mae/C-H", "commercial/mae", "exp/mae"):
        assert metrics[key] >= 0.0, key
    assert metrics["commercial/excluded_molecules"] == 1.0
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved == pytest.approx(metrics)
    card = json.loads((weights_dir / "bde_tiny.json").read_text())
    assert card["task"] == "bde" and card["dtype"] == "float16" and card["units"] == "kcal/mol"
    assert card["data"]["molecules"] == {"train": 19, "val": 4, "test": 4} and "phase=bde" in card["command"]
    assert "Br" in card["domain"]["elements"] and "I" not in card["domain"]["elements"]

    capsys.readouterr()
    bench_bde(compose_cfg(["bde_data=tiny", f"paths.weights_dir={weights_dir}"], name="bench"))
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"bde mae_test=[\d.]+ mae_commercial=[\d.]+ mae_pfas=nan mae_exp=[\d.]+", lines[-1])
    assert any(line.startswith("C-H ") for line in lines)

    cache_metrics = train(compose_cfg(["data=tiny", "phase=bde_cache", "tracking=none",
                                       f"ckpt_path={weights_dir / 'bde_tiny.safetensors'}"]))
    assert cache_metrics["bde_cache/bonds_covered"] == cache_metrics["bde_cache/bonds"] > 0
    assert cache_metrics["bde_cache/molecules_failed"] == 0
    cache = BDECache(next(p for p in (tmp_path / "cache").glob("bde-*.h5") if not p.name.startswith("bde-table")))
    assert len(cache) == cache_metrics["bde_cache/molecules"] and cache.attrs["units"] == "kcal/mol"


def command(tmp_path: Path, name: str) -> list[str]:
    """A tiny, slow-enough training (one molecule per step) whose checkpoints go to tmp_path/<name>."""
    return [sys.executable, "-m", "nextims.train", "phase=bde", "bde_data=tiny", "tracking=none",
            "trainer.max_epochs=8", "trainer.patience=100", "trainer.batch_size=1", "trainer.num_threads=1",
            f"hydra.run.dir={tmp_path / name / 'run'}", f"paths.cache_dir={tmp_path / 'cache'}",
            f"paths.checkpoint_dir={tmp_path / name / 'checkpoints'}"]


def test_resume_after_sigkill(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    reference = subprocess.Popen(command(tmp_path, "full"), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
    victim = subprocess.Popen(command(tmp_path, "killed"), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not list((tmp_path / "killed" / "checkpoints").glob("*/last.ckpt")):
        assert victim.poll() is None and time.time() < deadline, "no checkpoint before the run ended"
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL
    reference_out = reference.communicate(timeout=120)[0]
    assert reference.returncode == 0, reference_out

    rerun = subprocess.run(command(tmp_path, "killed"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    resumed = re.search(r"resumed from .*last\.ckpt after epoch (\d+)", rerun.stdout)
    assert resumed and 1 <= int(resumed.group(1)) < 8
    assert "epoch 8:" in rerun.stdout and "epoch 8:" in reference_out
    done = json.loads((tmp_path / "killed" / "run" / "metrics.json").read_text())
    full = json.loads((tmp_path / "full" / "run" / "metrics.json").read_text())
    assert done == pytest.approx(full, rel=1e-5)
