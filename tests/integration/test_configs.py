"""Every config group composes, and a typo fails with Hydra's own error."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from nextims.config import conf_dir
from nextims.config_schema import check_train_config

GROUPS = ["phase", "data", "model", "loss", "trainer", "tracking", "experiment", "hparams_search", "featurizer"]


def options(group: str) -> list[str]:
    """The options of a config group (its yaml files)."""
    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes(compose_cfg, group: str, option: str) -> None:
    overrides = [f"{group}={option}"]
    if group == "data" and option == "msp":
        overrides.append("data.path=some.msp")
    cfg = compose_cfg(overrides)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["phase"]["name"]
    assert resolved["data"]["max_mz"] > 0
    assert resolved["model"]["name"]
    check_train_config(cfg)  # every shipped option passes the schemas


def test_defaults_list_has_all_groups(compose_cfg) -> None:
    cfg = compose_cfg([])
    for key in ("phase", "data", "model", "loss", "trainer", "tracking", "featurizer", "paths"):
        assert key in cfg
    assert cfg.phase.name == "baseline" and cfg.model.name == "neims" and cfg.data.max_mz == 1000


def test_typo_in_override_fails_with_hydra_error(compose_cfg) -> None:
    with pytest.raises(ConfigCompositionException):
        compose_cfg(["model=neimz"])
    with pytest.raises(ConfigCompositionException):
        compose_cfg(["trainer.max_epoch=3"])
