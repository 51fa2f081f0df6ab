"""A model card is data, not code: every `_target_` in it must be a registered class, checked before anything is
built; shipped cards still load; training checkpoints never unpickle objects."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import yaml
from hydra.utils import get_class
from omegaconf import OmegaConf

from nextims.config import CONF_DIR, WEIGHTS_DIR, build
from nextims.data.featurize import MolGraphFeaturizer
from nextims.errors import InputError
from nextims.models import registry
from nextims.models.registry import (PROJECT_TARGETS, UnregisteredTargetError, check_card, check_targets,
                                     register_target)
from nextims.models.weights import load_model, read_card, save_weights, shipped_weights, weights_digest
from nextims.predictor import SpectrumPredictor
from nextims.training.checkpoint import load_checkpoint

FEATURIZER = {"graph": {"_target_": "nextims.data.featurize.MolGraphFeaturizer", "explicit_hydrogens": False},
              "fp_bits": 512, "fp_radius": 2}
TINY_NEIMS = {"_target_": "nextims.models.neims.NEIMS", "name": "neims", "input_dim": 512, "num_bins": 501,
              "hidden_dim": 16, "num_blocks": 1}


class Payload:
    """Unpickling this creates `marker` (it pickles as a call to `open(marker, "w")`)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def write_payload(path: Path, marker: Path) -> Path:
    """A file that creates marker when torch.load unpickles it (weights_only=False)."""
    torch.save(Payload(marker), path)
    return path


def gadget(payload: Path) -> dict:
    """The model node that runs the payload when instantiated."""
    return {"_target_": "torch.load", "_args_": [str(payload)], "weights_only": False}


def tiny_gnn() -> dict:
    """A tiny TeacherGNN node (a model that needs the featurizer's graphs)."""
    graph = MolGraphFeaturizer()
    return {"_target_": "nextims.models.teacher.TeacherGNN", "name": "teacher_gnn", "atom_dim": graph.atom_dim,
            "bond_dim": graph.bond_dim, "fp_dim": 512, "num_bins": 501, "hidden_dim": 16, "num_layers": 1,
            "fp_hidden": 16, "joint_dim": 32, "num_blocks": 1}


def tiny_model_weights(folder: Path, name: str = "tiny", node: dict | None = None) -> Path:
    """A real (untrained) tiny model (default NEIMS) saved with its card, for 512-bit fingerprints, m/z up to 500."""
    node = node or TINY_NEIMS
    torch.manual_seed(0)
    card = {"model": node, "featurizer": FEATURIZER, "data": {"name": "tiny", "max_mz": 500}, "task": "spectrum"}
    return save_weights(build(node), folder / name, card)


def tiny_ensemble_weights(folder: Path, name: str = "ensemble") -> Path:
    """A real (untrained) ensemble of one tiny NEIMS saved with its card."""
    node = {"_target_": "nextims.models.ensemble.SpectrumEnsemble", "_recursive_": False, "name": "neims_ensemble",
            "member": TINY_NEIMS, "size": 1}
    torch.manual_seed(0)
    card = {"model": node, "featurizer": FEATURIZER, "data": {"name": "tiny", "max_mz": 500}, "task": "spectrum"}
    return save_weights(build(node), folder / name, card)


def malicious_cards(folder: Path, marker: Path) -> dict[str, Path]:
    """Weights of real tiny models whose cards run a pickle payload beside them (which would create marker) from
    the model node, from the member node of an ensemble, and from the featurizer's graph node (of a GNN)."""
    folder.mkdir(parents=True, exist_ok=True)
    payload = write_payload(folder / "payload.pt", marker)
    out = {}
    for kind in ("model", "member", "featurizer"):
        if kind == "member":
            weights = tiny_ensemble_weights(folder, kind)
        else:
            weights = tiny_model_weights(folder, kind, tiny_gnn() if kind == "featurizer" else None)
        card = json.loads(weights.with_suffix(".json").read_text())
        if kind == "model":
            card["model"] = gadget(payload)
        elif kind == "member":
            card["model"]["member"] = gadget(payload)
        else:
            card["featurizer"]["graph"] = gadget(payload)
        weights.with_suffix(".json").write_text(json.dumps(card, indent=2))
        out[kind] = weights
    return out


REFUSED_AT = {"model": "model._target_", "member": "model.member._target_", "featurizer": "featurizer.graph._target_"}


def assert_refused(err: pytest.ExceptionInfo, weights: Path, kind: str) -> None:
    """The error names the card, where in it the target is, and the target."""
    message = str(err.value)
    assert isinstance(err.value, ValueError)
    assert str(weights.with_suffix(".json")) in message
    assert f"{REFUSED_AT[kind]} is 'torch.load'" in message


def test_the_payload_runs_when_unpickled(tmp_path: Path) -> None:
    """The gadget is live: what the cards below are refused for would create the marker."""
    marker = tmp_path / "pwned"
    torch.load(write_payload(tmp_path / "payload.pt", marker), weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("kind", ["model", "member", "featurizer"])
def test_load_model_refuses_an_unregistered_target_before_building_anything(tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "pwned"
    weights = malicious_cards(tmp_path / "w", marker)[kind]
    for load in (load_model, read_card, weights_digest):
        with pytest.raises(UnregisteredTargetError) as err:
            load(weights)
        assert_refused(err, weights, kind)
    assert not marker.exists()


@pytest.mark.parametrize("node, where", [
    ({"_target_": "os.system"}, "_target_"),
    ({"a": {"b": {"c": {"_target_": "os.system"}}}}, "a.b.c._target_"),
    ({"_target_": "nextims.models.neims.NEIMS", "_args_": [1, {"_target_": "os.system"}]}, "_args_[1]._target_"),
    ([[{"x": [{"_target_": "os.system"}]}]], "[0][0].x[0]._target_"),
    ({"_target_": ["os.system"]}, "_target_"),
])
def test_check_targets_walks_dicts_and_lists_at_any_depth(node, where: str) -> None:
    with pytest.raises(UnregisteredTargetError, match=r"^card\.json: ") as err:
        check_targets(node, "card.json")
    assert f"{where} is " in str(err.value) and "os.system" in str(err.value)


def test_project_nodes_and_plain_values_pass() -> None:
    check_targets({"model": {**TINY_NEIMS, "extra": [1, "x", None, {"k": 2.0}]}, "featurizer": FEATURIZER}, "c")
    check_targets(None, "c")
    check_card({"model": TINY_NEIMS, "command": "python -m nextims.train paths.root=${oc.env:HOME}"}, "c")


@pytest.mark.parametrize("section", ["model", "featurizer"])
def test_interpolations_are_refused_where_the_card_is_built(section: str) -> None:
    # resolving `${oc.create:...}` would make a node with a new `_target_` after the check
    hidden = "${oc.create:'{_target_: os.system, _args_: [true]}'}"
    card = {"model": copy.deepcopy(TINY_NEIMS), "featurizer": copy.deepcopy(FEATURIZER)}
    card[section]["hidden"] = hidden
    with pytest.raises(UnregisteredTargetError, match=rf"card\.json: {section}\.hidden is the interpolation"):
        check_card(card, "card.json")


def test_a_card_must_be_an_object() -> None:
    with pytest.raises(UnregisteredTargetError, match="a model card is a JSON object"):
        check_card([TINY_NEIMS], "card.json")


def test_registered_targets_are_importable_classes_and_cover_the_configs_and_shipped_cards() -> None:
    for target in PROJECT_TARGETS:
        assert isinstance(get_class(target), type)
    used = {yaml.safe_load(p.read_text())["_target_"] for p in (CONF_DIR / "model").glob("*.yaml")}
    used.add(OmegaConf.load(CONF_DIR / "featurizer" / "default.yaml").graph._target_)
    assert used <= PROJECT_TARGETS
    for path in shipped_weights(WEIGHTS_DIR):
        check_card(json.loads(path.with_suffix(".json").read_text()), path)


def test_registering_a_custom_class_lets_its_cards_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_registered", set(registry._registered))
    node = {"_target_": "torch.nn.Linear", "in_features": 4, "out_features": 2}
    path = save_weights(torch.nn.Linear(4, 2), tmp_path / "custom", {"model": node})
    with pytest.raises(UnregisteredTargetError, match="'torch.nn.Linear'"):
        load_model(path)
    register_target("torch.nn.Linear")
    assert isinstance(load_model(path)[0], torch.nn.Linear)
    with pytest.raises(TypeError):
        register_target(torch.nn.Linear)


def test_every_shipped_model_loads() -> None:
    paths = shipped_weights(WEIGHTS_DIR)
    assert {p.stem for p in paths} >= {"neims_massbank", "student_massbank", "teacher_massbank", "bondnet_bde_db2"}
    for path in paths:
        model, card = load_model(path)
        assert isinstance(model, torch.nn.Module) and not model.training and card["model"]["_target_"]


def test_predictor_checks_a_card_it_is_handed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    card = {"featurizer": {**FEATURIZER, "graph": gadget(write_payload(tmp_path / "payload.pt", marker))},
            "data": {"max_mz": 500}}
    model = torch.nn.Module()
    model.needs_graph = True
    with pytest.raises(UnregisteredTargetError, match=r"featurizer\.graph\._target_ is 'torch\.load'"):
        SpectrumPredictor(model, card, torch.device("cpu"), "handed")
    assert not marker.exists()


def test_checkpoints_are_loaded_without_unpickling_objects(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "last.ckpt"
    torch.save({"model": {"w": torch.zeros(2)}, "loop": Payload(marker)}, path)
    with pytest.raises(InputError, match=r"holds objects other than tensors.*weights_only=True.*trainer\.resume=false"):
        load_checkpoint(path)
    assert not marker.exists()
