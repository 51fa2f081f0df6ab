"""Shared fixtures: the real Hydra configs, composed and shrunk to tiny runs in a temporary folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from nextims.config import conf_dir, register_resolvers

TESTS_DIR = Path(__file__).resolve().parent
DATA_DIR = TESTS_DIR / "data"

TINY = ["data=tiny", "trainer=tiny", "tracking=none", "model.hidden_dim=64", "model.num_blocks=1",
        "featurizer.fp_bits=512"]


@pytest.fixture
def compose_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose conf/<name>.yaml with overrides; run folders, caches and checkpoints go to tmp_path."""
    register_resolvers()

    def _compose(overrides: list[str] = (), name: str = "train") -> DictConfig:
        GlobalHydra.instance().clear()
        with initialize_config_dir(str(conf_dir()), version_base="1.3"):
            cfg = compose(name, overrides=list(overrides), return_hydra_config=True)
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / "run")
            cfg.paths.cache_dir = str(tmp_path / "cache")
            cfg.paths.checkpoint_dir = str(tmp_path / "checkpoints")
        HydraConfig().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        return cfg

    yield _compose
    GlobalHydra.instance().clear()


def train_tiny_weights(compose_cfg: Callable[..., DictConfig], folder: Path, name: str,
                       overrides: list[str] = TINY) -> tuple[Path, dict]:
    """Train a tiny model, copy its weights and card to <folder>/<name>.*; returns the weights file and the metrics."""
    import shutil

    from nextims.train import train

    cfg = compose_cfg(overrides)
    metrics = train(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".safetensors", ".json"):
        shutil.copy(Path(cfg.paths.output_dir) / f"model{suffix}", folder / f"{name}{suffix}")
    return folder / f"{name}.safetensors", metrics


def kill_at_marker(script: str, args: list[str], marker: Path, what: str, timeout: float = 60,
                   cwd: Path | None = None) -> None:
    """Run `python -c script *args`, wait until it writes marker, then kill -9 it: a writer killed at that point."""
    writer = subprocess.Popen([sys.executable, "-c", script, *args], cwd=cwd)
    try:
        deadline = time.monotonic() + timeout
        while not marker.exists() and writer.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), f"the writer never {what}"
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=10)
    finally:
        if writer.poll() is None:
            writer.kill()
    assert writer.returncode == -signal.SIGKILL

