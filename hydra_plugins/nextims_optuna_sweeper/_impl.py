"""The sweep itself: Hydra sweep syntax to Optuna distributions, and the ask / launch / tell loop."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path, PurePath
from typing import Any, Sequence

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep, Transformer
from hydra.core.plugins import Plugins
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger(__name__)


def distribution(override: Override) -> BaseDistribution | str:
    """The Optuna distribution of a sweep override, or the override's value (as text) when it is not a sweep.

    choice(a, b) -> categorical; range(start, stop[, step]) of integers -> integers start..last value
    (stop excluded, as in Hydra), other ranges -> categorical over their values; interval(low, high) -> floats,
    with tag(log, ...) log-uniform and tag(int, ...) integers.
    """
    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    value = override.value()
    if override.is_choice_sweep():
        return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if override.is_range_sweep():
        assert isinstance(value, RangeSweep)
        values = list(override.sweep_iterator(transformer=Transformer.encode))
        if not values:
            raise ValueError(f"{override.input_line}: the range is empty")
        ints = all(isinstance(v, int) for v in (value.start, value.stop, value.step))
        if ints and not value.shuffle and value.step > 0:
            return IntDistribution(values[0], values[-1], step=int(value.step))
        return CategoricalDistribution(values)
    if override.is_interval_sweep():
        assert isinstance(value, IntervalSweep)
        use_log = "log" in value.tags
        if "int" in value.tags:
            return IntDistribution(int(value.start), int(value.end), log=use_log)
        return FloatDistribution(float(value.start), float(value.end), log=use_log)
    raise NotImplementedError(f"{override.input_line} is not supported by the Optuna sweeper")


def search_space(arguments: Sequence[str]) -> tuple[dict[str, BaseDistribution], list[str]]:
    """(parameter -> distribution, fixed overrides passed to every trial) from override strings (later ones win)."""
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(list(arguments)):
        key = override.get_key_element()
        if override.is_delete() or not override.is_sweep_override():
            space.pop(key, None)
            fixed[key] = override.input_line
        else:
            fixed.pop(key, None)
            space[key] = distribution(override)
    return space, list(fixed.values())


def trial_overrides(trial: FrozenTrial | optuna.Trial, fixed: Sequence[str]) -> tuple[str, ...]:
    """The Hydra overrides of one trial: its sampled parameters, then the fixed overrides."""
    return tuple(f"{name}={value}" for name, value in trial.params.items()) + tuple(fixed)


def objective_value(ret: Any) -> float:
    """The float a job returned; raises the job's own error when it failed, ValueError when it returned none."""
    value = ret.return_value  # re-raises the job's exception
    if value is None:
        raise ValueError("the job returned no objective value (is `optimized_metric` among the phase's metrics?)")
    return float(value)


class OptunaSweep:
    """Tops an Optuna study up to n_trials complete trials, asking and launching n_jobs trials at a time."""

    def __init__(self, sampler: Any, direction: str, storage: str | None, study_name: str | None, n_trials: int,
                 n_jobs: int, max_failure_rate: float, params: dict[str, str], keep_only_best: Sequence[str] = (),
                 on_end: str | None = None) -> None:
        if direction not in ("minimize", "maximize"):
            raise ValueError(f"hydra.sweeper.direction must be minimize or maximize, got {direction!r}")
        if not 0.0 <= max_failure_rate <= 1.0:
            raise ValueError(f"hydra.sweeper.max_failure_rate must lie in [0, 1], got {max_failure_rate}")
        if n_jobs < 1 or n_trials < 0:
            raise ValueError("hydra.sweeper.n_jobs must be >= 1 and n_trials >= 0")
        self.sampler, self.direction, self.storage, self.study_name = sampler, direction, storage, study_name
        self.n_trials, self.n_jobs, self.max_failure_rate = n_trials, n_jobs, max_failure_rate
        for pattern in keep_only_best:
            if PurePath(pattern).is_absolute() or ".." in PurePath(pattern).parts or not pattern.strip("./"):
                raise ValueError(f"hydra.sweeper.keep_only_best: {pattern!r} is not a path inside a trial's folder")
        self.params, self.keep_only_best, self.on_end = params, list(keep_only_best), on_end
        self.config: DictConfig | None = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        """Build the launcher the trials run on."""
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)

    def study(self) -> optuna.Study:
        """The study: created, or loaded when storage already holds one of that name."""
        if self.storage and self.storage.startswith("sqlite:///"):
            Path(self.storage[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        return optuna.create_study(study_name=self.study_name, storage=self.storage, sampler=self.sampler,
                                   direction=self.direction, load_if_exists=True)

    def sweep(self, arguments: list[str]) -> FrozenTrial | None:
        """Run the missing trials; write optimization_results.yaml to the sweep folder; returns the best trial."""
        assert self.config is not None and self.launcher is not None, "setup() first"
        space, fixed = search_space([f"{k}={v}" for k, v in self.params.items()] + list(arguments))
        study = self.study()
        complete = sum(t.state == TrialState.COMPLETE for t in study.trials)
        to_run = max(0, self.n_trials - complete)
        log.info(f"Study {study.study_name} ({self.storage or 'in memory'}): {complete} complete trials, "
                 f"running {to_run} to reach n_trials={self.n_trials}, {self.n_jobs} at a time")
        status = "FAILED"
        try:
            while to_run > 0:
                trials = [study.ask(space) for _ in range(min(self.n_jobs, to_run))]
                self.run_batch(study, trials, fixed)
                to_run -= len(trials)
            status = "FINISHED"
        finally:
            self.end(study, status)
        return self.report(study)

    def run_batch(self, study: optuna.Study, trials: list[optuna.Trial], fixed: list[str]) -> None:
        """Launch one batch of trials and tell the study their values (a failed job is a FAIL trial)."""
        returns = self.launcher.launch([trial_overrides(t, fixed) for t in trials], initial_job_idx=trials[0].number)
        failed = []
        for trial, ret in zip(trials, returns):
            folder = OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir") if ret.hydra_cfg else None
            if folder:
                trial.set_user_attr("output_dir", str(folder))
            try:
                study.tell(trial, objective_value(ret))
            except Exception as error:  # the job's own failure, or no / a non-numeric objective
                study.tell(trial, state=TrialState.FAIL)
                log.warning(f"Trial {trial.number} failed: {error}")
                failed.append(ret)
        self.prune(study)
        if failed and len(failed) / len(returns) > self.max_failure_rate:
            log.error(f"{len(failed)} of {len(returns)} trials failed (max_failure_rate={self.max_failure_rate})")
            objective_value(failed[0])  # raises the first failure with its traceback

    def prune(self, study: optuna.Study) -> None:
        """Delete the keep_only_best paths from the run folders of every finished trial but the best one."""
        if not self.keep_only_best:
            return
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        best = study.best_trial.number if complete else None
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED))
        for trial in finished:
            folder = trial.user_attrs.get("output_dir")
            if trial.number == best or not folder:
                continue
            for pattern in self.keep_only_best:
                for path in sorted(Path(folder).glob(pattern)):
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
                    log.info(f"removed {path} (trial {trial.number} is not the best)")

    def report(self, study: optuna.Study) -> FrozenTrial | None:
        """Log the best trial and save it to <sweep dir>/optimization_results.yaml."""
        assert self.config is not None
        complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
        if not complete:
            log.warning("No complete trial in the study")
            return None
        best = study.best_trial
        log.info(f"Best trial {best.number}: value {best.value}, params {best.params}")
        out = Path(self.config.hydra.sweep.dir)
        out.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create({"name": "optuna", "study_name": study.study_name, "best_trial": best.number,
                                         "best_value": best.value, "best_params": best.params,
                                         "complete_trials": len(complete)}),
                       out / "optimization_results.yaml")
        return best

    def end(self, study: optuna.Study, status: str) -> None:
        """Call the on_end hook (e.g. to close the sweep's tracking run); its own errors are logged, not raised."""
        if not self.on_end:
            return
        try:
            get_method(self.on_end)(self.config, study, status)
        except Exception as error:  # a tracking server being down must not hide the sweep's own result
            log.warning(f"hydra.sweeper.on_end ({self.on_end}) failed: {error}")
