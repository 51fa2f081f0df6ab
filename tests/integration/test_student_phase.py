"""`phase=student` end to end on tiny data: soft labels from a teacher, cached and keyed, then distillation."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from nextims import PROJECT_ROOT
from nextims.train import train
from tests.conftest import DATA_DIR, TINY, kill_at_marker
from tests.integration.test_teacher_phase import TINY_TEACHER

TRANSFER_TINY = DATA_DIR / "transfer_tiny.smi"
TINY_STUDENT = [o for o in TINY if not o.startswith("model.")] + [
    "phase=student", "model.hidden_dim=32", "model.num_blocks=1", "model.num_experts=4", "model.top_k=2",
    "model.site_dim=16", f"transfer.sources=[{TRANSFER_TINY}]", "transfer.shard_size=50", "transfer.per_epoch=64",
    "transfer.workers=0", "transfer.progress=false"]


@pytest.fixture
def teacher_dir(compose_cfg, tmp_path: Path) -> Path:
    """A weights folder holding a tiny teacher (trained without the BDE task, which the student does not need)."""
    weights = tmp_path / "weights"
    train(compose_cfg(TINY_TEACHER + ["phase.bde_targets=false", "export_name=teacher_tiny", "ship=true",
                                      f"paths.weights_dir={weights}"]))
    return weights


def test_student_distils_from_cached_soft_labels(compose_cfg, teacher_dir: Path, capsys) -> None:
    overrides = TINY_STUDENT + ["teacher.checkpoint=teacher_tiny", f"paths.weights_dir={teacher_dir}"]
    cfg = compose_cfg(overrides)
    metrics = train(cfg)
    assert 0.0 <= metrics["val/recall@10"] <= 1.0
    (cache,) = Path(cfg.paths.cache_dir).glob("soft_labels-*.h5")
    with h5py.File(cache) as f:
        labels = f["intensities"][:]
        assert f.attrs["complete"] and labels.shape[1] == int(cfg.data.max_mz) + 1
        assert np.isfinite(labels).all() and (labels.sum(1) > 0).all()
    from nextims.training.checkpoint import load_checkpoint

    (last,) = Path(cfg.paths.checkpoint_dir).glob("student-student_moe-*/last.ckpt")
    first = load_checkpoint(last)["loop"]["history"][0]
    assert first["train/soft"] > 0 and first["train/balance"] >= 1.0 - 1e-6
    capsys.readouterr()

    train(compose_cfg(overrides))
    assert "reusing soft labels" in capsys.readouterr().out

    train(compose_cfg(TINY_TEACHER + ["phase.bde_targets=false", "export_name=teacher_tiny", "ship=true", "seed=1",
                                      f"paths.weights_dir={teacher_dir}"]))
    train(compose_cfg(overrides))
    assert "built soft labels" in capsys.readouterr().out  # a retrained teacher is a new key
    assert len(list(Path(cfg.paths.cache_dir).glob("soft_labels-*.h5"))) == 2


def test_student_without_teacher_lists_shipped_models(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg(TINY_STUDENT + ["teacher.checkpoint=no_such_teacher", f"paths.weights_dir={tmp_path}"])
    with pytest.raises(FileNotFoundError, match="no_such_teacher"):
        train(cfg)


@pytest.mark.slow
def test_joint_sweep_tunes_lambda_bde_and_num_experts(compose_cfg, tmp_path: Path) -> None:
    import optuna

    from tests.integration.test_teacher_phase import TINY_BDE

    weights = tmp_path / "weights"
    train(compose_cfg(TINY_BDE + ["export_name=bde_tiny", "ship=true", f"paths.weights_dir={weights}"]))
    storage = f"sqlite:///{tmp_path}/optuna.db"
    overrides = [o for o in TINY if not o.startswith("model.")] + [
        "phase=teacher_student", "hparams_search=teacher_student_optuna", "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=1", "hydra.launcher.n_jobs=1", f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=pair", f"hydra.sweep.dir={tmp_path}/multirun",
        f"phase.bde_weights={weights}/bde_tiny.safetensors", "model.hidden_dim=32", "model.num_blocks=1",
        "teacher.model.hidden_dim=32", "teacher.model.num_layers=2", "teacher.model.joint_dim=64",
        "teacher.model.fp_hidden=32", f"paths.cache_dir={tmp_path}/cache", f"paths.checkpoint_dir={tmp_path}/ckpt"]
    done = subprocess.run([sys.executable, "-m", "nextims.train", "-m", *overrides], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = optuna.load_study(study_name="pair", storage=storage).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert all(set(t.params) == {"loss.lambda_bde", "model.num_experts"} and 0 <= t.value <= 1 for t in trials)
    for job in range(2):
        for half in ("teacher", "student"):
            assert (tmp_path / "multirun" / str(job) / half / "model.safetensors").exists()


def test_transfer_soft_labels_are_sharded_filtered_and_resumed(compose_cfg, teacher_dir: Path, capsys) -> None:
    from nextims.data.featurize import mol_from_smiles
    from nextims.data.sites import fingerprint_and_sites
    from nextims.phases.common import load_context
    from nextims.phases.transfer_labels import ensure_transfer_set, excluded_keys

    cfg = compose_cfg(TINY_STUDENT + ["teacher.checkpoint=teacher_tiny", f"paths.weights_dir={teacher_dir}"])
    ctx = load_context(cfg)
    transfer = ensure_transfer_set(cfg, ctx)
    out = capsys.readouterr().out
    assert "built transfer soft labels for 197 molecules" in out
    (folder,) = Path(cfg.paths.cache_dir).glob("transfer-*")
    shards = sorted(folder.glob("shard-*.h5"))
    assert len(shards) == 4  # 197 molecules in shards of 50
    # every input molecule is kept or counted under its reason; validation and test compounds never kept
    report = out[out.index("transfer set: kept"):]
    assert "in_validation_or_test" in report and "bad_smiles" in report and "unsupported_element" in report
    kept = int(report.split("kept ")[1].split(",")[0])
    dropped = int(report.split("dropped ")[1].split()[0])
    assert kept == len(transfer) and kept + dropped == 197
    assert not set(transfer.keys) & excluded_keys(ctx)
    assert transfer.soft.shape == (kept, int(cfg.data.max_mz) + 1) and (transfer.soft.sum(1) > 0).all()
    # a batch holds the fingerprints and sites the student would compute itself
    with h5py.File(shards[0]) as f:
        smiles = f["smiles"].asstr()[:3]
    batch = transfer.batch(np.arange(3))
    for i, smi in enumerate(smiles):
        fp, sites = fingerprint_and_sites(mol_from_smiles(smi), int(cfg.featurizer.fp_bits), int(cfg.featurizer.fp_radius))
        assert np.array_equal(batch["fp"][i].numpy(), fp)
        assert np.array_equal(batch["sites"]["mass"][batch["sites"]["owner"] == i].numpy(), sites.mass)
    # resume: a lost shard and a killed writer's temporary file; only that shard is rebuilt
    before = {p.name: p.stat().st_mtime_ns for p in shards}
    shards[2].unlink()
    (folder / f".shard-00002.h5.999999999@{socket.gethostname()}.deadbeef.tmp").write_bytes(b"half")
    again = ensure_transfer_set(cfg, ctx)
    assert not list(folder.glob(".*.tmp"))
    after = {p.name: p.stat().st_mtime_ns for p in sorted(folder.glob("shard-*.h5"))}
    assert [n for n in after if after[n] != before.get(n)] == [shards[2].name]
    assert np.array_equal(again.soft, transfer.soft) and np.array_equal(again.keys, transfer.keys)
    # the transfer molecules join training: the checkpoint folder is keyed by them, soft loss > 0
    metrics = train(cfg)
    assert 0.0 <= metrics["val/recall@10"] <= 1.0
    from nextims.training.checkpoint import load_checkpoint

    (last,) = Path(cfg.paths.checkpoint_dir).glob("student-student_moe-*/last.ckpt")
    assert load_checkpoint(last)["loop"]["history"][0]["train/soft"] > 0
    train(compose_cfg(TINY_STUDENT + ["teacher.checkpoint=teacher_tiny", f"paths.weights_dir={teacher_dir}",
                                      "transfer.sources=[]"]))
    assert len(list(Path(cfg.paths.checkpoint_dir).glob("student-student_moe-*"))) == 2


_KILLED_SOFT_LABELS = """
import sys, time
from pathlib import Path
from omegaconf import OmegaConf
from nextims.config import register_resolvers
import nextims.phases.transfer_labels as tl
from nextims.phases.common import load_context

register_resolvers()
cfg, marker = OmegaConf.create(Path(sys.argv[1]).read_text()), Path(sys.argv[2])
real, calls = tl.write_shard, []

def slow(*args, **kwargs):
    written = real(*args, **kwargs)
    calls.append(written)
    if len(calls) == 2:  # the second shard's datasets written, the file neither complete nor in place
        marker.write_text("written")
        time.sleep(60)
    return written

tl.write_shard = slow
tl.ensure_transfer_set(cfg, load_context(cfg))
"""


def test_a_killed_soft_label_build_reruns_to_what_an_uninterrupted_build_writes(compose_cfg, teacher_dir: Path,
                                                                               tmp_path: Path) -> None:
    from omegaconf import OmegaConf, open_dict

    from nextims.phases.common import load_context
    from nextims.phases.transfer_labels import ensure_transfer_set

    cfg = compose_cfg(TINY_STUDENT + ["teacher.checkpoint=teacher_tiny", f"paths.weights_dir={teacher_dir}"])
    config, marker = tmp_path / "cfg.yaml", tmp_path / "marker"
    config.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    kill_at_marker(_KILLED_SOFT_LABELS, [str(config), str(marker)], marker, "reached its second shard", 120,
                   PROJECT_ROOT)
    (folder,) = Path(cfg.paths.cache_dir).glob("transfer-*")
    assert [p.name for p in folder.glob("shard-*.h5")] == ["shard-00000.h5"]
    assert len(list(folder.glob(".shard-00001.h5.*.tmp"))) == 1  # the killed writer's half-written shard
    first = (folder / "shard-00000.h5").stat().st_mtime_ns
    ctx = load_context(cfg)
    resumed = ensure_transfer_set(cfg, ctx)
    assert (folder / "shard-00000.h5").stat().st_mtime_ns == first  # the complete shard is kept, not rebuilt
    assert not list(folder.glob(".*.tmp"))
    with open_dict(cfg):
        cfg.paths.cache_dir = str(tmp_path / "uninterrupted")
    whole = ensure_transfer_set(cfg, ctx)
    assert np.array_equal(resumed.soft, whole.soft) and np.array_equal(resumed.keys, whole.keys)
    assert np.array_equal(resumed.batch(np.arange(len(whole)))["fp"].numpy(),
                          whole.batch(np.arange(len(whole)))["fp"].numpy())
