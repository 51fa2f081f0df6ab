"""`ensemble_size=2` on tiny data: members trained (or resumed) from consecutive seeds, saved as one model."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from nextims.phases.common import load_context
from nextims.phases.spectrum import saved_predictor
from nextims.train import train
from tests.conftest import TINY


def base_peak_scaled(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(x.max(axis=1, keepdims=True), 1e-30)


def test_ensemble_trains_members_and_saves_their_mean(compose_cfg) -> None:
    cfg = compose_cfg(TINY + ["ensemble_size=2"])
    metrics = train(cfg)
    out = Path(cfg.paths.output_dir)
    card = json.loads((out / "model.json").read_text())
    assert card["model"]["name"] == "neims_ensemble" and card["model"]["size"] == 2
    assert [m["seed"] for m in card["members"]] == [0, 1]
    assert card["metrics"]["val/recall@10"] == metrics["val/recall@10"] and "test/recall@10" not in metrics
    ctx = load_context(cfg)
    idx = ctx.data.compound_indices("test")
    ensemble = saved_predictor(out / "model.safetensors", cfg, ctx)(idx)
    members = [saved_predictor(out / f"member{i}" / "model.safetensors", cfg, ctx)(idx) for i in range(2)]
    np.testing.assert_allclose(ensemble, np.mean([base_peak_scaled(m) for m in members], axis=0), rtol=1e-4, atol=1e-7)
    assert not np.allclose(members[0], members[1])


def test_members_are_the_single_seed_runs_and_are_reused(compose_cfg, caplog) -> None:
    single = compose_cfg(TINY + ["seed=1"])
    train(single)
    checkpoints = Path(single.paths.checkpoint_dir)
    assert len(list(checkpoints.iterdir())) == 1
    caplog.clear()
    caplog.set_level(logging.INFO, logger="nextims")
    cfg = compose_cfg(TINY + ["ensemble_size=2"])
    train(cfg)
    assert len(list(checkpoints.iterdir())) == 2, "member 1 (seed 1) should resume the single seed-1 run"
    assert "resumed from" in caplog.text
    first = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    train(compose_cfg(TINY + ["ensemble_size=2"]))
    assert len(list(checkpoints.iterdir())) == 2
    assert json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text()) == first


@pytest.mark.parametrize("size", [0, -2])
def test_ensemble_size_below_one_is_refused(compose_cfg, size: int) -> None:
    with pytest.raises(ValueError, match="ensemble_size must be a whole number >= 1"):
        train(compose_cfg(TINY + [f"ensemble_size={size}"]))
