"""Device choice, seeding and thread settings."""

from __future__ import annotations

import contextlib
import os
import random
import resource
import sys
from collections.abc import Iterator

import numpy as np
import torch


# `workers=auto` starts no more preparation processes than this: beyond it the main process (model, writing)
# is the bottleneck.
MAX_AUTO_WORKERS = 8


def select_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_threads(num_threads: int | None) -> None:
    """Set torch's CPU thread count when given."""
    if num_threads:
        torch.set_num_threads(int(num_threads))


def worker_count(workers: int | str) -> int:
    """The preparation processes that `workers` asks for: `auto` = one per CPU this process may use, at most
    MAX_AUTO_WORKERS; 0 or 1 = none, molecules are prepared in the main process."""
    if workers != "auto":
        return int(workers)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(cpus, MAX_AUTO_WORKERS)


def thread_count(threads: int | str | None, workers: int) -> int | None:
    """torch's thread count for the model that `num_threads` asks for: `auto` = 1 when worker processes
    prepare the molecules (they need the CPUs), else torch's default (None)."""
    if threads == "auto":
        return 1 if workers > 1 else None
    return int(threads) if threads else None


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to `threads` (None: left alone) for the duration."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def peak_rss_gb() -> float:
    """The peak resident memory of this process so far, in GB (10^9 bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak * (1 if sys.platform == "darwin" else 1024) / 1e9
