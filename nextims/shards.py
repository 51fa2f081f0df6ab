"""Input shards of a library-scale prediction: `predict shard=i shards=n` predicts the i-th of n contiguous blocks
of the input's molecules into its own file, `<output stem>.shard-<i>-of-<n><suffix>` (e.g. lib.shard-00-of-02.h5),
and `python -m nextims.search.merge output=<output> shards=n` joins the shard indexes in shard order, which is
input order: the merged index holds the rows a single run writes, in the same order.

Blocks are contiguous by input position (a record the reader could not use counts as a position too) and start at
a multiple of predict's batch_size, so every shard cuts its molecules into the batches a single run makes: the
model sees the same batches and the merged index equals a single run's bit for bit (same batch_size). The count
comes from one reading pass over the input before the shard's own, far cheaper than predicting.
"""

from __future__ import annotations

from pathlib import Path

from nextims.errors import InputError


def check_shard(shard: object, shards: object) -> tuple[int, int]:
    """(shard, shards) as integers, or InputError naming the keys when shards < 1 or shard is not in 0..shards-1."""
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise InputError(f"shards={shards}: give the number of input shards, an integer >= 1")
    if isinstance(shard, bool) or not isinstance(shard, int) or not 0 <= shard < shards:
        raise InputError(f"shard={shard} shards={shards}: shard must be an integer in 0..{shards - 1} (shards are "
                         f"numbered from 0; run them all with -m 'shard=range({shards})')")
    return shard, shards


def shard_path(output: str | Path, shard: int, shards: int) -> Path:
    """The file shard `shard` of `shards` writes for output (output itself when shards is 1)."""
    output = Path(output)
    if shards == 1:
        return output
    width = max(2, len(str(shards)))
    return output.with_name(f"{output.stem}.shard-{shard:0{width}d}-of-{shards:0{width}d}{output.suffix}")


def shard_paths(output: str | Path, shards: int) -> list[Path]:
    """The files of all `shards` shards of output, in shard (= input) order."""
    return [shard_path(output, shard, shards) for shard in range(shards)]


def shard_bounds(count: int, shard: int, shards: int, align: int = 1) -> tuple[int, int]:
    """The input positions [start, stop) of shard `shard` of `shards` over `count` molecules: contiguous blocks of
    whole runs of `align` positions (predict's batches, so that a shard batches its molecules as a single run
    does), as even as that allows (the first shards take one run more)."""
    base, extra = divmod(-(-count // align), shards)

    def edge(i: int) -> int:
        return min(count, (i * base + min(i, extra)) * align)

    return edge(shard), edge(shard + 1)
