"""MultitaskTeacherLoss on hand-computed cases, and gradients reaching both teacher heads."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from nextims.data.featurize import MolGraphFeaturizer, count_morgan, mol_from_smiles, nominal_mass
from nextims.losses import MultitaskTeacherLoss, spectrum_loss
from nextims.models.heads import BondCleavageHead
from nextims.models.teacher import TeacherGNN


class ConstantLoss(torch.nn.Module):
    """A spectrum loss that returns the mean prediction (easy to compute by hand)."""

    def forward(self, predicted, target):
        return predicted.mean()


def test_lambdas_and_mask_hand_computed() -> None:
    fn = MultitaskTeacherLoss(lambda_spectrum=2.0, lambda_bde=0.5, spectrum=ConstantLoss(), bde_scale=10.0)
    spectrum = torch.full((2, 3), 0.25)
    pred_bde = torch.tensor([100.0, 90.0, 80.0, 70.0])
    target = torch.tensor([110.0, float("nan"), 60.0, 70.0])
    mask = torch.tensor([True, True, True, False])
    total, parts = fn(predicted_spectrum=spectrum, target_spectrum=spectrum, predicted_bde=pred_bde,
                      target_bde=target, bde_mask=mask)
    bde = ((10 / 10) ** 2 + (20 / 10) ** 2) / 2  # bonds 0 and 2 count: NaN target and mask=False do not
    assert parts["bde"] == pytest.approx(bde) and parts["bde_bonds"] == 2
    assert parts["spectrum"] == pytest.approx(0.25)
    assert total.item() == pytest.approx(2.0 * 0.25 + 0.5 * bde)


def test_no_bde_or_all_masked_gives_spectrum_term_only() -> None:
    fn = MultitaskTeacherLoss(lambda_spectrum=1.0, lambda_bde=0.1, spectrum=ConstantLoss())
    spectrum = torch.full((1, 3), 0.5)
    total, parts = fn(predicted_spectrum=spectrum, target_spectrum=spectrum)
    assert total.item() == pytest.approx(0.5) and parts["bde"] == 0
    pred = torch.tensor([1.0], requires_grad=True)
    total, parts = fn(predicted_spectrum=spectrum, target_spectrum=spectrum, predicted_bde=pred,
                      target_bde=torch.tensor([math.nan]))
    total.backward()
    assert parts["bde_bonds"] == 0 and pred.grad is not None and pred.grad.item() == 0


def test_gradients_reach_both_heads() -> None:
    featurizer = MolGraphFeaturizer()
    mols = [mol_from_smiles(s) for s in ("CCO", "c1ccccc1Cl", "CC(=O)N")]
    model = TeacherGNN(featurizer.atom_dim, featurizer.bond_dim, fp_dim=256, num_bins=200, hidden_dim=32,
                       num_layers=2, fp_hidden=32, joint_dim=64, num_blocks=1)
    graph = Batch.from_data_list([featurizer(m) for m in mols])
    batch = {"graph": graph, "fp": torch.from_numpy(np.stack([count_morgan(m, 256) for m in mols])),
             "mass": torch.tensor([nominal_mass(m) for m in mols])}
    spectrum, bde = model(batch, with_bde=True)
    assert spectrum.shape == (3, 201) and bde.shape == (graph.edge_index.shape[1] // 2,)
    loss_fn = MultitaskTeacherLoss(spectrum=spectrum_loss("cosine"))
    target = torch.rand(3, 201)
    loss, _ = loss_fn(predicted_spectrum=spectrum, target_spectrum=target, predicted_bde=bde,
                      target_bde=torch.full_like(bde, 90.0))
    loss.backward()
    assert model.spectrum_head.forward_head.weight.grad.abs().sum() > 0
    assert model.bde_head[0].weight.grad.abs().sum() > 0
    assert model.convs[0].nn[0].weight.grad.abs().sum() > 0
    for p in model.bde_head.parameters():
        p.grad = None
    spectrum_only, _ = loss_fn(predicted_spectrum=model(batch), target_spectrum=target)
    spectrum_only.backward()
    assert all(p.grad is None for p in model.bde_head.parameters())


def _batch(smiles: tuple[str, ...], fp_dim: int = 256) -> dict:
    featurizer = MolGraphFeaturizer()
    mols = [mol_from_smiles(s) for s in smiles]
    return {"graph": Batch.from_data_list([featurizer(m) for m in mols]),
            "fp": torch.from_numpy(np.stack([count_morgan(m, fp_dim) for m in mols])),
            "mass": torch.tensor([nominal_mass(m) for m in mols])}


def test_cleavage_head_scores_exactly_the_cleavage_ions_of_each_molecule() -> None:
    torch.manual_seed(0)
    head = BondCleavageHead(hidden_dim=8, joint_dim=16, num_bins=120)
    batch = _batch(("CCO", "OC1CCCCC1", "ClCC"))
    graph = batch["graph"]
    h, e = torch.randn(graph.num_nodes, 8), torch.randn(graph.edge_index.shape[1], 8)
    scores = head(h, e, graph, torch.randn(3, 16))
    assert scores.shape == (3, 121) and (scores >= 0).all()
    # ethanol: 15 | 31, 29 | 17; cyclohexanol: only its C-O bond (17 | 83), no ring bond; chloroethane: 35 | 29, 49 | 15
    expected = [{15, 17, 29, 31}, {17, 83}, {15, 29, 35, 49}]
    for row, ions in zip(scores, expected):
        allowed = {ion + s for ion in ions for s in range(-2, 3)}
        assert set(torch.nonzero(row).flatten().tolist()) == allowed


def test_cleavage_head_places_ions_at_the_configured_shifts() -> None:
    head = BondCleavageHead(hidden_dim=8, joint_dim=16, num_bins=120, shifts=(0, -28))
    graph = _batch(("CC(=O)C",))["graph"]  # acetone: CH3 15 | CH3CO 43 (both C-C bonds), O 16 | C3H6 42 (C=O)
    scores = head(torch.randn(graph.num_nodes, 8), torch.randn(graph.edge_index.shape[1], 8), graph, torch.randn(1, 16))
    assert set(torch.nonzero(scores[0]).flatten().tolist()) == {15, 16, 42, 43, 42 - 28, 43 - 28}  # 15 - 28 < 1


def test_cleavage_head_gradients_reach_the_graph_layers_and_the_joint_embedding() -> None:
    featurizer = MolGraphFeaturizer()
    model = TeacherGNN(featurizer.atom_dim, featurizer.bond_dim, fp_dim=256, num_bins=200, hidden_dim=32,
                       num_layers=2, fp_hidden=32, joint_dim=64, num_blocks=1, cleavage_head=True)
    batch = _batch(("CCO", "c1ccccc1CCl", "CC(=O)N"))
    graph = batch["graph"]
    joint = torch.randn(3, 64, requires_grad=True)
    model.cleavage_head(*model.encode(graph), graph, joint).sum().backward()
    assert joint.grad.abs().sum() > 0
    assert model.cleavage_head.score[0].weight.grad.abs().sum() > 0
    assert model.convs[0].nn[0].weight.grad.abs().sum() > 0 and model.bond_encoder.weight.grad.abs().sum() > 0
    model.zero_grad()
    loss, _ = MultitaskTeacherLoss(spectrum=spectrum_loss("cosine"))(predicted_spectrum=model(batch),
                                                                     target_spectrum=torch.rand(3, 201))
    loss.backward()
    assert model.cleavage_head.score[-1].weight.grad.abs().sum() > 0
    assert model.cleavage_head.joint.weight.grad.abs().sum() > 0 and model.joint[0].weight.grad.abs().sum() > 0


def test_cleavage_head_without_fragment_masses_says_what_is_missing() -> None:
    featurizer = MolGraphFeaturizer()
    model = TeacherGNN(featurizer.atom_dim, featurizer.bond_dim, fp_dim=256, num_bins=200, hidden_dim=16,
                       num_layers=1, fp_hidden=16, joint_dim=32, num_blocks=1, cleavage_head=True)
    batch = _batch(("CCO",))
    del batch["graph"].frag_mass
    with pytest.raises(ValueError, match="frag_mass"):
        model(batch)


def _bde_teacher(**kwargs) -> TeacherGNN:
    featurizer = MolGraphFeaturizer()
    return TeacherGNN(featurizer.atom_dim, featurizer.bond_dim, fp_dim=256, num_bins=200, hidden_dim=32,
                      num_layers=2, fp_hidden=32, joint_dim=64, num_blocks=1, cleavage_head=True, **kwargs)


def test_cleavage_bde_reaches_the_cleavage_scores_but_only_the_bde_task_trains_the_bde_head() -> None:
    torch.manual_seed(0)
    model = _bde_teacher(cleavage_bde=True).eval()
    batch = _batch(("CCO", "c1ccccc1CCl", "CC(=O)N"))
    assert model.cleavage_head.score[0].in_features == 4 * 32 + 1
    spectrum, bde = model(batch, with_bde=True)
    assert torch.equal(spectrum, model(batch))
    # a stronger predicted BDE for every bond changes the cleavage ions, nothing else reads the BDE head
    with torch.no_grad():
        model.bde_head[-1].bias += 2.0
    shifted = model(batch)
    assert not torch.allclose(shifted, spectrum)
    model.train()
    loss, _ = MultitaskTeacherLoss(spectrum=spectrum_loss("cosine"))(predicted_spectrum=model(batch),
                                                                     target_spectrum=torch.rand(3, 201))
    loss.backward()
    assert model.cleavage_head.score[0].weight.grad[:, -1].abs().sum() > 0
    assert all(p.grad is None for p in model.bde_head.parameters())


def test_cleavage_bde_without_bdes_or_cleavage_head_says_what_is_missing() -> None:
    head = BondCleavageHead(hidden_dim=8, joint_dim=16, num_bins=120, bde_input=True)
    graph = _batch(("CCO",))["graph"]
    h, e = torch.randn(graph.num_nodes, 8), torch.randn(graph.edge_index.shape[1], 8)
    with pytest.raises(ValueError, match="one BDE per directed edge"):
        head(h, e, graph, torch.randn(1, 16))
    with pytest.raises(ValueError, match="one BDE per directed edge"):
        head(h, e, graph, torch.randn(1, 16), torch.zeros(graph.edge_index.shape[1] // 2))
    assert head(h, e, graph, torch.randn(1, 16), torch.zeros(graph.edge_index.shape[1])).shape == (1, 121)
    featurizer = MolGraphFeaturizer()
    with pytest.raises(ValueError, match="cleavage_head=true"):
        TeacherGNN(featurizer.atom_dim, featurizer.bond_dim, fp_dim=256, cleavage_head=False, cleavage_bde=True)
