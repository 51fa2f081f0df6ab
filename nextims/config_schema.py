"""Schemas of the configuration groups: each setting's type and allowed range, checked before any data is read.

A schema is a dataclass whose fields carry the type (checked by OmegaConf's structured-config validation) and, in
their metadata, the allowed range or values. `check_train_config` and `check_predict_config` walk a composed
config against them and raise `InputError` naming the first wrong key, its value and what it may be.
"""

from __future__ import annotations

import codecs
import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union, get_args, get_origin, get_type_hints

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nextims.errors import InputError


def setting(ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None,
            choices: tuple[Any, ...] = (), pattern: str | None = None, words: tuple[str, ...] = ()) -> Any:
    """A schema field: numbers within [ge|gt, le|lt], one of `choices`, a string matching `pattern`; `words`
    are strings also allowed for a numeric setting (e.g. `auto`)."""
    rule = dict(ge=ge, gt=gt, le=le, lt=lt, choices=choices, pattern=pattern, words=words)
    return field(default=MISSING, metadata={"rule": rule})


def _allowed(kind: str, rule: dict[str, Any], nullable: bool) -> str:
    """The allowed values of a setting in words."""
    if rule["choices"]:
        text = "one of " + ", ".join(str(c) for c in rule["choices"])
    elif rule["pattern"]:
        text = f"a string matching {rule['pattern']}"
    else:
        bounds = [f"{op} {rule[key]:g}" for key, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
                  if rule[key] is not None]
        noun = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}.get(kind, kind)
        text = f"{noun} {' and '.join(bounds)}"
        text = " ".join(text.split())
    extras = [*rule["words"], *(["null"] if nullable else [])]
    return f"{' or '.join(extras)} or {text}" if extras else text


def _in_range(value: Any, rule: dict[str, Any]) -> bool:
    """Whether a value of the right type lies within the rule."""
    if rule["choices"]:
        return value in rule["choices"]
    if rule["pattern"]:
        return re.fullmatch(rule["pattern"], str(value)) is not None
    checks = (("ge", lambda v, b: v >= b), ("gt", lambda v, b: v > b), ("le", lambda v, b: v <= b),
              ("lt", lambda v, b: v < b))
    return all(rule[key] is None or test(value, rule[key]) for key, test in checks)


def _kind(hint: Any) -> tuple[type, bool]:
    """The type of a field's annotation and whether it may be None (Optional[T])."""
    if get_origin(hint) is Union:
        args = [a for a in get_args(hint) if a is not type(None)]
        return args[0], len(args) < len(get_args(hint))
    return hint, False


def _check_field(schema: type, f: dataclasses.Field, hint: Any, value: Any, key: str) -> Any:
    """The value of one setting, type-checked by OmegaConf against the schema and range-checked by its rule."""
    rule = f.metadata.get("rule", {})
    kind_type, nullable = _kind(hint)
    kind = kind_type.__name__
    problem = InputError(f"{key}={value!r}: must be {_allowed(kind, rule, nullable)}")
    if value is None:
        if nullable:
            return None
        raise problem
    if isinstance(value, str) and value in rule.get("words", ()):
        return value
    if isinstance(value, bool) and kind in ("int", "float"):
        raise problem
    try:
        typed = OmegaConf.merge(OmegaConf.structured(schema), {f.name: value})[f.name]
    except OmegaConfBaseException:
        raise problem from None
    if not _in_range(typed, rule):
        raise problem
    return typed


def check_node(schema: type, node: DictConfig | dict | None, prefix: str) -> dict[str, Any]:
    """Check the settings of a config node that the schema describes (settings it lacks are not checked);
    returns the checked values by name, after the schema's own cross-setting checks (`relations`)."""
    if node is None:
        return {}
    values: dict[str, Any] = {}
    hints = get_type_hints(schema)
    for f in dataclasses.fields(schema):
        if f.name not in node:
            continue
        raw = node[f.name]
        if dataclasses.is_dataclass(hints[f.name]):
            values[f.name] = check_node(hints[f.name], raw, f"{prefix}{f.name}.")
        else:
            values[f.name] = _check_field(schema, f, hints[f.name], raw, f"{prefix}{f.name}")
    relations: Callable[[dict[str, Any], str], None] | None = getattr(schema, "relations", None)
    if relations is not None:
        relations(values, prefix)
    return values


@dataclass
class TrainerSchema:
    """conf/trainer."""

    max_epochs: int = setting(ge=1)
    batch_size: int = setting(ge=1)
    lr: float = setting(gt=0)
    weight_decay: float = setting(ge=0)
    grad_clip: Optional[float] = setting(ge=0)
    patience: int = setting(ge=1)
    monitor: str = setting(pattern=r"val/\S+")
    mode: str = setting(choices=("max", "min"))
    eval_every: int = setting(ge=1)
    val_max_compounds: Optional[int] = setting(ge=1)
    limit_train_batches: Optional[int] = setting(ge=1)
    num_threads: Optional[int] = setting(ge=0)
    device: str = setting(pattern=r"auto|cpu|cuda(:\d+)?")
    resume: bool = setting()
    amp: bool = setting()
    lr_schedule: str = setting(choices=("none", "cosine", "plateau"))
    lr_patience: int = setting(ge=1)
    ema_decay: Optional[float] = setting(gt=0, lt=1)
    keep_checkpoints: str = setting(choices=("all", "best", "last", "none"))


@dataclass
class SpectrumLossSchema:
    """conf/loss: spectrum."""

    mass_power: float = setting(ge=0)


@dataclass
class LossSchema:
    """conf/loss."""

    spectrum: SpectrumLossSchema = field(default_factory=SpectrumLossSchema)
    lambda_spectrum: float = setting(ge=0)
    lambda_bde: float = setting(ge=0)
    bde_scale: float = setting(gt=0)
    lambda_soft: float = setting(ge=0)
    lambda_balance: float = setting(ge=0)


@dataclass
class StudentSchema:
    """conf/model/student_moe."""

    hidden_dim: int = setting(ge=1)
    num_blocks: int = setting(ge=1)
    num_experts: int = setting(ge=1)
    top_k: int = setting(ge=1)
    bottleneck: float = setting(gt=0, le=1)
    dropout: float = setting(ge=0, lt=1)
    reverse_margin: int = setting(ge=0)
    cleavage_head: bool = setting()
    site_dim: int = setting(ge=1)

    @staticmethod
    def relations(values: dict[str, Any], prefix: str) -> None:
        """top_k experts of num_experts."""
        if "top_k" in values and "num_experts" in values and values["top_k"] > values["num_experts"]:
            raise InputError(f"{prefix}top_k={values['top_k']}: must be at most {prefix}num_experts="
                             f"{values['num_experts']}")


@dataclass
class TeacherSchema:
    """conf/model/teacher_gnn."""

    hidden_dim: int = setting(ge=1)
    num_layers: int = setting(ge=1)
    conv: str = setting(choices=("gine", "gatv2"))
    fp_hidden: int = setting(ge=0)
    joint_dim: int = setting(ge=1)
    num_blocks: int = setting(ge=0)
    dropout: float = setting(ge=0, lt=1)
    reverse_margin: int = setting(ge=0)
    cleavage_head: bool = setting()
    cleavage_bde: bool = setting()
    fragment_head: bool = setting()
    isotope_envelope: bool = setting()
    envelope_width: int = setting(ge=1)


@dataclass
class NeimsSchema:
    """conf/model/neims."""

    hidden_dim: int = setting(ge=1)
    num_blocks: int = setting(ge=0)
    bottleneck: float = setting(gt=0, le=1)
    dropout: float = setting(ge=0, lt=1)
    reverse_margin: int = setting(ge=0)


@dataclass
class BondNetSchema:
    """conf/model/bondnet."""

    hidden_dim: int = setting(ge=1)
    num_layers: int = setting(ge=1)
    readout_dim: int = setting(ge=1)
    dropout: float = setting(ge=0, lt=1)


@dataclass
class KnnSchema:
    """conf/model/knn."""

    k: int = setting(ge=1)


MODEL_SCHEMAS: dict[str, type] = {"student_moe": StudentSchema, "teacher_gnn": TeacherSchema, "neims": NeimsSchema,
                                  "bondnet": BondNetSchema, "knn": KnnSchema}


@dataclass
class FeaturizerSchema:
    """conf/featurizer."""

    fp_bits: int = setting(ge=1)
    fp_radius: int = setting(ge=0)


@dataclass
class DataSchema:
    """conf/data."""

    max_mz: int = setting(ge=1)
    encoding: str = setting(pattern=r"[A-Za-z0-9_.:-]+")
    cache: bool = setting()
    workers: int = setting(ge=0, words=("auto",))

    @staticmethod
    def relations(values: dict[str, Any], prefix: str) -> None:
        """The encoding is one Python knows."""
        if "encoding" in values:
            try:
                codecs.lookup(values["encoding"])
            except LookupError:
                raise InputError(f"{prefix}encoding={values['encoding']!r}: must be a text encoding Python knows "
                                 "(utf-8, cp1252, latin-1, ...)") from None


@dataclass
class TransferSchema:
    """The student's transfer set (conf/phase/student.yaml)."""

    limit: Optional[int] = setting(ge=0)
    shard_size: int = setting(ge=1)
    per_epoch: int = setting(ge=0)
    batch_size: Optional[int] = setting(ge=1)
    max_heavy_atoms: int = setting(ge=1)
    workers: int = setting(ge=0, words=("auto",))


@dataclass
class PhaseSchema:
    """conf/phase: the settings some phases have."""

    loss: str = setting(choices=("mse", "l1"))
    bdfe_weight: float = setting(ge=0)
    eval_batch_size: int = setting(ge=1)
    batch_size: int = setting(ge=1)


@dataclass
class TrainSchema:
    """conf/train.yaml: the top-level settings and the groups with a schema (the model's by its name)."""

    seed: int = setting()
    ensemble_size: int = setting(ge=1)
    export_precision: str = setting(choices=("float16", "int8", "float32"))
    ship: bool = setting()
    evaluate_test: bool = setting()
    trainer: TrainerSchema = field(default_factory=TrainerSchema)
    loss: LossSchema = field(default_factory=LossSchema)
    featurizer: FeaturizerSchema = field(default_factory=FeaturizerSchema)
    data: DataSchema = field(default_factory=DataSchema)
    transfer: TransferSchema = field(default_factory=TransferSchema)
    phase: PhaseSchema = field(default_factory=PhaseSchema)


@dataclass
class PredictSchema:
    """conf/predict.yaml."""

    batch_size: int = setting(ge=1)
    workers: int = setting(ge=0, words=("auto",))
    num_threads: Optional[int] = setting(ge=0, words=("auto",))
    min_relative_intensity: float = setting(ge=0, lt=1)
    max_heavy_atoms: int = setting(ge=1)
    device: str = setting(pattern=r"auto|cpu|cuda(:\d+)?")
    progress: bool = setting()


def check_train_config(cfg: DictConfig) -> None:
    """Refuse a training config with a setting of the wrong type or out of range, naming the key."""
    check_node(TrainSchema, cfg, "")
    model = cfg.get("model")
    if model is not None and model.get("name") in MODEL_SCHEMAS:
        check_node(MODEL_SCHEMAS[model.name], model, "model.")


def check_predict_schema(cfg: DictConfig) -> None:
    """Refuse predict settings of the wrong type or out of range, naming the key."""
    check_node(PredictSchema, cfg, "")
