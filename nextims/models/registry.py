"""The classes a model card may name: every `_target_` in a card is checked here before anything is built.

A card is data a user may receive with third-party weights, but Hydra's `instantiate` calls whatever its
`_target_` names, so an unchecked card could run any function (e.g. `torch.load` of a pickle shipped beside
it). A card may only name the project's own model and featurizer classes, or classes that code has registered
with `register_target`; its built sections (`model`, `featurizer`) may not hold interpolations either, since
resolving one (`${oc.create:...}`) can make a new `_target_` after the check.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

# The `_target_`s of the project's models (conf/model/*.yaml, the ensemble phase) and of the featurizer node.
PROJECT_TARGETS = frozenset({
    "nextims.models.neims.NEIMS",
    "nextims.models.student.StudentMoE",
    "nextims.models.teacher.TeacherGNN",
    "nextims.models.ensemble.SpectrumEnsemble",
    "nextims.models.bondnet.BondNet",
    "nextims.models.knn.TanimotoKNN",
    "nextims.data.featurize.MolGraphFeaturizer",
})
# The card sections that are instantiated (model, and the featurizer's `graph` node).
BUILT_SECTIONS = ("model", "featurizer")
TARGET_KEY = "_target_"

_registered: set[str] = set(PROJECT_TARGETS)


class UnregisteredTargetError(ValueError):
    """A config read from a file names a `_target_` outside the registry, or could make one by interpolation."""


def register_target(*targets: str) -> None:
    """Let cards name these dotted class paths (as written in `_target_`), e.g. a custom model class."""
    for target in targets:
        if not isinstance(target, str) or not target:
            raise TypeError(f"a target is a dotted class path, got {target!r}")
        _registered.add(target)


def registered_targets() -> frozenset[str]:
    """Every `_target_` a card may name now."""
    return frozenset(_registered)


def _walk(node: Any, where: str) -> Iterable[tuple[str, Any, Any]]:
    """(location, key or None, value) of every dict entry and list item under node, at any depth."""
    if isinstance(node, dict):
        items = [(f"{where}.{k}" if where else str(k), k, v) for k, v in node.items()]
    elif isinstance(node, (list, tuple)):
        items = [(f"{where}[{i}]", None, v) for i, v in enumerate(node)]
    else:
        return
    for location, key, value in items:
        yield location, key, value
        yield from _walk(value, location)


def check_targets(node: Any, source: str | Path, interpolations: bool = False, where: str = "") -> None:
    """Raise UnregisteredTargetError naming source and the value unless every `_target_` in node (dicts and
    lists, any depth) is registered; strings with `${` are refused too unless interpolations is True.

    where: the node's location in its file, the prefix of the locations in the messages.
    """
    allowed = registered_targets()
    for location, key, value in _walk(node, where):
        if key == TARGET_KEY and not (isinstance(value, str) and value in allowed):
            raise UnregisteredTargetError(
                f"{source}: {location} is {value!r}, not a registered model class; a model card may only name "
                "NExtIMS's own model classes (nextims.models.registry) or ones code registered with register_target")
        if not interpolations and isinstance(value, str) and "${" in value:
            raise UnregisteredTargetError(
                f"{source}: {location} is the interpolation {value!r}; the parts of a model card that are built "
                "must hold plain values")


def check_card(card: dict[str, Any], source: str | Path) -> None:
    """Check a model card: registered `_target_`s everywhere, and no interpolation in the sections that are built."""
    if not isinstance(card, dict):
        raise UnregisteredTargetError(f"{source}: a model card is a JSON object, got {type(card).__name__}")
    check_targets(card, source, interpolations=True)
    for key in BUILT_SECTIONS:
        check_targets(card.get(key), source, where=key)
