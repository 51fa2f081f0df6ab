"""Config helpers: OmegaConf resolvers, the one `_target_` builder, flattening for tracking."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from nextims import PROJECT_ROOT
from nextims import resources
from nextims.resources import WEIGHTS_DIR

CONF_DIR = resources.conf_dir()

# `${nextims.<name>:}` in the configs (conf/paths/default.yaml)
RESOLVERS = {
    "nextims.root": lambda: str(PROJECT_ROOT),
    "nextims.weights": lambda: str(WEIGHTS_DIR),
    "nextims.bundled_data": lambda: str(resources.bundled_data_dir()),
    "nextims.fetched_data": lambda: str(resources.fetched_data_dir()),
    "nextims.cwd": lambda: str(resources.work_dir()),
    "nextims.min": lambda *values: min(values),
}


def register_resolvers() -> None:
    """Register the `nextims.*` resolvers (idempotent)."""
    for name, resolver in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


register_resolvers()


def build(node: DictConfig | dict, **kwargs: Any) -> Any:
    """Instantiate the object a config node with a `_target_` describes (its `name` key is a label, not an argument)."""
    spec = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    spec.pop("name", None)
    return instantiate(spec, **kwargs)


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten a (resolved) config to {'a.b.c': value} for tracking as params."""
    if isinstance(cfg, (DictConfig, ListConfig)):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    out: dict[str, Any] = {}
    if isinstance(cfg, dict):
        for k, v in cfg.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(cfg, list) and any(isinstance(v, (dict, list)) for v in cfg):
        for i, v in enumerate(cfg):
            out.update(flatten(v, f"{prefix}{i}."))
    else:
        out[prefix[:-1]] = cfg
    return out


def to_yaml(cfg: DictConfig) -> str:
    """The resolved config as YAML text."""
    return OmegaConf.to_yaml(cfg, resolve=True)


def conf_dir() -> Path:
    """The folder of the Hydra config groups."""
    return CONF_DIR
