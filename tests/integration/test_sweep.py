"""A 4-trial Optuna sweep through Hydra multirun: a persistent sqlite study and nested MLflow runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from nextims import PROJECT_ROOT
from tests.conftest import TINY


@pytest.mark.slow
def test_optuna_sweep_four_trials(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    optuna_db, mlflow_db = f"sqlite:///{tmp_path}/optuna.db", f"sqlite:///{tmp_path}/mlflow.db"
    overrides = [o for o in TINY if not o.startswith(("tracking=", "model."))] + [
        "hparams_search=neims_optuna", "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2",
        f"hydra.sweeper.storage={optuna_db}", "hydra.sweeper.study_name=tiny", f"hydra.sweep.dir={tmp_path}/multirun",
        f"tracking.uri={mlflow_db}", f"tracking.artifact_root={tmp_path}/artifacts", "tracking.mirror_plots=0",
        f"paths.cache_dir={tmp_path}/cache", f"paths.checkpoint_dir={tmp_path}/checkpoints"]
    done = subprocess.run([sys.executable, "-m", "nextims.train", "-m", *overrides], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    study = optuna.load_study(study_name="tiny", storage=optuna_db)
    trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 4
    assert all(0.0 <= t.value <= 1.0 for t in trials)
    client = MlflowClient(mlflow_db)
    exp = client.get_experiment_by_name("nextims")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("kind") == "sweep"]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == 4
    assert {r.data.params["model.hidden_dim"] for r in children} <= {"512", "1024", "2048"}
