"""The compact in-memory graphs of a features cache: lossless row codes and batches equal to Batch.from_data_list."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from nextims.data.feature_store import build_or_load
from nextims.data.featurize import MolGraphFeaturizer
from nextims.data.graph_store import RowCodes

IDS = ["ethanol", "benzoic", "methane", "chlorobutane", "anisole", "ethanol2", "pyridine"]
SMILES = ["CCO", "OC(=O)c1ccccc1", "C", "CCCCCl", "COc1ccccc1", "OCC", "c1ccncc1"]


@pytest.mark.parametrize("block", [1, 3, 100])
def test_row_codes_give_back_every_row_exactly(block: int) -> None:
    rows = np.array([[0.0, 1.0], [0.5, 0.0], [0.0, 1.0], [-0.0, 1.0], [0.5, 0.0], [np.pi, 2.0]], np.float32)
    codes = RowCodes.encode(rows, block=block)
    assert codes.table.dtype == np.float32 and codes.codes.dtype == np.int32
    assert np.array_equal(codes[np.arange(len(rows))].view(np.uint32), rows.view(np.uint32))  # bit for bit
    assert len(codes.table) == 4  # -0.0 differs from 0.0 in its bits, so it keeps its own row
    assert codes[np.array([5, 0])].tolist() == rows[[5, 0]].tolist()


def test_batches_equal_batch_from_data_list(tmp_path) -> None:
    features = build_or_load(IDS, SMILES, MolGraphFeaturizer(), 256, 2, tmp_path, block_size=3)
    graphs = features.graph_arrays
    assert len(graphs) == len(IDS)
    for molecules in ([0], [3, 1, 1, 6], [2, 5, 0, 4], list(range(len(IDS)))):
        got = graphs.batch(np.array(molecules))
        expected = Batch.from_data_list([features.graph(i) for i in molecules])
        for name in ("x", "edge_index", "edge_attr", "frag_mass", "batch", "ptr"):
            assert getattr(got, name).dtype == getattr(expected, name).dtype, name
            assert torch.equal(getattr(got, name), getattr(expected, name)), (molecules, name)
        assert got.num_graphs == expected.num_graphs == len(molecules)


def test_a_hash_collision_falls_back_to_comparing_bytes(monkeypatch) -> None:
    import nextims.data.graph_store as graph_store

    monkeypatch.setattr(graph_store, "_row_hashes", lambda rows: np.zeros(len(rows), np.uint64))  # all collide
    rows = np.array([[1, 2, 3], [4, 5, 6], [1, 2, 3], [7, 8, 9]], np.int16)  # 6 bytes a row: hashed by bytes
    for block in (1, 2, 4):
        codes = RowCodes.encode(rows, block=block)
        assert np.array_equal(codes[np.arange(4)], rows), block
