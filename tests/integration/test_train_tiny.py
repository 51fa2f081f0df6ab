"""One tiny epoch through the real entry point's `train(cfg)`, for every spectrum model and phase."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from nextims.resources import WEIGHTS_DIR
from nextims.train import check_inputs, train
from tests.conftest import TINY


def test_neims_tiny_epoch_writes_metrics_and_weights(compose_cfg) -> None:
    cfg = compose_cfg(TINY + ["model=neims"])
    metrics = train(cfg)
    out = Path(cfg.paths.output_dir)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == pytest.approx(metrics)
    assert not any(k.startswith("test/") for k in metrics)  # training runs read validation only
    for split in ("val",):
        for key in ("recall@1", "recall@5", "recall@10", "recall@10_mass5", "cosine", "wdp", "entropy"):
            assert 0.0 <= metrics[f"{split}/{key}"] <= 1.0
        assert metrics[f"{split}/recall@1"] <= metrics[f"{split}/recall@10"] <= metrics[f"{split}/recall@10_mass5"]
    assert (out / "model.safetensors").exists() and (out / "model.json").exists()
    # the card travels with the weights: it names files, never this machine's folders
    card = json.loads((out / "model.json").read_text())
    assert card["data"]["split"]["test_list"] == "test_set_inchikey.txt.xz"
    assert str(Path(cfg.paths.bundled_dir)) not in (out / "model.json").read_text()
    assert (Path(cfg.paths.checkpoint_dir)).glob("*/last.ckpt")


def test_evaluate_phase_reproduces_training_metrics(compose_cfg) -> None:
    cfg = compose_cfg(TINY + ["model=neims", "evaluate_test=true"])
    metrics = train(cfg)
    weights = Path(cfg.paths.output_dir) / "model.safetensors"
    cfg_eval = compose_cfg(TINY + ["phase=evaluate", f"ckpt_path={weights}"])
    evaluated = train(cfg_eval)
    for key, value in evaluated.items():
        assert value == pytest.approx(metrics[key], abs=2e-3), key


def test_knn_baseline(compose_cfg) -> None:
    overrides = [o for o in TINY if not o.startswith("model.")]
    metrics = train(compose_cfg(overrides + ["model=knn"]))
    assert 0.0 < metrics["val/recall@10"] <= 1.0


def test_dataset_report_counts_drops(compose_cfg) -> None:
    from nextims.data.spectra import load_spectra
    from omegaconf import OmegaConf

    data = load_spectra(OmegaConf.to_container(compose_cfg(TINY).data, resolve=True))
    report = data.report.to_dict()
    # the tiny file holds 2 records of each dropped kind (see tests/data/README.md)
    for reason in ("parent_of_derivative", "isotope_labeled", "ms2", "ionization_energy", "no_structure"):
        assert report["dropped"].get(reason, 0) >= 1, reason
    assert report["kept"] == len(data)
    assert set(data.split) <= {"train", "val", "test"}


def test_unknown_export_precision_is_refused_before_training(compose_cfg) -> None:
    cfg = compose_cfg([*TINY, "export_name=tiny", "export_precision=int4"])
    with pytest.raises(ValueError, match="unknown weights precision 'int4'"):
        train(cfg)
    assert not Path(cfg.paths.checkpoint_dir).exists()


def test_export_goes_to_the_run_folder_and_into_the_package_only_when_shipped(compose_cfg, tmp_path: Path,
                                                                            capsys) -> None:
    def files(folder: Path) -> dict[str, tuple[int, int]]:
        return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}

    before = files(WEIGHTS_DIR)
    cfg = compose_cfg([*TINY, "export_name=tiny_export"])
    train(cfg)
    exported = Path(cfg.paths.output_dir) / "export" / "tiny_export.safetensors"
    assert exported.exists() and json.loads(exported.with_suffix(".json").read_text())["name"] == "tiny_export"
    assert f"exported weights: {exported}" in capsys.readouterr().out
    assert files(WEIGHTS_DIR) == before
    shipped = tmp_path / "shipped"
    train(compose_cfg([*TINY, "export_name=tiny_export", "ship=true", f"paths.weights_dir={shipped}"]))
    assert sorted(p.name for p in shipped.iterdir()) == ["tiny_export.json", "tiny_export.safetensors"]
    assert files(WEIGHTS_DIR) == before


def test_missing_input_files_end_the_command_in_one_line(compose_cfg, tmp_path: Path) -> None:
    check_inputs(compose_cfg(TINY))
    check_inputs(compose_cfg([*TINY, "data.split.method=lists"]))
    with pytest.raises(SystemExit, match=r"^nextims.train: no such file: data.path=nope.jsonl$"):
        check_inputs(compose_cfg([*TINY, "data.path=nope.jsonl"]))
    with pytest.raises(SystemExit, match=r"data.split.test_list=no_list.txt$"):
        check_inputs(compose_cfg([*TINY, "data.split.method=lists", "data.split.test_list=no_list.txt"]))
    with pytest.raises(SystemExit, match=r"^nextims.train: no such file: bde_data.path=nope.csv$"):
        check_inputs(compose_cfg(["phase=bde", "bde_data=tiny", "bde_data.path=nope.csv", "data.path=ignored"]))
    check_inputs(compose_cfg([*TINY, "phase=student"]))  # the bundled transfer set is there
    with pytest.raises(SystemExit, match=r"^nextims.train: no such file: transfer.sources.1=gone.smi$"):
        sources = "transfer.sources=[${paths.bundled_dir}/transfer/moses_every5th.smi.xz,gone.smi]"
        check_inputs(compose_cfg([*TINY, "phase=student", sources]))


def test_changed_data_at_the_same_path_starts_afresh(compose_cfg, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="nextims")
    data = tmp_path / "records.jsonl"
    lines = (Path(__file__).parents[1] / "data" / "massbank_tiny.jsonl").read_text().splitlines(keepends=True)
    data.write_text("".join(lines))
    train(compose_cfg(TINY + ["model=neims", f"data.path={data}"]))
    train(compose_cfg(TINY + ["model=neims", f"data.path={data}"]))
    assert "resumed from" in caplog.text and "trained on other data" not in caplog.text
    data.write_text("".join(lines[10:]))  # the same path, other records
    caplog.clear()
    train(compose_cfg(TINY + ["model=neims", f"data.path={data}"]))
    assert "resumed from" not in caplog.text and "trained on other data" in caplog.text
