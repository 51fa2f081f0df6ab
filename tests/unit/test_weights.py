"""Weights files: a model larger than the shard limit is split into shards that load back, checked by sha256."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from nextims.models.weights import load_model, save_weights, shipped_weights, weights_digest, weights_files

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
