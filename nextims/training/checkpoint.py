"""Training checkpoints: written atomically, loaded without unpickling arbitrary objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nextims.io.atomic import atomic_path


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write a checkpoint atomically (temp file in the same folder, then rename; umask-honouring mode)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by save_checkpoint (weights_only: tensors and plain containers)."""
    return torch.load(path, map_location=map_location, weights_only=True)
