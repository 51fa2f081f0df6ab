"""Every file written through a temporary sibling gets the mode a plain open() would give it (the umask's)."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nextims.data.cache import atomic_h5
from nextims.io.atomic import atomic_open, atomic_path, current_umask, default_file_mode
from nextims.io.msp import write_msp
from nextims.models.weights import save_weights
from nextims.predict import write_json
from nextims.spectrum import Spectrum
from nextims.training.checkpoint import save_checkpoint


@pytest.fixture(params=[0o022, 0o077])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run the test under this umask (restored after)."""
    before = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    """The permission bits of a file."""
    return stat.S_IMODE(path.stat().st_mode)


def spectra() -> list[Spectrum]:
    """Two small spectra."""
    return [Spectrum(np.array([15.0, 29.0]), np.array([0.5, 1.0]), {"name": n, "smiles": "CCO"}) for n in "ab"]


def test_umask_is_read_without_changing_it(umask: int) -> None:
    assert current_umask() == umask and current_umask() == umask
    assert default_file_mode() == 0o666 & ~umask


def test_every_writer_gives_the_umask_mode(umask: int, tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    expected = mode(plain)
    assert expected == (0o644 if umask == 0o022 else 0o600)
    written = [tmp_path / "out.msp", tmp_path / "out.json", tmp_path / "cache.h5", tmp_path / "last.ckpt"]
    write_msp(spectra(), written[0])
    write_json(spectra(), written[1])
    with atomic_h5(written[2], cache_key="k") as f:
        f["x"] = np.arange(3)
    save_checkpoint({"w": torch.zeros(2)}, written[3])
    weights = save_weights(nn.Linear(64, 64), tmp_path / "w" / "m", {"model": {}}, max_shard_bytes=10_000)
    written += [weights, weights.with_suffix(".json"), *weights.parent.glob("*.part")]
    assert len(written) > 6
    assert {p.name: oct(mode(p)) for p in written} == {p.name: oct(expected) for p in written}
    assert not list(tmp_path.rglob("*.tmp"))


def test_failed_write_leaves_neither_file_nor_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as out:
            out.write("partial")
            raise RuntimeError("stop")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    with atomic_path(tmp_path / "sub" / "new.txt") as tmp:
        tmp.write_text(json.dumps([1]))
    assert json.loads((tmp_path / "sub" / "new.txt").read_text()) == [1]


KILLED_WRITER = """
import os, signal, sys
from nextims.io.atomic import atomic_open
with atomic_open(sys.argv[1]) as out:
    out.write("half")
    out.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_next_write_removes_temporaries_of_killed_writers_only(tmp_path: Path) -> None:
    target = tmp_path / "out[1].msp"  # glob characters in the name are matched literally
    root = Path(__file__).resolve().parents[2]
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target)], cwd=root, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(root)})
    assert killed.returncode == -signal.SIGKILL
    left = list(tmp_path.glob(".*.tmp"))
    assert len(left) == 1 and left[0].read_text() == "half" and not target.exists()
    running = tmp_path / f".{target.name}.{os.getppid()}@{socket.gethostname()}.abc.tmp"  # a live writer's
    elsewhere = tmp_path / f".{target.name}.1@another-machine.abc.tmp"  # a writer on another machine's
    other = tmp_path / f".other.msp.999999999@{socket.gethostname()}.abc.tmp"  # a dead writer's, of another file
    for path in (running, elsewhere, other):
        path.write_text("")
    with atomic_open(target) as out:
        out.write("whole")
    assert target.read_text() == "whole"
    assert sorted(p.name for p in tmp_path.glob(".*.tmp")) == sorted(p.name for p in (running, elsewhere, other))
