"""Cleavage sites (hand-checked), their batching, and the student's site cleavage head."""

from __future__ import annotations

import numpy as np
import torch
from rdkit import Chem

from nextims.data.featurize import count_morgan
from nextims.data.sites import CleavageSites, fingerprint_and_sites, ragged_rows
from nextims.models.heads import place_ions
from nextims.models.student import StudentMoE


def test_ethanol_sites_by_hand() -> None:
    mol = Chem.MolFromSmiles("CCO")
    fp, sites = fingerprint_and_sites(mol, 2048, 2)
    assert np.array_equal(fp, count_morgan(mol, 2048, 2))
    # bonds C0-C1 and C1-O2, both directions: the far part's nominal mass
    assert sites.mass.tolist() == [31, 17, 15, 29]  # CH2OH, OH | CH3, C2H5
    assert sites.offsets.tolist() == [0, 4] and sites.kind.tolist() == [0, 0, 0, 0]
    # near and far swap between the two directions of a bond; each atom's radius-0 bit is set in the fingerprint
    assert np.array_equal(sites.near[0], sites.far[2]) and np.array_equal(sites.far[0], sites.near[2])
    assert all(fp[b] > 0 for b in sites.near[:, 0])


def test_ring_bonds_have_no_sites_and_both_ions_of_a_bond_add_up_to_m() -> None:
    mol = Chem.MolFromSmiles("c1ccccc1C(=O)CCl")
    _, sites = fingerprint_and_sites(mol)
    assert len(sites.mass) == 2 * 4  # ring-C, C=O, C-C, C-Cl; none of the six ring bonds
    half = len(sites.mass) // 2
    assert (sites.mass[:half] + sites.mass[half:] == 154).all()
    assert sorted(sites.kind[:half].tolist()) == [0, 0, 0, 1]  # three single bonds and the double C=O
    _, benzene = fingerprint_and_sites(Chem.MolFromSmiles("c1ccccc1"))
    assert len(benzene.mass) == 0 and benzene.offsets.tolist() == [0, 0]


def test_take_and_ragged_rows_keep_order_and_owners() -> None:
    parts = [fingerprint_and_sites(Chem.MolFromSmiles(s))[1] for s in ("CCO", "c1ccccc1", "CCCl")]
    sites = CleavageSites.concat(parts, 3)
    assert sites.offsets.tolist() == [0, 4, 4, 8]
    rows, owner = ragged_rows(sites.offsets, np.array([2, 0]))
    assert rows.tolist() == [4, 5, 6, 7, 0, 1, 2, 3] and owner.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    batch = sites.take(np.array([2, 1, 0]))
    assert batch["owner"].tolist() == [0] * 4 + [2] * 4
    assert batch["mass"][:4].tolist() == parts[2].mass.tolist()


def test_place_ions_puts_scores_at_fragment_masses_plus_shifts() -> None:
    scores = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    out = place_ions(scores, torch.tensor([10, 0, 1]), torch.tensor([0, 0, 1]), torch.tensor([-1, 0, 1]), 2, 12)
    assert out[0, 9:12].tolist() == [1.0, 2.0, 3.0] and out[0].sum() == 6.0  # the ring site (mass 0) is left out
    assert out[1, 1:3].tolist() == [8.0, 9.0] and out[1].sum() == 17.0      # m/z 0 is left out


def test_student_with_cleavage_head_reads_sites_and_learns_from_them() -> None:
    mols = [Chem.MolFromSmiles(s) for s in ("CCO", "c1ccccc1", "CC(=O)Oc1ccccc1C(=O)O")]
    fps, parts = zip(*(fingerprint_and_sites(m, 256, 2) for m in mols))
    batch = {"fp": torch.from_numpy(np.stack(fps)), "mass": torch.tensor([46, 78, 180]),
             "sites": CleavageSites.concat(list(parts), 3).take(np.arange(3))}
    torch.manual_seed(0)
    model = StudentMoE(fp_dim=256, num_bins=200, hidden_dim=32, num_blocks=1, cleavage_head=True, site_dim=8)
    assert model.needs_sites and not StudentMoE(fp_dim=256, num_bins=200, hidden_dim=32).needs_sites
    out = model(batch)
    assert out.shape == (3, 201) and (out >= 0).all()
    out.sum().backward()
    for part in (model.cleavage_head.environment, model.cleavage_head.kind, model.fragments.bag):
        assert part.weight.grad is not None and part.weight.grad.abs().sum() > 0
    # the site head's ions move the output at the cleavage masses only
    with torch.no_grad():
        model.eval()
        base = model(batch)
        model.cleavage_head.score[-1].bias += 5.0
        moved = (model(batch) - base).abs() > 1e-6
    assert moved[0, 31] and moved[0, 15] and not moved[1].any()  # ethanol's ions; benzene has no site
