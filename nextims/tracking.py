"""Run tracking: MLflow (sqlite or server backend) or nothing."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from filelock import FileLock

from nextims import PROJECT_ROOT, __version__

MAX_PARAM_LENGTH = 6000
# the file in a sweep folder that names the sweep's MLflow parent run (created by the first trial)
SWEEP_MARKER = "mlflow_parent_run.json"

log = logging.getLogger(__name__)


def store_lock(uri: str) -> FileLock | contextlib.nullcontext:
    """A file lock beside a sqlite store (nothing for a server)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return contextlib.nullcontext()
    path = Path(uri[len(prefix):])
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path) + ".lock")


def metric_name(key: str) -> str:
    """An MLflow-safe metric name ('recall@10' becomes 'recall_at_10')."""
    return key.replace("@", "_at_")


def summary_name(key: str) -> str:
    """The name a final metric is logged under: validation metrics of the selected model go to `best/val/...`,
    so they never mix with the per-epoch `val/...` curves; the rest keep their names."""
    return f"best/{key}" if key.startswith("val/") else key


def git_commit(root: Path = PROJECT_ROOT) -> tuple[str, bool] | None:
    """(commit, has uncommitted changes) of the checkout holding `root`; None outside a git checkout."""
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()

        if Path(git("rev-parse", "--show-toplevel")).resolve() != root.resolve():
            return None  # an installed package inside some other repository
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit, dirty) if commit else None


def source_tags() -> dict[str, str]:
    """Tags naming the code a run ran: package version and, in a git checkout, the commit and whether it was dirty."""
    tags = {"nextims.version": __version__}
    found = git_commit()
    if found is not None:
        tags["mlflow.source.git.commit"] = found[0]
        tags["git_dirty"] = str(found[1]).lower()
    return tags


class NullTracker:
    """Tracks nothing (tracking=none)."""

    run_id: str | None = None
    mirror_plots = 0
    log_weights = False

    def __init__(self, **options: Any) -> None:
        """Takes (and ignores) the MLflow tracker's options, so a config may set them whatever the tracker."""

    def start(self, run_name: str, tags: dict[str, str], sweep_dir: str | None = None, sweep_name: str = "") -> None:
        """Start a run."""

    def log_params(self, params: dict[str, Any]) -> None:
        """Log parameters."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Log metrics."""

    def log_summary(self, metrics: dict[str, Any]) -> None:
        """Log a run's final metrics (validation ones as `best/val/...`)."""

    def log_artifact(self, path: str | os.PathLike, folder: str | None = None) -> None:
        """Log a local file as an artifact."""

    def log_dict(self, obj: Any, name: str) -> None:
        """Log a JSON/YAML-serialisable object as an artifact."""

    def log_text(self, text: str, name: str) -> None:
        """Log text as an artifact."""

    def log_figure(self, figure: Any, name: str) -> None:
        """Log a matplotlib figure as an artifact."""

    def end(self, status: str = "FINISHED") -> None:
        """End the run."""


class MlflowTracker(NullTracker):
    """Logs one MLflow run per training run; runs of one Hydra sweep nest under a parent run."""

    def __init__(self, uri: str, experiment: str = "nextims", artifact_root: str | None = None,
                 mirror_plots: int = 4, log_weights: bool = True) -> None:
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.mirror_plots = mirror_plots
        self.log_weights = log_weights
        self.logged: set[str] = set()  # metric names logged in the current run
        with store_lock(uri):  # parallel sweep trials must not create the sqlite tables twice
            self.client = MlflowClient(tracking_uri=uri)
            self.experiment_id = self._experiment_id(experiment, artifact_root)
        self.run_id: str | None = None

    def _experiment_id(self, name: str, artifact_root: str | None) -> str:
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        location = None
        if artifact_root and not self.uri.startswith(("http://", "https://")):
            location = Path(artifact_root).resolve().as_uri()
        return self.client.create_experiment(name, artifact_location=location)

    def _parent_run(self, sweep_dir: str, sweep_name: str) -> str:
        """The sweep's parent run id, created once per sweep folder (safe across parallel trials)."""
        Path(sweep_dir).mkdir(parents=True, exist_ok=True)
        marker = Path(sweep_dir) / SWEEP_MARKER
        with FileLock(str(marker) + ".lock"):
            if marker.exists():
                return json.loads(marker.read_text())["run_id"]
            name = "-".join(p for p in ("sweep", sweep_name, time.strftime("%Y%m%d-%H%M%S")) if p)
            run = self.client.create_run(self.experiment_id, run_name=name,
                                         tags={"kind": "sweep", "sweep": Path(sweep_dir).name, **source_tags()})
            marker.write_text(json.dumps({"run_id": run.info.run_id}))
            return run.info.run_id

    def start(self, run_name: str, tags: dict[str, str], sweep_dir: str | None = None, sweep_name: str = "") -> None:
        """Start a run (nested under the sweep's parent run when sweep_dir is given)."""
        tags = {k: str(v) for k, v in tags.items()}
        if sweep_dir:
            tags["mlflow.parentRunId"] = self._parent_run(sweep_dir, sweep_name)
        self.run_id = self.client.create_run(self.experiment_id, run_name=run_name, tags=tags).info.run_id
        self.logged = set()

    def log_params(self, params: dict[str, Any]) -> None:
        """Log parameters in batches (MLflow takes at most 100 per call)."""
        from mlflow.entities import Param

        items = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Log numeric metrics at `step` (0 when None; '/' is kept, MLflow groups by it)."""
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        items = [Metric(metric_name(k), float(v), ts, step or 0) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)]
        for i in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[i:i + 1000])
        self.logged.update(m.key for m in items)

    def log_summary(self, metrics: dict[str, Any]) -> None:
        """Log a run's final metrics; `val/...` goes to `best/val/...`, unless the training loop already logged it."""
        renamed = {summary_name(k): v for k, v in metrics.items()}
        self.log_metrics({k: v for k, v in renamed.items() if metric_name(k) not in self.logged})

    def log_dict(self, obj: Any, name: str) -> None:
        """Log an object as a JSON or YAML artifact."""
        self.client.log_dict(self.run_id, obj, name)

    def log_text(self, text: str, name: str) -> None:
        """Log text as an artifact."""
        self.client.log_text(self.run_id, text, name)

    def log_figure(self, figure: Any, name: str) -> None:
        """Log a matplotlib figure as an artifact."""
        self.client.log_figure(self.run_id, figure, name)

    def log_artifact(self, path: str | os.PathLike, folder: str | None = None) -> None:
        """Log a local file as an artifact."""
        self.client.log_artifact(self.run_id, str(path), folder)

    def end(self, status: str = "FINISHED") -> None:
        """End the run."""
        if self.run_id:
            self.client.set_terminated(self.run_id, status=status)
            self.run_id = None

    def end_sweep(self, sweep_dir: str, status: str, best: dict[str, Any] | None) -> str | None:
        """End the parent run of the sweep in `sweep_dir` (if a trial created one) with the study's best trial:
        `best_value` and `best_trial` as metrics, the best parameters as params. Returns the run id."""
        from mlflow.entities import Metric, Param, RunTag

        marker = Path(sweep_dir) / SWEEP_MARKER
        if not marker.exists():
            return None
        run_id = json.loads(marker.read_text())["run_id"]
        if best is not None:
            ts = int(time.time() * 1000)
            metrics = [Metric(metric_name(k), float(best[k]), ts, 0) for k in ("best_value", "best_trial",
                                                                                "complete_trials")]
            params = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in best["params"].items()]
            tags = [RunTag(k, str(best[k])) for k in ("study_name", "direction", "optimized_metric") if best.get(k)]
            self.client.log_batch(run_id, metrics=metrics, params=params[:100], tags=tags)
        self.client.set_terminated(run_id, status=status)
        return run_id


def end_sweep(config: Any, study: Any, status: str) -> None:
    """The Optuna sweeper's on_end hook: end the sweep's MLflow parent run with the study's best trial."""
    from nextims.config import build

    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    best = None
    if complete:
        trial = study.best_trial
        best = {"best_value": trial.value, "best_trial": trial.number, "complete_trials": len(complete),
                "params": trial.params, "study_name": study.study_name, "direction": study.direction.name.lower(),
                "optimized_metric": config.get("optimized_metric")}
    tracker = build(config.tracking)
    if isinstance(tracker, MlflowTracker):
        run_id = tracker.end_sweep(str(Path(config.hydra.sweep.dir).resolve()), status, best)
        if run_id:
            log.info(f"MLflow sweep run {run_id} ended {status}" + (f", best value {best['best_value']}" if best else ""))
