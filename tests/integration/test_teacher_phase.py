"""`phase=teacher` end to end on tiny data: the BDE cache is built on the way, both losses train."""

from __future__ import annotations

from pathlib import Path

import pytest

from nextims.train import train
from tests.conftest import TINY

TINY_BDE = ["phase=bde", "bde_data=tiny", "trainer=tiny", "tracking=none", "model.hidden_dim=16",
            "model.num_layers=2", "model.readout_dim=16"]
TINY_TEACHER = [o for o in TINY if not o.startswith("model.")] + [
    "phase=teacher", "model.hidden_dim=32", "model.num_layers=2", "model.joint_dim=64", "model.fp_hidden=32"]


def test_teacher_builds_bde_cache_and_trains_both_heads(compose_cfg, tmp_path: Path) -> None:
    weights_dir = tmp_path / "weights"
    train(compose_cfg(TINY_BDE + ["export_name=bde_tiny", "ship=true", f"paths.weights_dir={weights_dir}"]))
    bde_weights = weights_dir / "bde_tiny.safetensors"
    cfg = compose_cfg(TINY_TEACHER + [f"phase.bde_weights={bde_weights}"])
    metrics = train(cfg)
    assert 0.0 <= metrics["val/recall@10"] <= 1.0
    assert len([p for p in Path(cfg.paths.cache_dir).glob("bde-*.h5") if not p.name.startswith("bde-table")]) == 1
    from nextims.training.checkpoint import load_checkpoint

    (last,) = Path(cfg.paths.checkpoint_dir).glob("teacher-teacher_gnn-*/last.ckpt")
    history = load_checkpoint(last)["loop"]["history"]
    assert history[0]["train/bde_bonds"] > 0 and history[0]["train/bde"] > 0


def test_teacher_without_bde_model_names_the_command(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg(TINY_TEACHER + [f"phase.bde_weights={tmp_path}/missing.safetensors"])
    with pytest.raises(FileNotFoundError, match="experiment=bondnet_bde_db2"):
        train(cfg)


def test_teacher_with_isotope_envelopes_trains_and_exports_them(compose_cfg, tmp_path: Path) -> None:
    import numpy as np

    from nextims.data.molecules import InputMolecule
    from nextims.predictor import SpectrumPredictor

    weights_dir = tmp_path / "weights"
    cfg = compose_cfg(TINY_TEACHER + ["phase.bde_targets=false", "model.isotope_envelope=true",
                                      "model.envelope_width=9", "export_name=teacher_envelope_tiny", "ship=true",
                                      f"paths.weights_dir={weights_dir}"])
    metrics = train(cfg)
    assert 0.0 <= metrics["val/recall@10"] <= 1.0
    predictor = SpectrumPredictor.load(weights_dir / "teacher_envelope_tiny.safetensors")
    assert predictor.model.needs_envelope == 9
    chunk = predictor.chunk_preparer()([InputMolecule("tetrachloroethylene", "ClC(Cl)=C(Cl)Cl")])
    assert chunk.envelopes is not None
    (spectrum,) = predictor.predict_features(chunk)
    # the heads stop at M + 2 = 166, the spread of an envelope 9 wide reaches 174 at most
    assert np.isfinite(spectrum).all() and not spectrum[175:].any()


def _shipped_tiny_teacher(compose_cfg, tmp_path: Path, name: str, overrides: list[str]):
    """Train a tiny teacher with the given model overrides, ship it to tmp_path and load it for prediction."""
    from nextims.predictor import SpectrumPredictor

    weights_dir = tmp_path / "weights"
    cfg = compose_cfg(TINY_TEACHER + ["phase.bde_targets=false", *overrides, f"export_name={name}", "ship=true",
                                      f"paths.weights_dir={weights_dir}"])
    assert 0.0 <= train(cfg)["val/recall@10"] <= 1.0
    return SpectrumPredictor.load(weights_dir / f"{name}.safetensors")


def test_teacher_with_bde_ranked_cleavages_trains_and_exports_them(compose_cfg, tmp_path: Path) -> None:
    predictor = _shipped_tiny_teacher(compose_cfg, tmp_path, "teacher_bde_tiny", ["model.cleavage_bde=true"])
    assert predictor.model.cleavage_head.bde_input


def test_teacher_with_fragment_head_trains_and_predicts_with_pieces(compose_cfg, tmp_path: Path) -> None:
    import numpy as np

    from nextims.data.molecules import InputMolecule

    predictor = _shipped_tiny_teacher(compose_cfg, tmp_path, "teacher_pieces_tiny", ["model.fragment_head=true"])
    assert predictor.model.needs_pieces
    chunk = predictor.chunk_preparer()([InputMolecule("ether", "CCOCC"), InputMolecule("methane", "C")])
    assert chunk.pieces is not None and chunk.pieces.piece_offsets.tolist() == [0, 6, 6]
    spectra = predictor.predict_features(chunk)
    assert spectra.shape[0] == 2 and np.isfinite(spectra).all()
