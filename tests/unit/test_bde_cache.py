"""BDE cache: round trip, bond order, invalidation, a killed writer leaves nothing used, DataLoader workers."""

from __future__ import annotations

import logging

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from rdkit import Chem
from torch.utils.data import DataLoader, Dataset

from nextims.data.bde_graphs import BDE_FEATURIZER, PackedGraphs, featurizer_signature, mol_arrays
from nextims.data.cache import cache_is_valid
from nextims.models.bondnet import BondNet, predict_bonds
from nextims.models.weights import save_weights
from nextims.phases.bde_cache import BDE_CACHE_VERSION, BDECache, build_cache, cache_key, ensure_cache

IDS = ["ETHANOL", "BROMOBENZENE", "SILANE", "ACETAMIDE"]
SMILES = ["CCO", "Brc1ccccc1", "C[Si](C)(C)C", "CC(N)=O"]
CONFIG = {"_target_": "nextims.models.bondnet.BondNet", "name": "bondnet", "atom_dim": BDE_FEATURIZER.atom_dim,
          "bond_dim": BDE_FEATURIZER.bond_dim, "hidden_dim": 16, "num_layers": 2, "readout_dim": 16, "dropout": 0.0}


def tiny_model(seed: int = 0) -> BondNet:
    torch.manual_seed(seed)
    model = BondNet(**{k: v for k, v in CONFIG.items() if k not in ("_target_", "name")})
    train = PackedGraphs.pack([mol_arrays(Chem.MolFromSmiles(s)) for s in ("CCO", "CCBr", "CC(N)C")])
    model.set_domain(train.elements, train.bond_type)
    return model.eval()


def save_model(path: Path, seed: int = 0) -> Path:
    card = {"model": CONFIG, "task": "bde", "featurizer": featurizer_signature()}
    return save_weights(tiny_model(seed), path, card, precision="float16")


def build(tmp_path: Path, model: BondNet) -> tuple[Path, dict]:
    key, data_hash = cache_key("model-sha", IDS, SMILES)
    path = tmp_path / f"bde-{key[:16]}.h5"
    return path, build_cache(model, "model-sha", IDS, SMILES, path, key, data_hash, batch_size=2)


def test_round_trip_in_rdkit_bond_order(tmp_path: Path) -> None:
    model = tiny_model()
    path, report = build(tmp_path, model)
    key, _ = cache_key("model-sha", IDS, SMILES)
    assert cache_is_valid(path, key, format_version=BDE_CACHE_VERSION)
    cache = BDECache(path)
    assert cache.ids == IDS and cache.attrs["units"] == "kcal/mol" and cache.attrs["model_hash"] == "model-sha"
    graphs = PackedGraphs.pack([mol_arrays(Chem.MolFromSmiles(s)) for s in SMILES])
    expected, flags = predict_bonds(model, graphs, np.arange(4))
    for i, (cid, smi) in enumerate(zip(IDS, SMILES)):
        rows = graphs.bond_rows(np.array([i]))
        np.testing.assert_allclose(cache[cid], expected[rows, 0], atol=1e-5)
        np.testing.assert_allclose(cache.bdfe(cid), expected[rows, 1], atol=1e-5)
        mol = Chem.MolFromSmiles(smi)
        bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in Chem.AddHs(mol).GetBonds()]
        assert [tuple(p) for p in cache.bond_atoms(cid).tolist()] == bonds
        values, flagged = cache.bonds(cid)
        assert len(values) == len(flagged) == len(bonds) and np.isfinite(values).all()
    silane = cache.flagged("SILANE")
    assert silane[:4].all() and not silane[4:].any()  # the Si bonds are out of domain, the C-H bonds are not
    assert report["bonds"] == report["bonds_covered"] == int(graphs.num_bonds.sum())
    assert report["molecules_with_flagged_elements"] == 1 and report["flagged_elements"] == ["Si"]
    assert report["molecules_with_flagged_bond_types"] == 2  # bromobenzene (aromatic), acetamide (C=O)
    with pytest.raises(KeyError, match="NOPE"):
        cache["NOPE"]


class Reads(Dataset):
    def __init__(self, cache: BDECache) -> None:
        self.cache = cache

    def __len__(self) -> int:
        return len(self.cache.ids)

    def __getitem__(self, i: int) -> tuple[int, float, int]:
        values = self.cache[self.cache.ids[i]]
        return os.getpid(), float(values.sum()), len(values)


def test_reads_from_dataloader_workers(tmp_path: Path) -> None:
    path, _ = build(tmp_path, tiny_model())
    cache = BDECache(path)
    expected = [(float(cache[c].sum()), len(cache[c])) for c in IDS]
    loader = DataLoader(Reads(cache), batch_size=None, num_workers=2, multiprocessing_context="fork")
    got = list(loader)
    assert [(pytest.approx(s, rel=1e-6), n) for _, s, n in got] == expected
    assert all(pid != os.getpid() for pid, _, _ in got)


KILLED_WRITER = """
import os, signal, sys
from tests.unit.test_bde_cache import IDS, SMILES, tiny_model
from nextims.phases.bde_cache import build_cache
path, key = sys.argv[1], sys.argv[2]
build_cache(tiny_model(), "model-sha", IDS, SMILES, __import__("pathlib").Path(path), key, "data", batch_size=1,
            on_batch=lambda done, total: os.kill(os.getpid(), signal.SIGKILL) if done == 2 else None)
"""


def test_killed_writer_leaves_nothing_that_is_used(tmp_path: Path) -> None:
    key, data_hash = cache_key("model-sha", IDS, SMILES)
    path = tmp_path / f"bde-{key[:16]}.h5"
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED_WRITER), str(path), key], cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    assert not path.exists()
    leftovers = list(tmp_path.glob(".*.tmp"))
    assert leftovers and not cache_is_valid(leftovers[0], key, format_version=BDE_CACHE_VERSION)
    build_cache(tiny_model(), "model-sha", IDS, SMILES, path, key, data_hash)
    assert cache_is_valid(path, key, format_version=BDE_CACHE_VERSION) and len(BDECache(path)) == 4
    assert not list(tmp_path.glob(".*.tmp"))  # the killed writer's file is removed by the next write
    whole = tmp_path / "uninterrupted" / path.name
    build_cache(tiny_model(), "model-sha", IDS, SMILES, whole, key, data_hash)
    resumed, fresh = BDECache(path), BDECache(whole)
    for compound in IDS:
        assert np.array_equal(resumed[compound], fresh[compound]), compound


def test_ensure_cache_reuses_and_rebuilds(compose_cfg, tmp_path: Path, caplog) -> None:
    def said() -> str:  # what the phase logged since the last call
        text = caplog.text
        caplog.clear()
        return text

    caplog.set_level(logging.INFO, logger="nextims")
    weights = save_model(tmp_path / "bde_a")
    cfg = compose_cfg(["data=tiny", "phase=bde_cache", "tracking=none", f"ckpt_path={weights}"])
    first = ensure_cache(cfg)
    assert "built BDE cache" in said()
    stamp = first.stat().st_mtime_ns
    assert ensure_cache(cfg) == first and first.stat().st_mtime_ns == stamp
    assert "reusing BDE cache" in said()
    save_model(tmp_path / "bde_a", seed=1)  # same file name, new weights
    second = ensure_cache(cfg)
    assert second != first and "built BDE cache" in said()
    cache = BDECache(second)
    assert cache.attrs["data_hash"] == BDECache(first).attrs["data_hash"]
    assert cache.attrs["model_hash"] != BDECache(first).attrs["model_hash"]
    assert cache_key("m", IDS, SMILES)[0] != cache_key("m", IDS[:3], SMILES[:3])[0]  # other compounds, other key
