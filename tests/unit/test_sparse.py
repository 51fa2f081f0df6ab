"""Sparse count rows: built from dense blocks, joined, and made dense again exactly, for any rows in any order."""

from __future__ import annotations

import numpy as np

from nextims.data.sparse import SparseCounts


def test_sparse_rows_round_trip_in_any_order() -> None:
    rng = np.random.default_rng(0)
    dense = (rng.random((30, 64)) < 0.1) * rng.integers(1, 9, (30, 64)).astype(np.float32)
    dense[4] = 0  # a row without any count
    sparse = SparseCounts.concat([SparseCounts.from_dense(dense[:7]), SparseCounts.from_dense(dense[7:])], 64)
    assert len(sparse) == 30 and sparse.n_bits == 64 and len(sparse.counts) == np.count_nonzero(dense)
    np.testing.assert_array_equal(sparse.dense(), dense)
    rows = np.array([29, 4, 4, 0, 13])
    out = sparse.dense(rows)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, dense[rows])
    assert sparse.dense(np.array([], dtype=np.int64)).shape == (0, 64)
    assert len(SparseCounts.concat([], 64)) == 0
