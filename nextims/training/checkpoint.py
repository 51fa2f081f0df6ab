"""Training checkpoints: written atomically, loaded without unpickling arbitrary objects."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

from nextims.errors import InputError
from nextims.io.atomic import atomic_path

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write a checkpoint atomically (temp file in the same folder, then rename; umask-honouring mode)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by save_checkpoint (weights_only: tensors and plain containers); a damaged or
    foreign file fails with an InputError naming it and the way out."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError... for a damaged file
        if isinstance(err, pickle.UnpicklingError) and "Weights only load failed" in str(err):
            raise InputError(f"checkpoint {path} holds objects other than tensors and plain containers (refused by "
                             "torch.load(weights_only=True)), so NExtIMS did not write it: delete it, or run with "
                             "trainer.resume=false to train from the start") from None
        reason = _ANSI.sub("", str(err).splitlines()[0]) if str(err) else type(err).__name__
        raise InputError(f"checkpoint {path} cannot be read ({reason}): delete it, or run with trainer.resume=false "
                         "to train from the start") from None
