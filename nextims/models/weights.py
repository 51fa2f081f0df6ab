"""Model weights as safetensors plus a JSON model card that says how to rebuild the model."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file

from nextims.config import build
from nextims.data.cache import file_sha256
from nextims.io.atomic import atomic_path, write_text_atomic
from nextims.models.registry import check_card

# A weights file holds at most this many bytes of tensors; a larger model is split into numbered shards.
MAX_SHARD_BYTES = 24_000_000
PRECISIONS = ("float32", "float16", "int8")
# int8: 2-D weights of at least this many values are stored as int8 with one float32 scale per row beside them
INT8_MIN_VALUES = 16_384
INT8_SCALE = ".int8_scale"


def check_precision(precision: str) -> str:
    """The precision, or ValueError when it is not one of PRECISIONS."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown weights precision {precision!r} (one of {', '.join(PRECISIONS)})")
    return precision


def _stored(tensors: dict[str, torch.Tensor], precision: str) -> dict[str, torch.Tensor]:
    """The tensors as written: float32, float16, or float16 with the large 2-D weights as per-row int8."""
    check_precision(precision)
    out: dict[str, torch.Tensor] = {}
    for key, t in tensors.items():
        if not t.is_floating_point() or precision == "float32":
            out[key] = t
        elif precision == "int8" and t.dim() == 2 and t.numel() >= INT8_MIN_VALUES:
            scale = t.float().abs().amax(dim=1, keepdim=True) / 127
            scale = torch.where(scale > 0, scale, torch.ones_like(scale))
            out[key] = torch.round(t.float() / scale).clamp(-127, 127).to(torch.int8)
            out[key + INT8_SCALE] = scale.squeeze(1)
        else:
            out[key] = t.half()
    return out


def _restored(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """float32 tensors from stored ones (int8 weights times their row scales)."""
    out = {}
    for key, t in state.items():
        if key.endswith(INT8_SCALE):
            continue
        scale = state.get(key + INT8_SCALE)
        if scale is not None:
            out[key] = t.float() * scale.float().unsqueeze(1)
        else:
            out[key] = t.float() if t.is_floating_point() else t
    return out


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


def save_weights(model: torch.nn.Module, path: Path, card: dict[str, Any], precision: str = "float32",
                 max_shard_bytes: int = MAX_SHARD_BYTES) -> Path:
    """Write `<path>.safetensors` (plus numbered shards when larger than max_shard_bytes) and `<path>.json`.

    The card must hold the model config under `model`; it lists every shard with its sha256. precision:
    float32, float16, or int8 (2-D weights of INT8_MIN_VALUES or more as int8 with a scale per row, the rest float16).
    """
    path = Path(path).with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = _stored({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, precision)
    groups = _shards(tensors, max_shard_bytes)
    names = [shard_name(path, i, len(groups)) for i in range(len(groups))]
    digests = []
    for group, name in zip(groups, names):
        with atomic_path(path.parent / name) as tmp:
            save_file(group, str(tmp))
            digests.append(file_sha256(tmp))
    card = {**card, "weights_file": names[0], "dtype": precision}
    if len(names) > 1:
        card["weights_shards"] = [{"file": n, "sha256": d} for n, d in zip(names, digests)]
    write_text_atomic(path.with_suffix(".json"), json.dumps(card, indent=2, sort_keys=False, default=str) + "\n")
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
    """The model card beside a weights file; UnregisteredTargetError when it names a class outside the registry."""
    card_path = Path(path).with_suffix(".json")
    if not card_path.exists():
        raise FileNotFoundError(f"no model card {card_path} beside the weights")
    card = json.loads(card_path.read_text())
    check_card(card, card_path)  # before anything is built from it: a `_target_` can name any callable
    return card


def load_model(path: Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model its card describes (only registered classes) and load its weights (no pickle), in float32
    (int8 weights dequantized)."""
    path = Path(path)
    card = read_card(path)
    model = build(OmegaConf.create(card["model"]))
    state = {}
    for f in weights_files(path.with_suffix(".safetensors")):
        state.update(load_file(str(f)))
    model.load_state_dict(_restored(state))
    return model.to(device).eval(), card


def check_compatible(card: dict[str, Any], featurizer: dict[str, Any], max_mz: int, path: Path) -> None:
    """Raise ValueError when a saved model was trained with other features or another m/z range."""
    if card.get("featurizer") != featurizer:
        raise ValueError(f"{path}: trained with featurizer {card.get('featurizer')}, the config has {featurizer}; "
                         "pass the same featurizer options")
    trained_mz = card.get("data", {}).get("max_mz")
    if trained_mz is not None and int(trained_mz) != int(max_mz):
        raise ValueError(f"{path}: predicts m/z up to {trained_mz}, the config has data.max_mz={max_mz}")
