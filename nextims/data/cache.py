"""HDF5 caches: content-hash keys, atomic writes, validity checks and per-process lazy readers."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

import nextims
from nextims.io.atomic import atomic_path

# Bump when the attributes or conventions every cache file shares change.
FORMAT_VERSION = 1


def _canonical(obj: Any) -> Any:
    """A JSON-encodable, order-independent stand-in for obj (arrays and bytes by content hash)."""
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((_canonical(v) for v in obj), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "OUS":
            payload = json.dumps(_canonical(obj.tolist()), sort_keys=True).encode("utf-8")
        else:
            payload = np.ascontiguousarray(obj).tobytes()
        return {"__ndarray__": [str(obj.dtype), list(obj.shape), hashlib.sha256(payload).hexdigest()]}
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {"__bytes__": hashlib.sha256(bytes(obj)).hexdigest()}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"cannot hash a {type(obj).__name__} into a cache key")


def content_hash(*parts: Any) -> str:
    """sha256 hex digest of a canonical JSON encoding of parts."""
    text = json.dumps(_canonical(list(parts)), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@contextmanager
def atomic_h5(path: str | Path, cache_key: str | None = None,
              format_version: int = FORMAT_VERSION) -> Iterator[h5py.File]:
    """An h5py.File on a temporary sibling of path, moved over path only when the block succeeds.

    With cache_key, the standard attributes (format_version: the writer's own format) are written first and
    `complete = True` last, so `cache_is_valid(path, cache_key, format_version)` holds exactly for files written
    to the end.
    """
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            if cache_key is not None:
                f.attrs["cache_key"] = cache_key
                f.attrs["format_version"] = format_version
                f.attrs["created_by"] = f"nextims {nextims.__version__}"
                f.attrs["complete"] = False
            yield f
            if cache_key is not None:
                f.attrs["complete"] = True


def append_rows(dataset: h5py.Dataset, block: np.ndarray, axis: int = 0) -> None:
    """Append block to a resizable dataset along axis."""
    start = dataset.shape[axis]
    dataset.resize(start + block.shape[axis], axis=axis)
    index = [slice(None)] * dataset.ndim
    index[axis] = slice(start, None)
    dataset[tuple(index)] = block


def cache_is_valid(path: str | Path, key: str, format_version: int = FORMAT_VERSION) -> bool:
    """True when path is a readable, completely written cache file for key; never raises."""
    try:
        with h5py.File(path, "r") as f:
            attrs = f.attrs
            return (bool(attrs.get("complete", False)) and attrs.get("cache_key") == key
                    and int(attrs.get("format_version", -1)) == format_version)
    except Exception:  # missing, truncated or garbage files all mean "rebuild"
        return False


class H5Reader:
    """A read-only HDF5 file opened lazily in each process (safe in DataLoader workers, picklable)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: h5py.File | None = None
        self._pid: int | None = None

    @property
    def file(self) -> h5py.File:
        """The open file of this process (reopened after a fork)."""
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def __getitem__(self, name: str) -> h5py.Dataset:
        return self.file[name]

    @property
    def attrs(self) -> h5py.AttributeManager:
        """The file's attributes."""
        return self.file.attrs

    def close(self) -> None:
        """Close this process's handle (a later access reopens it)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None
        self._pid = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])

    def __repr__(self) -> str:
        return f"H5Reader({str(self.path)!r})"


class ReopensByPath:
    """Pickles as its `path` alone and is rebuilt from it, so HDF5-backed objects cross process boundaries."""

    path: Any

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])


def file_sha256(path: str | Path, block: int = 1 << 20) -> str:
    """sha256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()
