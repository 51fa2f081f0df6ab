"""MultitaskTeacherLoss on hand-computed cases, and gradients reaching both teacher heads."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from nextims.data.featurize import MolGraphFeaturizer, count_morgan, mol_from_smiles, nominal_mass
from nextims.losses import MultitaskTeacherLoss, spectrum_loss
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
