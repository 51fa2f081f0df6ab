"""`python -m nextims.bench spectra` evaluates every model in the weights folder and prints the table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nextims.bench import main as bench_main
from nextims.train import train
from tests.conftest import TINY


def test_bench_spectra_table(compose_cfg, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = compose_cfg(TINY)
    metrics = train(cfg)
    weights = tmp_path / "weights"
    weights.mkdir()
    for suffix in (".safetensors", ".json"):
        shutil.copy(Path(cfg.paths.output_dir) / f"model{suffix}", weights / f"tiny_neims{suffix}")
    capsys.readouterr()
    bench_main(["spectra", *[o for o in TINY if o != "tracking=none"], f"bench.weights={weights}",
                f"paths.cache_dir={tmp_path}/cache", "bench.timing_repeats=1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("recall@10 tiny_neims=") and " knn=" in lines[-1]
    reported = float(lines[-1].split()[1].split("=")[1])
    assert reported == pytest.approx(metrics["test/recall@10"], abs=1e-4)
    header = next(line for line in lines if "R@10 ±5Da" in line)
    assert "pred/s" in header


def test_bench_rejects_unknown_benchmark() -> None:
    with pytest.raises(SystemExit, match="usage"):
        bench_main(["nope"])
