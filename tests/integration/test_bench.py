"""`python -m nextims.bench spectra` evaluates every model in the weights folder and prints the table;
`python -m nextims.bench speed` times prediction from a SMILES file to an MSP file."""

from __future__ import annotations

from pathlib import Path

import pytest

from nextims.bench import main as bench_main
from tests.conftest import TINY, train_tiny_weights


def test_bench_spectra_table(compose_cfg, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "weights"
    _, metrics = train_tiny_weights(compose_cfg, weights, "tiny_neims", TINY + ["evaluate_test=true"])
    capsys.readouterr()
    bench_main(["spectra", *[o for o in TINY if o != "tracking=none"], f"bench.weights={weights}",
                f"paths.cache_dir={tmp_path}/cache", "bench.timing_repeats=1", "bench.bootstrap.resamples=200",
                "bench.bootstrap.reference=tiny_neims"])
    lines = capsys.readouterr().out.strip().splitlines()
    summary = next(line for line in lines if line.startswith("recall@10 tiny_neims="))
    assert summary.startswith("recall@10 tiny_neims=") and " knn=" in summary
    recall = {name: float(v) for name, v in (item.split("=") for item in summary.split()[1:])}
    assert recall["tiny_neims"] == pytest.approx(metrics["test/recall@10"], abs=1e-4)
    header = next(line for line in lines if "R@10 ±5Da" in line)
    assert "pred/s" in header
    # the last two lines: recall@10 of every model on all queries, then on the novel subset with its size
    assert lines[-2] == summary and lines[-1].startswith("novel recall@10 tiny_neims=")
    novel = dict(item.split("=") for item in lines[-1].split()[2:])
    assert int(novel["queries"]) >= int(novel["compounds"]) >= 0 and "knn" in novel
    assert any(line.startswith("novel subset: test compounds whose most similar training compound") for line in lines)
    assert any(line.strip().startswith("halogenated: all (") for line in lines)
    assert any(line.strip().startswith("Cl or Br: all (") for line in lines)
    assert "per class, cosine (all queries | novel queries):" in lines
    # the intervals: each model's recall inside its own interval; knn's error ratio from the table's recalls
    after = lines[next(i for i, line in enumerate(lines) if line.startswith("recall@10 with its 95% interval")):]
    assert after[0].startswith("recall@10 with its 95% interval (200 bootstrap resamples")
    for name in ("tiny_neims", "knn"):
        value, low, high = interval(next(line for line in after if line.strip().startswith(f"{name}: ")))
        assert low <= value <= high and value == pytest.approx(recall[name], abs=1e-3)
    assert any(line.startswith("top-10 error (1 - recall@10) relative to tiny_neims's") for line in after)
    ratio = interval(next(line for line in after if line.strip().startswith("knn: ") and line.endswith("x")))
    if recall["tiny_neims"] < 1:
        assert ratio[0] == pytest.approx((1 - recall["knn"]) / (1 - recall["tiny_neims"]), abs=0.01)


def interval(line: str) -> tuple[float, float, float]:
    """(value, low, high) of a `name: value (low-high)` line."""
    value, bounds = line.split(": ")[1].rstrip("x").split(" (")
    low, high = bounds.rstrip(")").split("-")
    return float(value), float(low), float(high)


def test_bench_names_a_missing_reference(compose_cfg, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "weights"
    train_tiny_weights(compose_cfg, weights, "tiny_neims")
    capsys.readouterr()
    bench_main(["spectra", *[o for o in TINY if o != "tracking=none"], f"bench.weights={weights}",
                f"paths.cache_dir={tmp_path}/cache", "bench.timing_repeats=1", "bench.bootstrap.resamples=50"])
    out = capsys.readouterr().out
    assert "no top-10 error ratios: the reference model 'neims_massbank' is not in the table" in out


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
