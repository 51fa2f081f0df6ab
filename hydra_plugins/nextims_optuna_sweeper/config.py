"""The sweeper's config, registered as `hydra/sweeper: nextims_optuna`."""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class SamplerConf:
    """An Optuna sampler, built by Hydra from its `_target_` (TPE by default)."""

    _target_: str = "optuna.samplers.TPESampler"
    seed: Optional[int] = None


@dataclass
class NextimsOptunaSweeperConf:
    """Study, search space and batching of an Optuna sweep (keys as in Hydra's official Optuna sweeper)."""

    _target_: str = "hydra_plugins.nextims_optuna_sweeper.optuna_sweeper.NextimsOptunaSweeper"
    sampler: Any = field(default_factory=SamplerConf)
    # minimize | maximize
    direction: str = "minimize"
    # an RDB URL (sqlite:///optuna.db, postgresql://...) keeps the study across sweeps; null = in memory
    storage: Optional[str] = None
    study_name: Optional[str] = None
    # the study is topped up to this many COMPLETE trials (a resumed study runs only the missing ones)
    n_trials: int = 20
    # trials asked and launched together (set the launcher's n_jobs to match)
    n_jobs: int = 2
    # the sweep stops with the error of a batch in which more than this fraction of trials failed (0: any)
    max_failure_rate: float = 0.0
    # parameter -> Hydra sweep syntax: choice(...), range(...), interval(...), tag(log|int, interval(...))
    params: Dict[str, str] = field(default_factory=dict)
    # paths (globs) inside each trial's run folder that only the study's best trial keeps: after every batch
    # they are deleted from the other finished trials (e.g. [checkpoints])
    keep_only_best: List[str] = field(default_factory=list)
    # called as fn(config, study, status) when the sweep ends (status FINISHED or FAILED); null = nothing
    on_end: Optional[str] = "nextims.tracking.end_sweep"


ConfigStore.instance().store(group="hydra/sweeper", name="nextims_optuna", node=NextimsOptunaSweeperConf,
                             provider="nextims")
