"""Third-party weights whose card names a gadget (`torch.load` of a pickle beside it, in the model node, an ensemble
member or the featurizer) are refused by predict, phase=evaluate and the student's teacher before the payload runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nextims import PROJECT_ROOT
from nextims.models.registry import UnregisteredTargetError
from nextims.predict import compose_predict, run_predict
from nextims.train import train
from tests.conftest import TINY
from tests.integration.test_student_phase import TINY_STUDENT
from tests.unit.test_card_security import assert_refused, malicious_cards, tiny_model_weights

KINDS = ["model", "member", "featurizer"]
# the tiny models of tests.unit.test_card_security: 512-bit fingerprints
EVALUATE = [o for o in TINY if not o.startswith("model.")] + ["phase=evaluate"]


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """The file the payload would create."""
    return tmp_path / "pwned"


@pytest.fixture
def cards(tmp_path: Path, marker: Path) -> dict[str, Path]:
    """Weights of real tiny models with malicious cards, by where the gadget is."""
    return malicious_cards(tmp_path / "third_party", marker)


def predict(*overrides: str):
    """Compose conf/predict.yaml and run it."""
    return run_predict(compose_predict(["progress=false", "workers=0", *overrides]))


def test_the_same_weights_with_an_honest_card_predict(tmp_path: Path) -> None:
    weights = tiny_model_weights(tmp_path / "honest")
    report = predict("input=CCO", f"output={tmp_path}/out.msp", f"model={weights}")
    assert report.kept == 1


@pytest.mark.parametrize("kind", KINDS)
def test_predict_refuses_the_card(cards: dict[str, Path], marker: Path, tmp_path: Path, kind: str) -> None:
    with pytest.raises(UnregisteredTargetError) as err:
        predict("input=CCO", f"output={tmp_path}/out.msp", f"model={cards[kind]}")
    assert_refused(err, cards[kind], kind)
    assert not marker.exists() and not (tmp_path / "out.msp").exists()


def test_predict_command_line_refuses_the_card(cards: dict[str, Path], marker: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "nextims.predict", "input=CCO", f"output={tmp_path}/out.msp",
                           f"model={cards['member']}", "progress=false", "workers=0"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert done.returncode != 0
    assert "UnregisteredTargetError" in done.stderr and str(cards["member"].with_suffix(".json")) in done.stderr
    assert "model.member._target_ is 'torch.load'" in done.stderr
    assert not marker.exists()


@pytest.mark.parametrize("kind", KINDS)
def test_evaluate_phase_refuses_the_card(compose_cfg, cards: dict[str, Path], marker: Path, kind: str) -> None:
    cfg = compose_cfg(EVALUATE + [f"ckpt_path={cards[kind]}"])
    with pytest.raises(UnregisteredTargetError) as err:
        train(cfg)
    assert_refused(err, cards[kind], kind)
    assert not marker.exists()


@pytest.mark.parametrize("kind", KINDS)
def test_student_refuses_the_card_as_its_teacher(compose_cfg, cards: dict[str, Path], marker: Path,
                                                 kind: str) -> None:
    cfg = compose_cfg(TINY_STUDENT + [f"teacher.checkpoint={cards[kind]}"])
    with pytest.raises(UnregisteredTargetError) as err:
        train(cfg)
    assert_refused(err, cards[kind], kind)
    assert not marker.exists()
    assert not list(Path(cfg.paths.cache_dir).glob("soft_labels-*.h5"))
