"""`python -m nextims.bench search` on a small predicted library: index build, our search open and within the mass
window (exact against a dense computation on a sample), and ms_entropy's search of the same library."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from nextims.bench import main as bench_main
from tests.conftest import DATA_DIR


def test_bench_search_reports_recall_speed_and_exactness(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ms_entropy")
    folder = tmp_path / "search"
    bench_main(["search", "data=tiny", f"paths.cache_dir={tmp_path / 'cache'}", "bench.search.n=120",
                f"bench.search.sources=[{DATA_DIR / 'transfer_tiny.smi'}]", f"bench.search.dir={folder}",
                "bench.search.exact_sample=60", "bench.search.ms_entropy_queries=4"])
    lines = capsys.readouterr().out.strip().splitlines()
    match = re.fullmatch(r"search library=(\d+) queries=(\d+) queries_per_s=(\d+) recall@10=([\d.]+) "
                         r"recall@10_mass5=([\d.]+)", lines[-1])
    assert match, lines[-1]
    ours = json.loads((folder / "stage-search-pooled.json").read_text())
    dense = json.loads((folder / "stage-search-dense.json").read_text())
    built = json.loads((folder / "stage-index.json").read_text())
    flash = json.loads((folder / "stage-flash.json").read_text())
    assert ours["identical"] == 1.0 and ours["identical ±5Da"] == 1.0 and ours["exact_sample"] == 60
    assert dense["identical"] == 1.0 and dense["identical ±5Da"] == 1.0 and dense["q/s product"] > 0
    # both engines are exact: the same hits for every query, open and within the window
    for window in ("open", "window"):
        assert (np.load(folder / f"hits-pooled-{window}.npy") == np.load(folder / f"hits-dense-{window}.npy")).all()
    assert ours["search"] == "nextims pooled" and dense["search"] == "nextims dense"
    assert int(match.group(1)) == ours["library"] > 100 and int(match.group(2)) == ours["queries"] > 4
    # each query's compound has its predicted spectrum in the library: the window never loses it where open finds it
    assert 0 < ours["R@10"] <= ours["R@10 ±5Da"] <= 1
    assert built["index_mb"] > 0 and built["build_s"] > 0 and ours["peak_gb"] > 0.1
    assert flash["queries"] == 4 and flash["library"] == ours["library"] and 0 <= flash["R@10"] <= 1
    assert any(line.lstrip().startswith("ms_entropy") for line in lines)
