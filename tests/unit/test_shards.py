"""nextims.shards: shard file names, the blocks of the input each shard takes, and the shard checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from nextims.errors import InputError
from nextims.shards import check_shard, shard_bounds, shard_path, shard_paths


def test_shard_files_are_named_after_the_output_in_shard_order() -> None:
    assert shard_path(Path("out/lib.h5"), 1, 2) == Path("out/lib.shard-01-of-02.h5")
    assert shard_path("lib.msp", 0, 1) == Path("lib.msp")  # one shard: the output itself
    assert shard_paths("lib.h5", 3) == [Path(f"lib.shard-0{i}-of-03.h5") for i in range(3)]
    names = [p.name for p in shard_paths("lib.h5", 120)]
    assert names[7] == "lib.shard-007-of-120.h5" and names == sorted(names)


@pytest.mark.parametrize("count", [0, 1, 5, 9, 512, 1000, 2049])
@pytest.mark.parametrize("shards", [1, 2, 3, 8])
@pytest.mark.parametrize("align", [1, 2, 512])
def test_shards_cover_the_input_once_in_order_in_whole_batches(count: int, shards: int, align: int) -> None:
    bounds = [shard_bounds(count, shard, shards, align) for shard in range(shards)]
    assert bounds[0][0] == 0 and bounds[-1][1] == count
    assert all(bounds[i][1] == bounds[i + 1][0] for i in range(shards - 1))
    assert all(start % align == 0 or start == count for start, _ in bounds)  # empty last shards start at the end
    runs = [-(-(stop - start) // align) for start, stop in bounds]
    assert max(runs) - min(runs) <= 1 and runs == sorted(runs, reverse=True)


def test_shard_checks_name_the_keys() -> None:
    assert check_shard(1, 2) == (1, 2) and check_shard(0, 1) == (0, 1)
    for shard, shards, message in ((2, 2, r"shard=2 shards=2: shard must be an integer in 0\.\.1"),
                                   ("1/2", 2, r"shard=1/2 shards=2"), (True, 2, r"shard=True"),
                                   (0, 0, r"shards=0: give the number of input shards"),
                                   (0, "2", r"shards=2: give the number")):
        with pytest.raises(InputError, match=message):
            check_shard(shard, shards)
