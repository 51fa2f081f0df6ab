"""Chunks of work mapped over a pool of worker processes, results in input order, a bounded window ahead."""

from __future__ import annotations

import itertools
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(func: Callable[[T], R], chunks: Iterable[T], workers: int = 0, start_method: str | None = None,
                ahead: int = 2) -> Iterator[R]:
    """func of each chunk, in input order. With workers > 1 a pool of that many processes (started by start_method;
    None: the platform's default) runs func, at most `ahead` chunks per worker ahead of the consumer, so memory
    stays bounded however long the input; an input of a single chunk is done in this process."""
    iterator = iter(chunks)
    head = list(itertools.islice(iterator, 2))
    if workers <= 1 or len(head) < 2:
        yield from map(func, itertools.chain(head, iterator))
        return
    # Pool.imap would read the whole input ahead; a window of pending chunks keeps memory bounded.
    with multiprocessing.get_context(start_method).Pool(workers) as pool:
        pending: deque = deque()
        for chunk in itertools.chain(head, iterator):
            pending.append(pool.apply_async(func, (chunk,)))
            if len(pending) > ahead * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of `size` items (the last may be shorter)."""
    iterator = iter(items)
    return iter(lambda: list(itertools.islice(iterator, size)), [])
