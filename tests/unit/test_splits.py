"""Tests for compound-disjoint hash, scaffold and key-list splits."""

import hashlib

import numpy as np
import pytest

from nextims.data.splits import (
    hash_split,
    inchikey_block,
    list_split,
    murcko_scaffold,
    read_key_list,
    scaffold_split,
    split_counts,
    train_subset,
)


def _synthetic_keys(n: int) -> list[str]:
    """n distinct InChIKey-like connectivity blocks."""
    return [hashlib.md5(str(i).encode()).hexdigest()[:14].upper() for i in range(n)]


def test_inchikey_block():
    assert inchikey_block("lfqscwfljhtthz-uhfffaoysa-n") == "LFQSCWFLJHTTHZ"
    assert inchikey_block("LFQSCWFLJHTTHZ") == "LFQSCWFLJHTTHZ"


def test_hash_split_fractions_and_determinism():
    keys = _synthetic_keys(5000)
    splits = hash_split(keys)
    assert set(splits) == {"train", "val", "test"}
    for name, fraction in [("train", 0.8), ("val", 0.1), ("test", 0.1)]:
        assert abs(np.mean(splits == name) - fraction) < 0.02
    assert np.array_equal(splits, hash_split(keys))
    assert not np.array_equal(splits, hash_split(keys, salt="other"))


def test_hash_split_key_alone_decides():
    keys = _synthetic_keys(2000)
    full = dict(zip(keys, hash_split(keys)))
    subset = keys[::7][::-1]
    assert [full[k] for k in subset] == list(hash_split(subset))


def test_hash_split_is_compound_disjoint():
    keys = _synthetic_keys(500)
    records = [keys[i % 500] for i in range(3000)]  # six records per compound
    splits = hash_split(records)
    for key in keys:
        assert len({s for r, s in zip(records, splits) if r == key}) == 1
    counts = split_counts(splits, records)
    assert sum(c["records"] for c in counts.values()) == 3000
    assert sum(c["compounds"] for c in counts.values()) == 500


def test_hash_split_rejects_bad_fractions():
    with pytest.raises(ValueError):
        hash_split(["A"], fractions=(0.5, 0.2, 0.2))


def test_hash_split_of_nothing():
    assert hash_split([]).shape == (0,)


def _scaffold_library() -> tuple[list[str], list[str]]:
    """SMILES and compound keys: many scaffolds decorated with several side chains, some acyclic."""
    rings = ["c1ccccc1", "C1CCCCC1", "c1ccncc1", "c1ccoc1", "C1CCNCC1", "c1ccc2ccccc2c1",
             "c1ccsc1", "C1CCOC1", "c1cnccn1", "C1CC1", "c1ccc(-c2ccccc2)cc1", "C1CCC1"]
    chains = ["C", "CC", "CCC", "CO", "CN", "ClC", "C(=O)O", "OC", "CCCC", "N#C"]
    smiles = [f"{chain}{ring}" for ring in rings for chain in chains]
    smiles += ["C" * n for n in range(1, 15)] + ["C" * n + "O" for n in range(1, 15)]
    return smiles, [f"K{i:04d}" for i in range(len(smiles))]


def test_scaffold_split_keeps_each_scaffold_in_one_split():
    smiles, keys = _scaffold_library()
    records_smiles, records_keys = smiles * 2, keys * 2  # two records per compound
    splits = scaffold_split(records_smiles, records_keys, fractions=(0.6, 0.2, 0.2))
    by_scaffold: dict[str, set[str]] = {}
    for smi, split in zip(records_smiles, splits):
        by_scaffold.setdefault(murcko_scaffold(smi), set()).add(split)
    assert all(len(s) == 1 for s in by_scaffold.values())
    assert by_scaffold[""] == {"train"}  # the big acyclic group
    assert len(set(splits)) == 3
    assert np.array_equal(splits, scaffold_split(records_smiles, records_keys, (0.6, 0.2, 0.2)))
    counts = split_counts(splits, records_keys)
    n, group = len(keys), 10  # ring scaffolds carry 10 compounds each
    for name, fraction in [("train", 0.6), ("val", 0.2), ("test", 0.2)]:
        assert abs(counts[name]["compounds"] - fraction * n) <= group
        assert counts[name]["records"] == 2 * counts[name]["compounds"]


def test_scaffold_split_does_not_depend_on_record_order():
    smiles, keys = _scaffold_library()
    order = np.random.default_rng(0).permutation(len(keys))
    splits = dict(zip(keys, scaffold_split(smiles, keys)))
    shuffled = scaffold_split([smiles[i] for i in order], [keys[i] for i in order])
    assert [splits[keys[i]] for i in order] == list(shuffled)


def test_read_key_list_and_list_split(tmp_path):
    path = tmp_path / "test_keys.txt"
    path.write_text("# NEIMS test set\nLFQSCWFLJHTTHZ-UHFFFAOYSA-N\n\n  QTBSBXVTEAMEQO-UHFFFAOYSA-N  # ok\n")
    test_keys = read_key_list(path)
    assert test_keys == {"LFQSCWFLJHTTHZ", "QTBSBXVTEAMEQO"}
    keys = ["LFQSCWFLJHTTHZ-UHFFFAOYSA-N", "lfqscwfljhtthz-XXXXXXXXXX-N", "OKKJLVBELUTLKV-UHFFFAOYSA-N",
            "XLYOFNOQVPJJNP-UHFFFAOYSA-N", "QTBSBXVTEAMEQO-UHFFFAOYSA-N"]
    val_keys = {"OKKJLVBELUTLKV-UHFFFAOYSA-N", "QTBSBXVTEAMEQO-UHFFFAOYSA-N"}
    assert list(list_split(keys, test_keys, val_keys)) == ["test", "test", "val", "train", "test"]


def test_read_key_list_reads_compressed_files(tmp_path):
    import lzma

    path = tmp_path / "keys.txt.xz"
    path.write_bytes(lzma.compress(b"LFQSCWFLJHTTHZ-UHFFFAOYSA-N\n"))
    assert read_key_list(path) == {"LFQSCWFLJHTTHZ"}


def test_method_lists_reads_the_bundled_neims_lists_by_default(compose_cfg):
    from omegaconf import OmegaConf

    from nextims.data.spectra import load_spectra
    from nextims.resources import bundled_data_dir

    cfg = compose_cfg(["data=tiny", "data.split.method=lists"])
    test, val = read_key_list(cfg.data.split.test_list), read_key_list(cfg.data.split.val_list)
    assert cfg.data.split.test_list.startswith(str(bundled_data_dir() / "neims_splits"))
    assert (len(test), len(val)) == (11501, 11502)  # connectivity blocks of 11,600 and 11,599 InChIKeys
    data = load_spectra(OmegaConf.to_container(cfg.data, resolve=True))
    for name, keys in (("test", test), ("val", val - test)):
        assert {k for k, s in zip(data.compound_keys, data.compound_split) if s == name} <= keys


def test_train_subset_keeps_nested_shares_of_train_and_leaves_val_and_test() -> None:
    keys = _synthetic_keys(4000)
    split = hash_split(keys, fractions=(0.8, 0.1, 0.1))
    half, tenth = train_subset(split, keys, 0.5), train_subset(split, keys, 0.1)
    train = split == "train"
    assert np.count_nonzero(half == "train") == pytest.approx(0.5 * train.sum(), rel=0.1)
    assert np.count_nonzero(tenth == "train") == pytest.approx(0.1 * train.sum(), rel=0.2)
    assert set(half[train]) == {"train", "unused"} and np.array_equal(half[~train], split[~train])
    assert np.all(half[tenth == "train"] == "train")  # the smaller share is inside the larger
    assert train_subset(split, keys, 1.0) is split
    with pytest.raises(ValueError, match="train fraction"):
        train_subset(split, keys, 0.0)
