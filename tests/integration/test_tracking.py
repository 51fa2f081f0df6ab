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


def test_sqlite_store_gets_params_metrics_artifacts(compose_cfg, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = compose_cfg(TRACKED + [f"tracking.uri={uri}", f"tracking.artifact_root={tmp_path}/artifacts"])
    train(cfg)
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("nextims").experiment_id])
    assert run.data.params["model.name"] == "neims" and run.data.params["data.name"] == "tiny"
    assert run.data.tags["phase"] == "baseline"
    assert 0 <= run.data.metrics["val/recall_at_10"] <= 1
    assert 1 in {m.step for m in client.get_metric_history(run.info.run_id, "val/recall_at_10")}  # epoch 1
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "dataset_report.json", "dataset_report.txt", "mirror"} <= names
    assert len(client.list_artifacts(run.info.run_id, "mirror")) == 2


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
        train(compose_cfg(TRACKED + [f"tracking.uri={base}"]))
        exp = api(base, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=nextims")["experiment"]
        (run,) = api(base, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]]})["runs"]
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert params["model.name"] == "neims" and params["trainer.max_epochs"] == "1"
        assert 0 <= metrics["val/recall_at_10"] <= 1
        listed = api(base, f"/api/2.0/mlflow/artifacts/list?run_id={run['info']['run_id']}")
        assert {"config.yaml", "dataset_report.json"} <= {f["path"] for f in listed["files"]}
    finally:
        server.terminate()
        server.wait(timeout=30)
