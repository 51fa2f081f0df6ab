"""The Hydra Sweeper plugin class; Optuna is imported only when a sweep starts (Hydra scans plugins on every run)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from .config import NextimsOptunaSweeperConf  # noqa: F401  (registers the config)


class NextimsOptunaSweeper(Sweeper):
    """Runs `n_trials` Optuna trials (in total, over resumed sweeps) as Hydra jobs, `n_jobs` at a time."""

    def __init__(self, sampler: Any, direction: str, storage: Optional[str], study_name: Optional[str],
                 n_trials: int, n_jobs: int, max_failure_rate: float, params: Optional[Dict[str, str]],
                 keep_only_best: Optional[List[str]] = None, on_end: Optional[str] = None) -> None:
        from ._impl import OptunaSweep

        self.sweep_impl = OptunaSweep(sampler=sampler, direction=direction, storage=storage, study_name=study_name,
                                      n_trials=n_trials, n_jobs=n_jobs, max_failure_rate=max_failure_rate,
                                      params=dict(params or {}),
                                      keep_only_best=list(keep_only_best or []), on_end=on_end)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        """Build the launcher the trials run on."""
        self.sweep_impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        """Ask, launch and tell until the study holds n_trials complete trials; returns the best trial."""
        return self.sweep_impl.sweep(arguments)
