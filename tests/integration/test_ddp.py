"""Two CPU processes under torchrun (gloo): DDP training on tiny data, rank 0 alone writing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nextims import PROJECT_ROOT
from tests.conftest import TINY


@pytest.mark.slow
@pytest.mark.parametrize("model", ["neims", "teacher_gnn"])
def test_torchrun_two_gloo_processes(tmp_path: Path, model: str) -> None:
    overrides = [o for o in TINY if not o.startswith("model.")] + [
        f"model={model}", "model.hidden_dim=32", "trainer.max_epochs=2", "trainer.batch_size=8",
        f"hydra.run.dir={tmp_path}/run", f"paths.cache_dir={tmp_path}/cache",
        f"paths.checkpoint_dir={tmp_path}/checkpoints"]
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "nextims.train", *overrides], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=600, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("epoch 2:") == 1  # rank 0 alone reports
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0.0 <= metrics["val/recall@10"] <= 1.0
    (ckpt,) = (tmp_path / "checkpoints").glob("*/last.ckpt")
    assert ckpt.exists()
