"""Model weights as safetensors plus a JSON model card that says how to rebuild the model."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file

from nextims.config import build
from nextims.data.cache import file_sha256

# A weights file holds at most this many bytes of tensors; a larger model is split into numbered shards.
MAX_SHARD_BYTES = 24_000_000


def _shards(tensors: dict[str, torch.Tensor], max_bytes: int) -> list[dict[str, torch.Tensor]]:
    """Consecutive groups of tensors of at most max_bytes each (a single larger tensor gets a group alone)."""
    groups: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, t in tensors.items():
        n = t.numel() * t.element_size()
        if groups[-1] and size + n > max_bytes:
            groups.append({})
            size = 0
        groups[-1][key] = t
        size += n
    return groups


def shard_name(path: Path, index: int, count: int) -> str:
    """`<name>.safetensors` for the first shard, `<name>.<i>-of-<n>.part` for the others."""
    return path.with_suffix(".safetensors").name if index == 0 else f"{path.name}.{index + 1}-of-{count}.part"


def save_weights(model: torch.nn.Module, path: Path, card: dict[str, Any], fp16: bool = False,
                 max_shard_bytes: int = MAX_SHARD_BYTES) -> Path:
    """Write `<path>.safetensors` (plus numbered shards when larger than max_shard_bytes) and `<path>.json`.

    The card must hold the model config under `model`; it lists every shard with its sha256.
    """
    path = Path(path).with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.half() if fp16 and v.is_floating_point() else v).detach().cpu().contiguous()
               for k, v in model.state_dict().items()}
    groups = _shards(tensors, max_shard_bytes)
    names = [shard_name(path, i, len(groups)) for i in range(len(groups))]
    digests = []
    for group, name in zip(groups, names):
        tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
        save_file(group, str(tmp))
        digests.append(file_sha256(tmp))
        os.replace(tmp, path.parent / name)
    card = {**card, "weights_file": names[0], "dtype": "float16" if fp16 else "float32"}
    if len(names) > 1:
        card["weights_shards"] = [{"file": n, "sha256": d} for n, d in zip(names, digests)]
    path.with_suffix(".json").write_text(json.dumps(card, indent=2, sort_keys=False, default=str) + "\n")
    return path.with_suffix(".safetensors")


def weights_files(path: Path) -> list[Path]:
    """Every file holding the weights of `<name>.safetensors`: itself, then the shards its card lists."""
    path = Path(path)
    shards = read_card(path).get("weights_shards")
    if not shards:
        return [path]
    files = [path.parent / s["file"] for s in shards]
    for f, s in zip(files, shards):
        if not f.exists():
            raise FileNotFoundError(f"{path}: weights shard {f.name} is missing")
        if file_sha256(f) != s["sha256"]:
            raise ValueError(f"{path}: weights shard {f.name} does not match its card (sha256); "
                             "the shards come from different saves")
    return files


def weights_digest(path: Path) -> str:
    """sha256 over every file of a model's weights (identifies the model's content)."""
    files = weights_files(path)  # checks every shard against the sha256 its card lists
    if len(files) == 1:
        return file_sha256(files[0])
    return hashlib.sha256("".join(s["sha256"] for s in read_card(path)["weights_shards"]).encode()).hexdigest()


def shipped_weights(weights_dir: Path, task: str | None = None) -> list[Path]:
    """The models in a weights folder (each `<name>.safetensors` with its card), optionally of one task."""
    paths = sorted(p for p in Path(weights_dir).glob("*.safetensors") if p.with_suffix(".json").exists())
    return [p for p in paths if task is None or read_card(p).get("task", "spectrum") == task]


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
    state = {}
    for f in weights_files(path.with_suffix(".safetensors")):
        state.update(load_file(str(f)))
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
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
