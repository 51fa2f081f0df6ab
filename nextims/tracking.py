"""Run tracking: MLflow (sqlite or server backend) or nothing."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from filelock import FileLock

MAX_PARAM_LENGTH = 6000


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


class NullTracker:
    """Tracks nothing (tracking=none)."""

    run_id: str | None = None
    mirror_plots = 0

    def start(self, run_name: str, tags: dict[str, str], sweep_dir: str | None = None, sweep_name: str = "") -> None:
        """Start a run."""

    def log_params(self, params: dict[str, Any]) -> None:
        """Log parameters."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Log metrics."""

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
                 mirror_plots: int = 4) -> None:
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.mirror_plots = mirror_plots
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
        marker = Path(sweep_dir) / "mlflow_parent_run.json"
        with FileLock(str(marker) + ".lock"):
            if marker.exists():
                return json.loads(marker.read_text())["run_id"]
            run = self.client.create_run(self.experiment_id, run_name=f"sweep {sweep_name}".strip(),
                                         tags={"sweep_dir": sweep_dir, "kind": "sweep"})
            marker.write_text(json.dumps({"run_id": run.info.run_id}))
            return run.info.run_id

    def start(self, run_name: str, tags: dict[str, str], sweep_dir: str | None = None, sweep_name: str = "") -> None:
        """Start a run (nested under the sweep's parent run when sweep_dir is given)."""
        tags = {k: str(v) for k, v in tags.items()}
        if sweep_dir:
            tags["mlflow.parentRunId"] = self._parent_run(sweep_dir, sweep_name)
        self.run_id = self.client.create_run(self.experiment_id, run_name=run_name, tags=tags).info.run_id

    def log_params(self, params: dict[str, Any]) -> None:
        """Log parameters in batches (MLflow takes at most 100 per call)."""
        from mlflow.entities import Param

        items = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Log numeric metrics ('/' is kept, MLflow groups by it)."""
        from mlflow.entities import Metric
        import time

        ts = int(time.time() * 1000)
        items = [Metric(metric_name(k), float(v), ts, step or 0) for k, v in metrics.items()
                 if isinstance(v, (int, float))]
        for i in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[i:i + 1000])

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
