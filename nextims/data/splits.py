"""Deterministic, compound-disjoint train/val/test splits (hash, scaffold and fixed key lists)."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rdkit.Chem.Scaffolds import MurckoScaffold

from nextims.data.featurize import mol_from_smiles
from nextims.io.text import open_binary

SPLIT_NAMES = ("train", "val", "test")


def inchikey_block(inchikey: str) -> str:
    """The connectivity block of an InChIKey (first 14 characters, upper-case)."""
    return inchikey.strip()[:14].upper()


def _unit_hash(text: str) -> float:
    """A deterministic number in [0, 1) from text."""
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) / 2**32


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    """fractions as an array, checked to be three non-negative numbers summing to 1."""
    f = np.asarray(fractions, dtype=np.float64)
    if f.shape != (3,) or np.any(f < 0) or not np.isclose(f.sum(), 1.0):
        raise ValueError(f"split fractions must be 3 non-negative numbers summing to 1, got {fractions}")
    return f


def hash_split(keys: Sequence[str], fractions: Sequence[float] = (0.8, 0.1, 0.1),
               salt: str = "nextims") -> np.ndarray:
    """'train'/'val'/'test' per key from a salted hash of the key alone (same key, same split)."""
    bounds = np.cumsum(_check_fractions(fractions))[:2]
    return np.array(SPLIT_NAMES)[np.searchsorted(bounds, _buckets(keys, salt), side="right")]


def _buckets(keys: Sequence[str], salt: str) -> np.ndarray:
    """Per key, its salted hash in [0, 1) (hashed once per distinct key)."""
    unique, inverse = np.unique(np.asarray(keys, dtype=str), return_inverse=True)
    return np.array([_unit_hash(salt + key) for key in unique], dtype=np.float64)[inverse.reshape(-1)]


def train_subset(split: np.ndarray, keys: Sequence[str], fraction: float, salt: str = "nextims-subset") -> np.ndarray:
    """split with only `fraction` of its train keys left as 'train' (by a salted hash of the key, so a smaller
    fraction keeps a subset of a larger one); the others become 'unused'. Validation and test stay as they are."""
    if not 0 < fraction <= 1:
        raise ValueError(f"train fraction (bde_data.train_fraction) must be in (0, 1], got {fraction}")
    if fraction == 1:
        return split
    return np.where((split == "train") & (_buckets(keys, salt) >= fraction), "unused", split)


def murcko_scaffold(smiles: str, record: str = "?") -> str:
    """Bemis-Murcko scaffold SMILES (empty for acyclic molecules); RecordError on bad SMILES."""
    return MurckoScaffold.MurckoScaffoldSmiles(mol=mol_from_smiles(smiles, record), includeChirality=False)


def scaffold_split(smiles: Sequence[str], keys: Sequence[str],
                   fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> np.ndarray:
    """Balanced scaffold split: compounds grouped by scaffold, every scaffold in exactly one split.

    Sizes count unique compounds. Scaffold groups larger than half the val or test size go to train
    first; the rest fill train, then val, then test in the order of a hash of the scaffold string.
    A compound whose records have different SMILES takes the smallest of their scaffolds.
    """
    f = _check_fractions(fractions)
    if len(smiles) != len(keys):
        raise ValueError(f"{len(smiles)} SMILES but {len(keys)} keys")
    scaffold_of: dict[str, str] = {}
    for smi, key in dict.fromkeys(zip(smiles, keys)):
        scaffold = murcko_scaffold(smi, key)
        scaffold_of[key] = min(scaffold, scaffold_of.get(key, scaffold))
    groups: dict[str, list[str]] = defaultdict(list)
    for key, scaffold in scaffold_of.items():
        groups[scaffold].append(key)

    n = len(scaffold_of)
    capacity = {"train": f[0] * n, "val": f[1] * n, "test": f[2] * n}
    big = max(capacity["val"], capacity["test"]) / 2
    ordered = sorted(groups, key=lambda s: (len(groups[s]) <= big, _unit_hash(s), s))
    filled = dict.fromkeys(SPLIT_NAMES, 0)
    split_of_key: dict[str, str] = {}
    for scaffold in ordered:
        size = len(groups[scaffold])
        target = next((name for name in SPLIT_NAMES if filled[name] + size <= capacity[name] + 1e-9),
                      min(SPLIT_NAMES, key=lambda name: filled[name] - capacity[name]))
        filled[target] += size
        split_of_key.update(dict.fromkeys(groups[scaffold], target))
    return np.array([split_of_key[key] for key in keys], dtype="<U5")


def read_key_list(path: str | Path) -> set[str]:
    """InChIKey connectivity blocks from a file, plain or compressed (one key per line; blank lines and '#'
    comments skipped)."""
    with open_binary(path) as fh:
        text = fh.read().decode("utf-8")
    blocks = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            blocks.add(inchikey_block(line))
    return blocks


def list_split(keys: Sequence[str], test_keys: set[str], val_keys: set[str]) -> np.ndarray:
    """'test' for keys in test_keys, else 'val' for keys in val_keys, else 'train' (by first block)."""
    test = {inchikey_block(k) for k in test_keys}
    val = {inchikey_block(k) for k in val_keys}
    out = []
    for key in keys:
        block = inchikey_block(key)
        out.append("test" if block in test else "val" if block in val else "train")
    return np.array(out, dtype="<U5")


def split_counts(splits: Sequence[str], keys: Sequence[str]) -> dict[str, dict[str, int]]:
    """Number of records and unique compounds per split."""
    splits = np.asarray(splits, dtype=str)
    keys = np.asarray(keys, dtype=str)
    return {
        name: {"records": int(np.sum(splits == name)), "compounds": len(set(keys[splits == name]))}
        for name in SPLIT_NAMES
    }
