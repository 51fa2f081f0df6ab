"""`kill -9` during training, then the same command: it resumes and ends with an uninterrupted run's metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nextims import PROJECT_ROOT
from tests.conftest import TINY

# Metrics of a resumed run equal an uninterrupted run's to this tolerance (same seed, same CPU threads).
TOLERANCE = 1e-6


def command(tmp: Path, run: str) -> list[str]:
    """The training command, its run folder named `run`."""
    overrides = [o for o in TINY if not o.startswith("model.")] + [
        "model=teacher_gnn", "model.hidden_dim=32", "model.joint_dim=64", "trainer.max_epochs=3",
        "trainer.patience=10", "trainer.batch_size=8", "trainer.num_threads=1", f"hydra.run.dir={tmp}/{run}",
        f"paths.cache_dir={tmp}/cache", f"paths.checkpoint_dir={tmp}/checkpoints-{run.split('-')[0]}"]
    return [sys.executable, "-m", "nextims.train", *overrides]


@pytest.mark.slow
def test_kill_then_rerun_resumes_to_same_metrics(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    full = subprocess.run(command(tmp_path, "full"), cwd=PROJECT_ROOT, capture_output=True, text=True, env=env)
    assert full.returncode == 0, full.stderr[-2000:]
    proc = subprocess.Popen(command(tmp_path, "killed-1"), cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    for line in proc.stdout:
        if " - epoch 1:" in line:  # the loop's log line (Hydra's console format)
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed-1" / "metrics.json").exists()
    again = subprocess.run(command(tmp_path, "killed-2"), cwd=PROJECT_ROOT, capture_output=True, text=True,
                           env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resumed from" in again.stdout and "epoch 1:" not in again.stdout and "epoch 3:" in again.stdout
    expected = json.loads((tmp_path / "full" / "metrics.json").read_text())
    resumed = json.loads((tmp_path / "killed-2" / "metrics.json").read_text())
    assert resumed.keys() == expected.keys()
    for key, value in expected.items():
        assert resumed[key] == pytest.approx(value, abs=TOLERANCE), key
