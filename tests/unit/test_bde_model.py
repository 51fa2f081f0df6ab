"""BondNet: one value per bond, batch independence, self-contained standardisation, domain flags, saving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from rdkit import Chem

from nextims.data.bde_graphs import BDE_FEATURIZER, PackedGraphs, featurizer_signature, mol_arrays
from nextims.models.bondnet import BondNet, load_bondnet, predict_bonds
from nextims.models.weights import save_weights
from nextims.phases.bde import masked_loss

SMILES = ["CCO", "c1ccccc1Br", "CC(=O)N", "FC(F)(F)CS"]
CONFIG = {"_target_": "nextims.models.bondnet.BondNet", "name": "bondnet", "atom_dim": BDE_FEATURIZER.atom_dim,
          "bond_dim": BDE_FEATURIZER.bond_dim, "hidden_dim": 16, "num_layers": 2, "readout_dim": 16, "dropout": 0.0}


def packed(smiles: list[str]) -> PackedGraphs:
    return PackedGraphs.pack([mol_arrays(Chem.MolFromSmiles(s)) for s in smiles])


def model() -> BondNet:
    torch.manual_seed(0)
    kwargs = {k: v for k, v in CONFIG.items() if k not in ("_target_", "name")}
    return BondNet(**kwargs).eval()


def test_one_value_per_bond_independent_of_batch() -> None:
    graphs = packed(SMILES)
    m = model()
    together, _ = predict_bonds(m, graphs, np.arange(4))
    assert together.shape == (int(graphs.num_bonds.sum()), 2)
    alone, _ = predict_bonds(m, graphs, np.array([3]))
    reordered, _ = predict_bonds(m, graphs, np.array([3, 0, 1, 2]), batch_size=2)
    rows = graphs.bond_rows(np.array([3]))
    np.testing.assert_allclose(alone, together[rows], atol=1e-5)
    np.testing.assert_allclose(reordered[: len(rows)], together[rows], atol=1e-5)


def test_symmetric_bonds_get_equal_values() -> None:
    values, _ = predict_bonds(model(), packed(["CC"]), np.array([0]))
    np.testing.assert_allclose(values[1:, 0], values[1, 0], atol=1e-5)  # the six C-H bonds


def test_normalisation_is_float16_exact_and_domain_flags() -> None:
    m = model()
    m.set_normalisation(np.array([[94.46, 84.3], [99.1, np.nan], [80.3, 70.1]]))
    assert torch.equal(m.target_mean, m.target_mean.half().float())
    assert m.target_mean[0].item() == pytest.approx(91.29, abs=0.05)
    train = packed(["CCO"])
    m.set_domain(train.elements, train.bond_type)
    test = packed(["CCO", "C[Si](C)(C)C", "C=CO"])
    batch = test.batch(np.arange(3))
    flags = m.flagged(batch).numpy()
    n = test.num_bonds
    assert not flags[: n[0]].any()
    silane = flags[n[0]: n[0] + n[1]]
    assert silane[:4].all() and not silane[4:].any()  # the C-Si bonds; its C-H bonds are known
    assert flags[n[0] + n[1]:].tolist() == [True] + [False] * (n[2] - 1)  # only C=C is unknown


def test_masked_loss_ignores_missing_targets() -> None:
    m = model()
    batch = packed(["CCO"]).batch(np.array([0]))
    target = torch.full((8, 2), float("nan"))
    target[0] = torch.tensor([90.0, 80.0])
    batch["target"] = target
    loss = masked_loss(m, batch, "mse", 0.0)
    expected = ((m(batch)[0, 0] - 90.0) / m.target_std[0]) ** 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_saved_weights_rebuild_the_model(tmp_path: Path) -> None:
    m = model()
    m.set_normalisation(np.array([[94.5, 84.25], [99.0, 80.0]]))
    graphs = packed(SMILES)
    m.set_domain(graphs.elements, graphs.bond_type)
    card = {"model": CONFIG, "task": "bde", "featurizer": featurizer_signature()}
    path = save_weights(m, tmp_path / "bde", card, precision="float16")
    loaded, _ = load_bondnet(path)
    before, flags_before = predict_bonds(m, graphs, np.arange(4))
    after, flags_after = predict_bonds(loaded, graphs, np.arange(4))
    np.testing.assert_allclose(after, before, atol=0.05)
    assert np.array_equal(flags_after, flags_before)
    save_weights(m, tmp_path / "spectrum", {**card, "task": "spectrum"})
    with pytest.raises(ValueError, match="not a BDE model"):
        load_bondnet(tmp_path / "spectrum.safetensors")
