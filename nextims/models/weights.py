"""Model weights as safetensors plus a JSON model card that says how to rebuild the model."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file

from nextims.config import build


def save_weights(model: torch.nn.Module, path: Path, card: dict[str, Any], fp16: bool = False) -> Path:
    """Write `<path>.safetensors` and `<path>.json` (the card must hold the model config under `model`)."""
    path = Path(path).with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.half() if fp16 and v.is_floating_point() else v).detach().cpu().contiguous()
               for k, v in model.state_dict().items()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path.with_suffix(".safetensors"))
    card = {**card, "weights_file": path.with_suffix(".safetensors").name, "dtype": "float16" if fp16 else "float32"}
    path.with_suffix(".json").write_text(json.dumps(card, indent=2, sort_keys=False, default=str) + "\n")
    return path.with_suffix(".safetensors")


def read_card(path: Path) -> dict[str, Any]:
    """The model card beside a weights file."""
    card = Path(path).with_suffix(".json")
    if not card.exists():
        raise FileNotFoundError(f"no model card {card} beside the weights")
    return json.loads(card.read_text())


def load_model(path: Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model its card describes and load its weights (no pickle), in float32."""
    path = Path(path)
    card = read_card(path)
    model = build(OmegaConf.create(card["model"]))
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path.with_suffix(".safetensors"))).items()}
    model.load_state_dict(state)
    return model.to(device).eval(), card


def check_compatible(card: dict[str, Any], featurizer: dict[str, Any], max_mz: int, path: Path) -> None:
    """Raise ValueError when a saved model was trained with other features or another m/z range."""
    if card.get("featurizer") != featurizer:
        raise ValueError(f"{path}: trained with featurizer {card.get('featurizer')}, the config has {featurizer}; "
                         "pass the same featurizer options")
    trained_mz = card.get("data", {}).get("max_mz")
    if trained_mz is not None and int(trained_mz) != int(max_mz):
        raise ValueError(f"{path}: predicts m/z up to {trained_mz}, the config has data.max_mz={max_mz}")
