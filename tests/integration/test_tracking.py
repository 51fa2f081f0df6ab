"""MLflow tracking: a sqlite store, and a real `mlflow server` on 127.0.0.1 checked through its REST API."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from nextims import __version__
from nextims.tracking import git_commit
from nextims.train import train
from tests.conftest import TINY

TRACKED = [o for o in TINY if not o.startswith("tracking=")] + ["tracking=mlflow", "tracking.mirror_plots=2"]


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base: str, path: str, body: dict | None = None) -> dict:
    """Call the MLflow REST API (GET, or POST with a JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def check_params(params: dict[str, str]) -> None:
    """Only the run-defining groups of a spectrum phase are params, and no path is."""
    assert params["model.name"] == "neims" and params["data.name"] == "tiny" and params["trainer.max_epochs"] == "1"
    assert params["data.path"] == "massbank_tiny.jsonl"
    groups = {k.split(".")[0] for k in params}
    assert groups == {"seed", "phase", "data", "featurizer", "model", "loss", "trainer", "ensemble_size"}, groups
    assert "trainer.resume" not in params and not any(v.startswith("/") for v in params.values())


def test_sqlite_store_gets_params_metrics_artifacts(compose_cfg, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = compose_cfg(TRACKED + [f"tracking.uri={uri}", f"tracking.artifact_root={tmp_path}/artifacts"])
    metrics = train(cfg)
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("nextims").experiment_id])
    check_params(run.data.params)
    assert run.data.tags["phase"] == "baseline" and run.data.tags["nextims.version"] == __version__
    assert "test/recall_at_10" not in run.data.metrics  # training runs read validation only
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/recall_at_10")] == [1]  # epoch 1
    assert run.data.metrics["best_epoch"] == 1
    assert 0.1 < run.data.metrics["resources/peak_rss_gb"] < 64  # the peak resident memory, in GB
    assert run.data.metrics["best/val/recall_at_10"] == pytest.approx(metrics["val/recall@10"])
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "dataset_report.json", "dataset_report.txt", "mirror", "metrics.json", "model.json",
            "model.safetensors"} <= names
    assert len(client.list_artifacts(run.info.run_id, "mirror")) == 2

    train(cfg)  # the same command again: resumes the finished training, and is a run of its own name
    runs = client.search_runs([client.get_experiment_by_name("nextims").experiment_id])
    assert len({r.info.run_name for r in runs}) == 2
    assert all(r.data.metrics["best/val/recall_at_10"] == run.data.metrics["best/val/recall_at_10"] for r in runs)


def test_source_tags_outside_a_git_checkout(tmp_path: Path, monkeypatch) -> None:
    from nextims import tracking

    assert tracking.git_commit(tmp_path) is None  # not a git checkout: no commit, no error
    monkeypatch.setattr(tracking, "git_commit", lambda root=None: None)
    assert tracking.source_tags() == {"nextims.version": __version__}


@pytest.mark.slow
def test_mlflow_server_receives_run(compose_cfg, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path}/server.db", "--artifacts-destination", str(tmp_path / "art")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(base + "/health", timeout=2)
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    pytest.fail("mlflow server did not start")
                time.sleep(1)
        metrics = train(compose_cfg(TRACKED + [f"tracking.uri={base}"]))
        exp = api(base, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=nextims")["experiment"]
        (run,) = api(base, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]]})["runs"]
        run_id = run["info"]["run_id"]
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        logged = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        check_params(params)
        assert "test/recall_at_10" not in logged
        assert logged["best_epoch"] == 1
        assert logged["best/val/recall_at_10"] == pytest.approx(metrics["val/recall@10"])
        assert "best/train/loss" in logged
        history = api(base, f"/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=val/recall_at_10")
        assert [m["step"] for m in history["metrics"]] == [1]
        assert run["info"]["run_name"].startswith("baseline-neims-tiny-")
        assert tags["nextims.version"] == __version__ and tags["phase"] == "baseline"
        commit = git_commit()
        assert commit is None or tags["mlflow.source.git.commit"] == commit[0]
        listed = api(base, f"/api/2.0/mlflow/artifacts/list?run_id={run_id}")
        assert {"config.yaml", "dataset_report.json", "metrics.json", "model.json", "model.safetensors"} <= {
            f["path"] for f in listed["files"]}
    finally:
        server.terminate()
        server.wait(timeout=30)
