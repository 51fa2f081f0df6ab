"""Weights files: a model larger than the shard limit is split into shards that load back, checked by sha256."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from nextims.models import registry
from nextims.models.weights import load_model, save_weights, shipped_weights, weights_digest, weights_files


@pytest.fixture(autouse=True)
def torch_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cards here name plain torch modules, which code must register (for these tests only)."""
    monkeypatch.setattr(registry, "_registered", set(registry._registered))
    registry.register_target("torch.nn.Linear", "torch.nn.Sequential")


def card_for(model_cfg: dict) -> dict:
    return {"model": model_cfg, "task": "spectrum"}


@pytest.fixture
def linear_cfg() -> dict:
    return {"_target_": "torch.nn.Linear", "in_features": 64, "out_features": 64}


def test_small_model_is_one_file(tmp_path: Path, linear_cfg: dict) -> None:
    model = nn.Linear(64, 64)
    path = save_weights(model, tmp_path / "m", card_for(linear_cfg))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]
    assert "weights_shards" not in json.loads((tmp_path / "m.json").read_text())
    loaded, _ = load_model(path)
    torch.testing.assert_close(loaded.weight, model.weight)


def test_large_model_is_sharded_and_loads_back(tmp_path: Path, linear_cfg: dict) -> None:
    model = nn.Linear(64, 64)  # weight 16 KiB, bias 256 B in float32
    path = save_weights(model, tmp_path / "m", card_for(linear_cfg), max_shard_bytes=10_000)
    card = json.loads((tmp_path / "m.json").read_text())
    assert [s["file"] for s in card["weights_shards"]] == ["m.safetensors", "m.2-of-2.part"]
    assert [f.name for f in weights_files(path)] == ["m.safetensors", "m.2-of-2.part"]
    loaded, _ = load_model(path)
    torch.testing.assert_close(loaded.weight, model.weight)
    torch.testing.assert_close(loaded.bias, model.bias)
    assert shipped_weights(tmp_path) == [path]


def test_shard_from_another_save_is_refused(tmp_path: Path, linear_cfg: dict) -> None:
    path = save_weights(nn.Linear(64, 64), tmp_path / "m", card_for(linear_cfg), max_shard_bytes=10_000)
    digest = weights_digest(path)
    other = save_weights(nn.Linear(64, 64), tmp_path / "other" / "m", card_for(linear_cfg), max_shard_bytes=10_000)
    (tmp_path / "m.2-of-2.part").write_bytes((other.parent / "m.2-of-2.part").read_bytes())
    with pytest.raises(ValueError, match="m.2-of-2.part does not match its card"):
        load_model(path)
    (tmp_path / "m.2-of-2.part").unlink()
    with pytest.raises(FileNotFoundError, match="m.2-of-2.part is missing"):
        load_model(path)
    assert digest != weights_digest(other)


def test_shipped_weights_lists_models_with_cards_by_task(tmp_path: Path, linear_cfg: dict) -> None:
    save_weights(nn.Linear(64, 64), tmp_path / "a", card_for(linear_cfg))
    save_weights(nn.Linear(64, 64), tmp_path / "b", {"model": linear_cfg, "task": "bde"})
    (tmp_path / "stray.safetensors").write_bytes(b"")
    assert [p.name for p in shipped_weights(tmp_path)] == ["a.safetensors", "b.safetensors"]
    assert [p.name for p in shipped_weights(tmp_path, "bde")] == ["b.safetensors"]


def test_int8_weights_load_back_within_half_a_step_and_small_tensors_stay_float16(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 128), nn.Linear(128, 4))  # 32,768 weights: int8; 512: float16
    with torch.no_grad():
        model[0].weight[3] = 0  # an all-zero row stays exactly zero
    card = {"model": {"_target_": "torch.nn.Sequential", "_args_": [
        {"_target_": "torch.nn.Linear", "in_features": 256, "out_features": 128},
        {"_target_": "torch.nn.Linear", "in_features": 128, "out_features": 4}]}}
    int8 = save_weights(model, tmp_path / "q", card, precision="int8")
    half = save_weights(model, tmp_path / "h", card, precision="float16")
    assert json.loads((tmp_path / "q.json").read_text())["dtype"] == "int8"
    assert int8.stat().st_size < 0.6 * half.stat().st_size
    loaded, _ = load_model(int8)
    step = model[0].weight.abs().amax(dim=1, keepdim=True) / 127
    error = (loaded[0].weight - model[0].weight).abs()
    assert (error <= step / 2 + 1e-7).all() and error.max() > 0
    assert torch.equal(loaded[0].weight[3], torch.zeros(256))
    torch.testing.assert_close(loaded[1].weight, model[1].weight.half().float())
    torch.testing.assert_close(loaded[0].bias, model[0].bias.half().float())


def test_unknown_precision_is_refused(tmp_path: Path, linear_cfg: dict) -> None:
    with pytest.raises(ValueError, match="unknown weights precision 'int4'"):
        save_weights(nn.Linear(64, 64), tmp_path / "m", card_for(linear_cfg), precision="int4")
