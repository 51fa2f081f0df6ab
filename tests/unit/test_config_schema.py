"""The configuration schemas refuse wrong types and out-of-range values at start, naming the key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pytest

from nextims.config_schema import check_node, check_train_config, setting
from nextims.errors import InputError
from nextims.train import check_inputs


@pytest.mark.parametrize("override, message", [
    ("loss.lambda_bde=-1", "loss.lambda_bde=-1: must be a number >= 0"),
    ("trainer.max_epochs=-1", "trainer.max_epochs=-1: must be an integer >= 1"),
    ("trainer.patience=0", "trainer.patience=0: must be an integer >= 1"),
    ("trainer.batch_size=0", "trainer.batch_size=0: must be an integer >= 1"),
    ("trainer.max_epochs=2.5", "trainer.max_epochs=2.5: must be an integer >= 1"),
    ("trainer.lr=fast", "trainer.lr='fast': must be a number > 0"),
    ("trainer.device=gpu", "trainer.device='gpu': must be a string matching auto|cpu|cuda(:\\d+)?"),
    ("trainer.ema_decay=1.5", "trainer.ema_decay=1.5: must be null or a number > 0 and < 1"),
    ("trainer.amp=maybe", "trainer.amp='maybe': must be true or false"),
    ("trainer.keep_checkpoints=some", "trainer.keep_checkpoints='some': must be one of all, best, last, none"),
    ("ensemble_size=0", "ensemble_size=0: must be an integer >= 1"),
    ("export_precision=int4", "export_precision='int4': must be one of float16, int8, float32"),
    ("model.dropout=1.0", "model.dropout=1.0: must be a number >= 0 and < 1"),
    ("phase=student model.num_experts=0", "model.num_experts=0: must be an integer >= 1"),
    ("phase=student model.top_k=8", "model.top_k=8: must be at most model.num_experts=4"),
    ("phase=student transfer.workers=-1", "transfer.workers=-1: must be auto or an integer >= 0"),
    ("data.encoding=klingon", "data.encoding='klingon': must be a text encoding Python knows (utf-8, cp1252, "
                              "latin-1, ...)"),
])
def test_out_of_range_settings_are_refused_naming_the_key(compose_cfg, override: str, message: str) -> None:
    cfg = compose_cfg(override.split())
    with pytest.raises(InputError) as err:
        check_train_config(cfg)
    assert str(err.value) == message


def test_the_command_refuses_before_reading_any_file(compose_cfg) -> None:
    # the data file does not exist: the setting is refused first, in one line
    cfg = compose_cfg(["trainer.max_epochs=-1", "data.path=no_such.jsonl"])
    with pytest.raises(SystemExit, match=r"^nextims.train: trainer.max_epochs=-1: must be an integer >= 1$"):
        check_inputs(cfg)


@pytest.mark.parametrize("override", ["phase=student", "phase=teacher", "phase=bde", "experiment=student_massbank",
                                      "trainer.ema_decay=0.998", "trainer.grad_clip=null", "trainer.device=cuda:1",
                                      "phase=student transfer.workers=auto transfer.batch_size=null",
                                      "data=msp data.path=x.msp data.encoding=cp1252"])
def test_valid_settings_pass(compose_cfg, override: str) -> None:
    check_train_config(compose_cfg(override.split()))


@dataclass
class _Schema:
    count: int = setting(ge=1)
    share: Optional[float] = setting(gt=0, le=1)
    mode: str = setting(choices=("a", "b"))


def test_check_node_converts_types_and_skips_settings_the_node_lacks() -> None:
    assert check_node(_Schema, {"count": "3", "share": None}, "x.") == {"count": 3, "share": None}
    with pytest.raises(InputError, match=r"^x.count=2.0: must be an integer >= 1$"):
        check_node(_Schema, {"count": 2.0}, "x.")
    with pytest.raises(InputError, match=r"^x.count=True: must be an integer >= 1$"):
        check_node(_Schema, {"count": True}, "x.")
    with pytest.raises(InputError, match=r"^x.mode='c': must be one of a, b$"):
        check_node(_Schema, {"mode": "c"}, "x.")
    with pytest.raises(InputError, match=r"^x.share=0: must be null or a number > 0 and <= 1$"):
        check_node(_Schema, {"share": 0}, "x.")
