"""An Optuna sweep through Hydra multirun: a persistent sqlite study, 2 trials in parallel (joblib), nested MLflow
runs under a parent run that ends FINISHED with the best value, only the best trial's checkpoint kept, and a
rerun that tops the study up to n_trials instead of adding more."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from nextims import PROJECT_ROOT
from tests.conftest import TINY


def sweep(tmp_path: Path, name: str, n_trials: int) -> subprocess.CompletedProcess:
    """Run the neims_optuna search on tiny data into tmp_path (study `tiny` in tmp_path/optuna.db)."""
    overrides = [o for o in TINY if not o.startswith(("tracking=", "model."))] + [
        "hparams_search=neims_optuna", f"hydra.sweeper.n_trials={n_trials}", "hydra.sweeper.n_jobs=2",
        f"hydra.sweeper.storage=sqlite:///{tmp_path}/optuna.db", "hydra.sweeper.study_name=tiny",
        f"hydra.sweep.dir={tmp_path}/{name}", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
        f"tracking.artifact_root={tmp_path}/artifacts", "tracking.mirror_plots=0", f"paths.cache_dir={tmp_path}/cache",
        "model.hidden_dim=choice(32, 64)", "model.num_blocks=range(1, 3)"]
    done = subprocess.run([sys.executable, "-m", "nextims.train", "-m", *overrides], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_optuna_sweep_two_parallel_trials(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    sweep(tmp_path, "first", n_trials=2)
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path}/optuna.db")
    trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 2 and all(0.0 <= t.value <= 1.0 for t in trials)
    assert all(t.params["model.num_blocks"] in (1, 2) and t.params["model.hidden_dim"] in (32, 64) for t in trials)
    results = yaml.safe_load((tmp_path / "first" / "optimization_results.yaml").read_text())
    assert results["best_value"] == study.best_value and results["best_trial"] == study.best_trial.number

    # only the best trial keeps a checkpoint, and of it only best.ckpt (trainer.keep_checkpoints=best)
    kept = sorted((tmp_path / "first").glob("*/checkpoints/*/*.ckpt"))
    assert [p.relative_to(tmp_path / "first").parts[0] for p in kept] == [str(study.best_trial.number)]
    assert [p.name for p in kept] == ["best.ckpt"]
    for trial in trials:  # every trial keeps its weights, card and metrics in its run folder
        assert {"model.safetensors", "model.json", "metrics.json"} <= {
            p.name for p in Path(trial.user_attrs["output_dir"]).iterdir()}

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("nextims").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("kind") == "sweep"]
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["best_value"] == pytest.approx(study.best_value)
    assert parent.data.metrics["best_trial"] == study.best_trial.number
    assert parent.data.params == {k: str(v) for k, v in study.best_trial.params.items()}
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children)
    assert len({r.info.run_name for r in children}) == 2
    assert {r.data.params["model.hidden_dim"] for r in children} <= {"32", "64"}

    # n_trials is the study's total: a rerun with the same n_trials runs nothing
    done = sweep(tmp_path, "again", n_trials=2)
    assert "running 0 to reach n_trials=2" in done.stdout + done.stderr
    assert len(optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path}/optuna.db").trials) == 2
