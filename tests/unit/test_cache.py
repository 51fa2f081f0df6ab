"""Tests for HDF5 cache keys, atomic writes, validity checks, readers and the feature store."""

import os
import pickle
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import nextims.data.feature_store as feature_store
from nextims.data.sites import fingerprint_and_sites
from nextims.data.cache import H5Reader, atomic_h5, cache_is_valid, content_hash
from nextims.data.feature_store import FeatureStore, build_or_load, features_key
from nextims.data.featurize import MolGraphFeaturizer, count_morgan, mol_from_smiles, nominal_mass
from nextims.errors import RecordError
from tests.conftest import kill_at_marker

IDS = ["ethanol", "benzoic", "methane", "salt", "chlorobutane", "anisole"]
SMILES = ["CCO", "OC(=O)c1ccccc1", "C", "[Na+].[Cl-]", "CCCCCl", "COc1ccccc1"]


def _cache_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("features-*.h5"))


def test_content_hash_is_canonical():
    assert content_hash({"a": 1, "b": [1, 2]}) == content_hash({"b": [1, 2], "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2})
    assert content_hash(np.arange(4)) == content_hash(np.arange(4))
    assert content_hash(np.arange(4)) != content_hash(np.arange(4).astype(np.float32))
    assert content_hash(np.arange(4)) != content_hash(np.arange(4)[::-1])
    assert content_hash(b"abc") != content_hash(b"abd")
    assert content_hash(Path("x/y")) == content_hash("x/y")
    assert content_hash("a", "b") != content_hash("ab")
    assert len(content_hash("a")) == 64
    with pytest.raises(TypeError):
        content_hash(object())


def test_atomic_h5_writes_a_valid_file(tmp_path):
    path = tmp_path / "sub" / "c.h5"
    with atomic_h5(path, cache_key="k1") as f:
        f["values"] = np.arange(5)
        assert not path.exists()
    assert cache_is_valid(path, "k1")
    assert not cache_is_valid(path, "k2")
    with h5py.File(path) as f:
        assert f.attrs["created_by"].startswith("nextims ")
        assert f["values"][:].tolist() == [0, 1, 2, 3, 4]
    assert [p.name for p in path.parent.iterdir()] == ["c.h5"]


def test_atomic_h5_leaves_nothing_on_error(tmp_path):
    path = tmp_path / "c.h5"
    with pytest.raises(RuntimeError):
        with atomic_h5(path, cache_key="k") as f:
            f["values"] = np.arange(5)
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_h5_keeps_the_old_file_on_error(tmp_path):
    path = tmp_path / "c.h5"
    with atomic_h5(path, cache_key="old"):
        pass
    with pytest.raises(RuntimeError), atomic_h5(path, cache_key="new"):
        raise RuntimeError("boom")
    assert cache_is_valid(path, "old")


def test_cache_is_valid_rejects_bad_files(tmp_path):
    assert not cache_is_valid(tmp_path / "missing.h5", "k")
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(2000))
    assert not cache_is_valid(garbage, "k")
    (tmp_path / "folder.h5").mkdir()
    assert not cache_is_valid(tmp_path / "folder.h5", "k")
    incomplete = tmp_path / "incomplete.h5"
    with h5py.File(incomplete, "w") as f:
        f.attrs["cache_key"] = "k"
        f.attrs["format_version"] = 1
    assert not cache_is_valid(incomplete, "k")
    old_format = tmp_path / "old.h5"
    with atomic_h5(old_format, cache_key="k"):
        pass
    assert cache_is_valid(old_format, "k")
    assert not cache_is_valid(old_format, "k", format_version=99)


def test_features_round_trip(tmp_path):
    featurizer = MolGraphFeaturizer()
    features = build_or_load(IDS, SMILES, featurizer, 256, 2, tmp_path, block_size=4)
    assert len(features) == len(IDS) and features.ids == IDS
    assert [p.name for p in _cache_files(tmp_path)] == [f"features-{features.key[:16]}.h5"]
    assert features.key == features_key(IDS, SMILES, featurizer, 256, 2)
    fps = features.fingerprints
    assert fps.dtype == np.float32 and fps.shape == (len(IDS), 256)
    for i, smi in enumerate(SMILES):
        mol = mol_from_smiles(smi)
        assert np.array_equal(fps[i], count_morgan(mol, 256, 2))
        assert np.array_equal(features.fingerprint(i), fps[i])
        assert features.masses[i] == nominal_mass(mol)
        expected, graph = featurizer(mol), features.graph(i)
        for name in ("x", "edge_index", "edge_attr", "frag_mass"):
            assert torch.equal(getattr(graph, name), getattr(expected, name)), (smi, name)
        assert graph.num_nodes == expected.num_nodes
    # the cleavage sites, as the student computes them at prediction time
    stored = features.sites()
    for i, smi in enumerate(SMILES):
        _, expected_sites = fingerprint_and_sites(mol_from_smiles(smi), 256, 2)
        rows = slice(stored.offsets[i], stored.offsets[i + 1])
        for name in ("near", "far", "kind", "mass"):
            assert np.array_equal(getattr(stored, name)[rows], getattr(expected_sites, name)), (smi, name)


def test_store_version_is_part_of_the_key(tmp_path, monkeypatch):
    old = build_or_load(IDS, SMILES, MolGraphFeaturizer(), 256, 2, tmp_path)
    monkeypatch.setattr(feature_store, "STORE_VERSION", feature_store.STORE_VERSION + 1)
    new = build_or_load(IDS, SMILES, MolGraphFeaturizer(), 256, 2, tmp_path)
    assert new.key != old.key and new.path != old.path and len(_cache_files(tmp_path)) == 2


def test_large_counts_are_clipped(tmp_path, monkeypatch):
    real = feature_store.fingerprint_and_sites
    monkeypatch.setattr(feature_store, "fingerprint_and_sites", lambda mol, n_bits, radius: (
        np.array([70000.0, 65535.0, 3.0] + [0.0] * (n_bits - 3)), real(mol, n_bits, radius)[1]))
    features = build_or_load(["a"], ["CCO"], MolGraphFeaturizer(), 64, 2, tmp_path)
    assert features.fingerprints[0, :4].tolist() == [65535.0, 65535.0, 3.0, 0.0]


def test_cache_is_reused(tmp_path, monkeypatch):
    first = build_or_load(IDS, SMILES, MolGraphFeaturizer(), 256, 2, tmp_path)
    mtime = first.path.stat().st_mtime_ns
    calls = []
    monkeypatch.setattr(feature_store, "mol_from_smiles", lambda *a: calls.append(a))
    second = FeatureStore(tmp_path, MolGraphFeaturizer(), 256, 2).build_or_load(IDS, SMILES)
    assert calls == []
    assert second.path == first.path and second.path.stat().st_mtime_ns == mtime
    assert np.array_equal(second.fingerprints, first.fingerprints)


@pytest.mark.parametrize("change", ["smiles", "ids", "explicit_hydrogens", "n_bits", "radius"])
def test_cache_is_rebuilt_when_inputs_change(tmp_path, change):
    base = dict(ids=IDS, smiles=SMILES, featurizer=MolGraphFeaturizer(), n_bits=256, radius=2)
    first = build_or_load(**base, cache_dir=tmp_path)
    changed = dict(base)
    if change == "smiles":
        changed["smiles"] = SMILES[:-1] + ["COc1ccccc1C"]
    elif change == "ids":
        changed["ids"] = IDS[:-1] + ["renamed"]
    elif change == "explicit_hydrogens":
        changed["featurizer"] = MolGraphFeaturizer(explicit_hydrogens=True)
    else:
        changed[change] = base[change] * 2
    second = build_or_load(**changed, cache_dir=tmp_path)
    assert second.key != first.key and second.path != first.path
    assert len(_cache_files(tmp_path)) == 2
    if change == "explicit_hydrogens":
        assert second.graph(0).num_nodes == 9 and first.graph(0).num_nodes == 3


@pytest.mark.parametrize("damage", ["garbage", "incomplete", "truncated"])
def test_damaged_cache_is_rebuilt(tmp_path, damage):
    featurizer = MolGraphFeaturizer()
    good = build_or_load(IDS, SMILES, featurizer, 256, 2, tmp_path)
    expected, path = good.fingerprints, good.path
    good.reader.close()  # HDF5 would otherwise keep serving this process's open copy
    if damage == "garbage":
        path.write_bytes(os.urandom(4096))
    elif damage == "incomplete":
        with h5py.File(path, "a") as f:
            del f.attrs["complete"]
    else:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert not cache_is_valid(path, good.key)
    rebuilt = build_or_load(IDS, SMILES, featurizer, 256, 2, tmp_path)
    assert cache_is_valid(rebuilt.path, good.key)
    assert np.array_equal(rebuilt.fingerprints, expected)


def test_bad_smiles_raises_record_error(tmp_path):
    with pytest.raises(RecordError) as info:
        build_or_load(["ok", "broken"], ["CCO", "C1CC"], MolGraphFeaturizer(), 64, 2, tmp_path)
    assert info.value.record == "broken" and info.value.reason == "bad_smiles"
    assert list(tmp_path.iterdir()) == []


_SLOW_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from nextims.data.feature_store import build_or_load
    from nextims.data.featurize import MolGraphFeaturizer

    cache_dir, marker = Path(sys.argv[1]), Path(sys.argv[2])
    ids = [f"c{i}" for i in range(400)]
    smiles = ["CCO", "c1ccccc1Cl", "CC(=O)OC"] * 133 + ["C"]

    def on_block(done, total):
        marker.write_text(str(done))
        time.sleep(0.5)

    build_or_load(ids, smiles, MolGraphFeaturizer(), 512, 2, cache_dir, block_size=10, on_block=on_block)
""")


def test_killed_writer_leaves_no_usable_cache(tmp_path):
    cache_dir, marker = tmp_path / "cache", tmp_path / "marker"
    kill_at_marker(_SLOW_WRITER, [str(cache_dir), str(marker)], marker, "wrote a block")
    assert _cache_files(cache_dir) == []
    assert len(list(cache_dir.glob(".features-*.tmp"))) == 1  # the killed writer's partial file

    ids = [f"c{i}" for i in range(400)]
    smiles = ["CCO", "c1ccccc1Cl", "CC(=O)OC"] * 133 + ["C"]
    features = build_or_load(ids, smiles, MolGraphFeaturizer(), 512, 2, cache_dir, block_size=100)
    assert cache_is_valid(features.path, features.key)
    assert len(features) == 400 and features.masses[-1] == 16
    assert not list(cache_dir.glob(".*.tmp"))  # the killed writer's file is removed by the next write
    whole = build_or_load(ids, smiles, MolGraphFeaturizer(), 512, 2, tmp_path / "uninterrupted", block_size=100)
    assert np.array_equal(features.fingerprints, whole.fingerprints)
    assert np.array_equal(features.masses, whole.masses)


class _Rows(Dataset):
    """Rows of an HDF5 dataset, read through a lazily opened reader."""

    def __init__(self, path: Path) -> None:
        self.reader = H5Reader(path)

    def __len__(self) -> int:
        return self.reader["values"].shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(self.reader["values"][i]), os.getpid()


def test_h5_reader_in_dataloader_workers(tmp_path):
    path = tmp_path / "rows.h5"
    values = np.arange(64 * 3, dtype=np.float32).reshape(64, 3)
    with atomic_h5(path, cache_key="rows") as f:
        f["values"] = values
    dataset = _Rows(path)
    assert len(dataset) == 64  # opens the file in this process before the workers start
    state = pickle.loads(pickle.dumps(dataset.reader))
    assert state.path == path and state._file is None
    loader = DataLoader(dataset, batch_size=4, num_workers=2, shuffle=False)
    rows, pids = zip(*loader)
    assert np.array_equal(torch.cat(rows).numpy(), values)
    worker_pids = set(torch.cat(pids).tolist())
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids
    dataset.reader.close()


def test_feature_set_pickles_without_its_file_handle(tmp_path):
    features = build_or_load(IDS, SMILES, MolGraphFeaturizer(), 128, 2, tmp_path)
    features.graph(0)
    copy = pickle.loads(pickle.dumps(features))  # an h5py handle would refuse to pickle
    assert copy.reader.file is not features.reader.file
    assert torch.equal(copy.graph(1).x, features.graph(1).x)


def test_features_built_in_worker_processes_equal_those_of_one_process(tmp_path):
    ids = [f"c{i}" for i in range(90)]
    smiles = ["CCO", "c1ccccc1Cl", "CC(=O)OC", "C1CCNCC1C(=O)O", "BrC=CBr"] * 18
    one = build_or_load(ids, smiles, MolGraphFeaturizer(), 512, 2, tmp_path / "one", block_size=16)
    two = build_or_load(ids, smiles, MolGraphFeaturizer(), 512, 2, tmp_path / "two", block_size=16, workers=2)
    assert one.key == two.key
    for name in ("fingerprints", "mass", "x", "edge_index", "edge_attr", "frag_mass", "atom_offsets", "edge_offsets",
                 "site_near", "site_far", "site_kind", "site_mass", "site_offsets"):
        assert np.array_equal(one.reader[name][:], two.reader[name][:]), name
