"""`python -m nextims.bench scale` on a small synthetic library: the shipped student's predictions written as MSP,
a first and a cached load, and one cut training epoch of each configured run in a process of its own."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nextims.bench import main as bench_main
from tests.conftest import DATA_DIR

SMALL = ["trainer.batch_size=16", "featurizer.fp_bits=512", "trainer.val_max_compounds=20"]


def quoted(overrides: list[str]) -> str:
    return "[" + ",".join(f'"{o}"' for o in overrides) + "]"


def test_bench_scale_measures_load_cache_epoch_and_memory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "scale"
    neims = ["phase=baseline", "model=neims", "model.hidden_dim=32", "model.num_blocks=1", *SMALL]
    teacher = ["phase=teacher", "model.hidden_dim=16", "model.num_layers=1", "model.joint_dim=32", "model.fp_hidden=16",
               "trainer.limit_train_batches=2", *SMALL]
    bench_main(["scale", "bench.scale.n=120", f"bench.scale.sources=[{DATA_DIR / 'transfer_tiny.smi'}]",
                f"bench.scale.dir={folder}", f"bench.scale.runs.neims={quoted(neims)}",
                f"bench.scale.runs.teacher={quoted(teacher)}"])
    lines = capsys.readouterr().out.strip().splitlines()
    (library,) = folder.glob("library-student-n120-seed0.msp")
    written = library.read_text().count("Num Peaks:")
    assert 100 <= written <= 120  # the transfer file's bad SMILES are refused by predict
    match = re.fullmatch(r"scale n=(\d+) load_s=([\d.]+) cached_load_s=([\d.]+) epoch_s_neims=([\d.]+) "
                         r"epoch_s_teacher=([\d.]+) peak_gb=([\d.]+)", lines[-1])
    assert match, lines[-1]
    assert int(match.group(1)) <= written and float(match.group(6)) > 0.1
    load = json.loads((folder / "stage-load.json").read_text())
    assert load["records"] == written and load["cached_load_s"] < load["load_s"]
    teacher_row = json.loads((folder / "stage-teacher.json").read_text())
    batches, per_epoch = map(int, teacher_row["batches"].split("/"))
    assert batches == 2 < per_epoch and teacher_row["bde_cache_s"] > 0
    assert float(match.group(5)) == pytest.approx(round(teacher_row["epoch_s"], 1), abs=0.051)
    assert list((folder / "cache").glob("spectra-*.h5")) and not list((folder / "checkpoints").glob("*/last.ckpt"))
