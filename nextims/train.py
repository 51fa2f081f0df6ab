"""The one entry point: `python -m nextims.train phase=<name> [overrides]` (Hydra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf

from nextims.config import conf_dir, register_resolvers
from nextims.config_schema import check_train_config
from nextims.errors import InputError
from nextims.training import distributed

register_resolvers()


def input_files(cfg: DictConfig) -> dict[str, str]:
    """The input files the configured phase reads first, by config key: `bde_data.path` for phase=bde, else
    `data.path` (and the split lists when data.split.method=lists, the transfer set's files for the student)."""
    if cfg.phase.name == "bde":
        keys = ["bde_data.path"]
    else:
        keys = ["data.path"]
        if OmegaConf.select(cfg, "data.split.method") == "lists":
            keys += [k for k in ("data.split.test_list", "data.split.val_list") if OmegaConf.select(cfg, k)]
        keys += [f"transfer.sources.{i}" for i in range(len(OmegaConf.select(cfg, "transfer.sources") or []))]
    return {key: str(OmegaConf.select(cfg, key)) for key in keys}


def check_inputs(cfg: DictConfig) -> None:
    """End the command with one line naming a setting of the wrong type or out of range, or each configured input
    file that does not exist."""
    try:
        check_train_config(cfg)
    except InputError as err:
        raise SystemExit(f"nextims.train: {err}") from None
    missing = [f"{key}={path}" for key, path in input_files(cfg).items() if not Path(path).exists()]
    if missing:
        raise SystemExit(f"nextims.train: no such file: {'; '.join(missing)}")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run the configured phase and return its metrics (under torchrun, every rank runs it; rank 0 writes)."""
    distributed.init_from_env()
    return get_method(cfg.phase.run)(cfg)


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry; returns the sweep objective (`optimized_metric`) when the phase reports it."""
    check_inputs(cfg)
    try:
        metrics = train(cfg)
    except InputError as err:  # an input found unusable on the way (e.g. a damaged checkpoint)
        raise SystemExit(f"nextims.train: {err}") from None
    value = metrics.get(cfg.get("optimized_metric")) if metrics else None
    return None if value is None else float(value)


if __name__ == "__main__":
    main()
