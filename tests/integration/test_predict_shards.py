"""Library-scale prediction in shards: `python -m nextims.predict -m ... shards=2 'shard=range(2)'
hydra/launcher=joblib` with the shipped student, merged by `python -m nextims.search.merge`, equals a single run's
index (the same rows, in the same order, bit for bit) and errors file; a bad shard, missing or incomplete shards and
the SLURM launcher's config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from hydra import compose, initialize

from nextims import PROJECT_ROOT
from nextims.errors import InputError
from nextims.predict import CONFIG_NAME, compose_predict, run_predict
from nextims.search.index import PEAK_ARRAYS, TEXT_COLUMNS, build_index, open_index
from nextims.search.merge import compose_merge, run_merge
from nextims.spectrum import Spectrum

# 9 input positions, 2 of them failing (one in each shard at batch_size=2: shard 0 takes positions 1-6)
SMI = """CCO ethanol
C1CC(( broken
c1ccccc1O phenol
CC(C)=O acetone
CCCl chloroethane
CCN ethylamine
c1ccccc1C toluene
C[Sn](C)(C)C tetramethyltin
CC(=O)Oc1ccccc1C(=O)O aspirin
"""
COMMON = ["model=student", "workers=0", "batch_size=2", "progress=false", "device=cpu"]


def cli(module: str, *overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m <module> <overrides>` run in cwd, as a user would (this checkout's nextims first on the path)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", module, *overrides], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def index_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of an index file."""
    with h5py.File(path, "r") as f:
        return {name: f[name].asstr()[()] if name in TEXT_COLUMNS else f[name][()] for name in f}


def test_two_shards_on_joblib_merge_into_the_single_run_index(tmp_path: Path) -> None:
    (tmp_path / "mols.smi").write_text(SMI)
    single = run_predict(compose_predict(["input=" + str(tmp_path / "mols.smi"), f"output={tmp_path / 'single.h5'}",
                                          *COMMON]))
    assert single.kept == 7 and dict(single.dropped) == {"bad_smiles": 1, "unsupported_element": 1}
    done = cli("nextims.predict", "-m", "input=mols.smi", "output=lib.h5", *COMMON, "shards=2", "shard=range(2)",
               "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "wrote 5 spectra to lib.shard-00-of-02.h5 (shard 0 of 2: input molecules 1-6 of 9)" in done.stdout
    assert "wrote 2 spectra to lib.shard-01-of-02.h5 (shard 1 of 2: input molecules 7-9 of 9)" in done.stdout
    # each shard wrote where output= says (the folder the command ran in); the sweep folder keeps the record
    assert [len(open_index(tmp_path / f"lib.shard-0{i}-of-02.h5")) for i in range(2)] == [5, 2]
    assert len(list((tmp_path / "multirun" / "predict").glob("*/*/multirun.yaml"))) == 1
    merged = cli("nextims.search.merge", "output=lib.h5", "shards=2", cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr[-3000:]
    assert "into lib.h5: 7 spectra; 2 failed molecules listed in lib.h5.errors.tsv" in merged.stdout
    ours, theirs = open_index(tmp_path / "lib.h5"), open_index(tmp_path / "single.h5")
    assert len(ours) == len(theirs) == 7 and ours.max_mz == theirs.max_mz
    for name in ("name", "inchikey", "smiles"):
        assert ours.column(name).tolist() == theirs.column(name).tolist()
    assert ours.column("name").tolist() == ["ethanol", "phenol", "acetone", "chloroethane", "ethylamine", "toluene",
                                            "aspirin"]
    # shards cut the input at batch boundaries, so the model saw the same batches: the arrays are equal exactly
    a, b = index_arrays(tmp_path / "lib.h5"), index_arrays(tmp_path / "single.h5")
    assert set(a) == set(b) == {"indptr", *PEAK_ARRAYS, "mass", *TEXT_COLUMNS}
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert (tmp_path / "lib.h5.errors.tsv").read_bytes() == (tmp_path / "single.h5.errors.tsv").read_bytes()


def test_a_shard_outside_its_range_is_refused_naming_it(tmp_path: Path) -> None:
    for shard, shards, message in ((2, 2, r"shard=2 shards=2: shard must be an integer in 0\.\.1"),
                                   (-1, 3, r"shard=-1 shards=3: shard must be an integer in 0\.\.2"),
                                   (0, 0, r"shards=0: give the number of input shards, an integer >= 1")):
        with pytest.raises(InputError, match=message):
            run_predict(compose_predict(["input=CCO", f"output={tmp_path / 'lib.h5'}", f"shard={shard}",
                                         f"shards={shards}", *COMMON]))
    done = cli("nextims.predict", "input=CCO", "output=lib.h5", "shard=2", "shards=2", *COMMON, cwd=tmp_path)
    assert done.returncode == 1 and done.stderr.strip().splitlines() == [
        "nextims.predict: shard=2 shards=2: shard must be an integer in 0..1 (shards are numbered from 0; run them "
        "all with -m 'shard=range(2)')"]
    assert not list(tmp_path.glob("*.h5"))


def test_merge_refuses_missing_and_incomplete_shards_naming_them(tmp_path: Path) -> None:
    spectrum = Spectrum(np.array([15.0, 31.0]), np.array([20.0, 100.0]), {"id": "a", "name": "a", "smiles": "CO"})
    output = tmp_path / "lib.h5"
    for shard in range(3):
        build_index(tmp_path / f"lib.shard-0{shard}-of-03.h5", [spectrum], source="predicted:test")
    (tmp_path / "lib.shard-01-of-03.h5").unlink()
    with h5py.File(tmp_path / "lib.shard-02-of-03.h5", "a") as f:
        f.attrs["complete"] = False  # as a writer that stopped leaves it
    with pytest.raises(InputError) as err:
        run_merge(compose_merge([f"output={output}", "shards=3"]))
    message = str(err.value)
    assert message.startswith("cannot merge, 2 of 3 shards unusable: shard 1: ")
    assert "lib.shard-01-of-03.h5: no such spectrum index file" in message
    assert "shard 2: " in message and "lib.shard-02-of-03.h5: spectrum index written incompletely" in message
    assert "shards=3 'shard=1,2') and merge again" in message and not output.exists()
    with pytest.raises(InputError, match="not neither"):
        run_merge(compose_merge([f"output={output}"]))
    with pytest.raises(InputError, match="shards=1: give the number of shards"):
        run_merge(compose_merge([f"output={output}", "shards=1"]))
    assert run_merge(compose_merge([f"output={output}", f"inputs=[{tmp_path / 'lib.shard-00-of-03.h5'}]"])) == 1


def test_the_slurm_launcher_config_runs_one_job_per_shard_with_its_resources() -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    with initialize(version_base="1.3", config_path=None):
        cfg = compose(CONFIG_NAME, overrides=["input=mols.smi", "output=lib.h5", "shards=4",
                                              "hydra/launcher=predict_slurm", "hydra.launcher.partition=cpu"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.timeout_min, launcher.cpus_per_task, launcher.mem_gb, launcher.nodes, launcher.tasks_per_node,
            launcher.partition, launcher.name) == (240, 8, 16, 1, 1, "cpu", "nextims-predict")
    assert cfg.hydra.sweep.dir.startswith("multirun/predict/") and launcher.submitit_folder.startswith("multirun/")
