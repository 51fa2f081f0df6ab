"""The one entry point: `python -m nextims.train phase=<name> [overrides]` (Hydra)."""

from __future__ import annotations

from typing import Any

import hydra
from hydra.utils import get_method
from omegaconf import DictConfig

from nextims.config import register_resolvers
from nextims.training import distributed

register_resolvers()


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run the configured phase and return its metrics (under torchrun, every rank runs it; rank 0 writes)."""
    distributed.init_from_env()
    return get_method(cfg.phase.run)(cfg)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry; returns the sweep objective (`optimized_metric`) when the phase reports it."""
    metrics = train(cfg)
    value = metrics.get(cfg.get("optimized_metric")) if metrics else None
    return None if value is None else float(value)


if __name__ == "__main__":
    main()
