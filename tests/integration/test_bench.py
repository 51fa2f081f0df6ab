"""`python -m nextims.bench spectra` evaluates every model in the weights folder and prints the table;
`python -m nextims.bench speed` times prediction from a SMILES file to an MSP file."""

from __future__ import annotations

from pathlib import Path

import pytest

from nextims.bench import main as bench_main
from tests.conftest import TINY, train_tiny_weights


def test_bench_spectra_table(compose_cfg, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "weights"
    _, metrics = train_tiny_weights(compose_cfg, weights, "tiny_neims")
    capsys.readouterr()
    bench_main(["spectra", *[o for o in TINY if o != "tracking=none"], f"bench.weights={weights}",
                f"paths.cache_dir={tmp_path}/cache", "bench.timing_repeats=1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("recall@10 tiny_neims=") and " knn=" in lines[-1]
    reported = float(lines[-1].split()[1].split("=")[1])
    assert reported == pytest.approx(metrics["test/recall@10"], abs=1e-4)
    header = next(line for line in lines if "R@10 ±5Da" in line)
    assert "pred/s" in header


def test_bench_speed_table(compose_cfg, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "weights"
    train_tiny_weights(compose_cfg, weights, "student_massbank")
    capsys.readouterr()
    bench_main(["speed", *[o for o in TINY if o != "tracking=none"], f"bench.weights={weights}",
                "bench.speed.molecules=300", "bench.speed.models=[student,teacher]",
                "bench.speed.predict_overrides=['batch_size=128','workers=2']"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert any("workers=2, model threads=1, batch=128" in line for line in lines)
    assert lines[-1].startswith("speed student=")
    speeds = dict(item.split("=") for item in lines[-1].split()[1:])
    assert list(speeds) == ["student", "teacher", "featurize"] and speeds["teacher"] == "missing"
    assert int(speeds["student"]) > 0 and int(speeds["featurize"]) > 0
    rows = {line.split("|")[0].strip(): [c.strip() for c in line.split("|")[1:]] for line in lines if "|" in line}
    assert rows["name"] == ["molecules", "seconds", "mol/s", "ms/mol", "of featurize", "vs teacher"]
    assert rows["teacher"] == ["300", "missing"] and rows["featurize"][4] == "100.0%"
    assert rows["student"][0] == "300" and int(rows["student"][2]) == int(speeds["student"])


def test_bench_rejects_unknown_benchmark() -> None:
    with pytest.raises(SystemExit, match="usage"):
        bench_main(["nope"])
