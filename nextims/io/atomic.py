"""Atomic file writes: a temporary sibling, renamed into place with the mode a plain `open()` would give it."""

from __future__ import annotations

import contextlib
import glob
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from nextims.errors import InputError


def current_umask() -> int:
    """The process's umask (read from /proc where the kernel shows it, else set and restored at once)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The permissions `open(path, "w")` gives a new file: 0o666 less the umask (0o644 under umask 022)."""
    return 0o666 & ~current_umask()


def _owner() -> str:
    """`<pid>@<host>`: who writes a temporary file (its name carries it, so a later run can tell it was left)."""
    return f"{os.getpid()}@{socket.gethostname()}"


def _alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporary siblings of path that writers on this machine left when they were killed (their
    process is gone); returns them. Another machine's (on a shared folder) and running writers' stay."""
    path = Path(path)
    removed = []
    host = socket.gethostname()
    for name in glob.glob(glob.escape(str(path.parent / f".{path.name}.")) + "*@*.tmp"):
        owner = Path(name).name[len(path.name) + 2:-len(".tmp")].rsplit(".", 1)[0]
        pid, _, owner_host = owner.partition("@")
        if owner_host == host and pid.isdigit() and not _alive(int(pid)):
            Path(name).unlink(missing_ok=True)
            removed.append(Path(name))
    return removed


@contextlib.contextmanager
def atomic_path(path: str | Path, fsync: bool = True) -> Iterator[Path]:
    """A temporary sibling of path for the block to write; moved over path when the block succeeds, removed
    when it fails.

    The temporary file (`.<name>.<pid>@<host>.<random>.tmp`, made private by mkstemp) gets the mode a plain
    `open()` would have given path before it is renamed, so what is written honours the umask; with fsync its
    content reaches the disk before the rename. Temporaries of path that killed writers left are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.{_owner()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as raw:
                os.fsync(raw.fileno())
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", fsync: bool = True, **kwargs: Any) -> Iterator[IO[Any]]:
    """open() on a temporary sibling of path (text or bytes as mode says), moved over path as atomic_path does."""
    if mode not in ("w", "wb", "wt"):
        raise ValueError(f"atomic_open writes a new file: mode 'w', 'wt' or 'wb', not {mode!r}")
    with atomic_path(path, fsync) as tmp, open(tmp, mode, **kwargs) as handle:
        yield handle


def write_text_atomic(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write text to path atomically (umask-honouring mode); returns path."""
    with atomic_open(path, "w", encoding=encoding, newline="\n") as out:
        out.write(text)
    return Path(path)


def check_output_file(output: Path, suffixes: tuple[str, ...], wanted: str) -> None:
    """Refuse an output path with another suffix than `suffixes` or that is a folder (InputError saying `wanted`),
    and create its folder (InputError when that fails)."""
    if output.suffix.lower() not in suffixes:
        raise InputError(f"output={output}: use {wanted}")
    if output.is_dir():
        raise InputError(f"output={output}: is a folder; give {wanted}")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"output={output}: cannot create the folder {output.parent} ({err.strerror})") from None
