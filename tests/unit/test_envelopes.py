"""Isotope envelopes: hand-computed patterns (Cl2, Br2, ClBr, S, Si), the bins' piece assignment, the spreading
in the heads, and a teacher whose monoisotopic ions spread into tetrachloroethylene's cluster."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from rdkit import Chem
from torch_geometric.data import Batch

from nextims.config import build
from nextims.data.envelopes import EnvelopeTable, Envelopes, composition_pattern
from nextims.data.featurize import MolGraphFeaturizer, count_morgan, nominal_mass
from nextims.models.heads import spread_isotopes
from nextims.models.teacher import TeacherGNN

CL = (0.7576, 0.2424)  # 35Cl, 37Cl
BR = (0.5069, 0.4931)  # 79Br, 81Br
# Cl4 binomial (13C adds to the odd masses): M, M+2, ..., M+8 ~ 78 : 100 : 48 : 10 : 0.8
CL4 = np.array([CL[0] ** 4, 4 * CL[0] ** 3 * CL[1], 6 * CL[0] ** 2 * CL[1] ** 2, 4 * CL[0] * CL[1] ** 3, CL[1] ** 4])


def test_dihalogen_patterns_are_the_binomial_ones() -> None:
    cl2 = [CL[0] ** 2, 0, 2 * CL[0] * CL[1], 0, CL[1] ** 2]
    br2 = [BR[0] ** 2, 0, 2 * BR[0] * BR[1], 0, BR[1] ** 2]
    clbr = [CL[0] * BR[0], 0, CL[0] * BR[1] + CL[1] * BR[0], 0, CL[1] * BR[1]]
    for composition, expected in (((("Cl", 2),), cl2), ((("Br", 2),), br2), ((("Br", 1), ("Cl", 1)), clbr)):
        pattern = composition_pattern(composition, 7)
        assert pattern == pytest.approx(expected + [0, 0], abs=1e-9)
    # the classic ratios: Cl2 about 100:64:10, Br2 about 51:100:49
    cl2 = composition_pattern((("Cl", 2),), 5)
    assert cl2[[2, 4]] / cl2[0] == pytest.approx([0.640, 0.1024], abs=1e-3)


def test_sulfur_and_silicon_patterns() -> None:
    assert composition_pattern((("S", 1),), 6) == pytest.approx([0.9499, 0.0075, 0.0425, 0, 0.0001, 0], abs=1e-9)
    assert composition_pattern((("Si", 1),), 4) == pytest.approx([0.92223, 0.04685, 0.03092, 0], abs=1e-9)
    # SiS: the convolution of the two
    si, s = np.array([0.92223, 0.04685, 0.03092]), np.array([0.9499, 0.0075, 0.0425, 0, 0.0001])
    assert composition_pattern((("S", 1), ("Si", 1)), 7) == pytest.approx(np.convolve(si, s), abs=1e-9)


def test_patterns_are_cut_at_the_width_and_sum_to_one() -> None:
    full = composition_pattern((("Cl", 6),), 13)
    cut = composition_pattern((("Cl", 6),), 5)
    assert full.sum() == pytest.approx(1) and cut.sum() == pytest.approx(1)
    assert cut == pytest.approx(full[:5] / full[:5].sum())
    with pytest.raises(ValueError, match="width >= 1"):
        EnvelopeTable(10, 0)


def test_bins_take_the_pattern_of_the_nearest_piece() -> None:
    # CH3Cl (50): pieces CH3 (15), Cl (35) and the molecule; ties go to the lighter piece
    env = Envelopes.of([Chem.MolFromSmiles("CCl")], size=60, width=5)
    patterns = env.patterns[env.index[0]]
    methyl = composition_pattern((("C", 1), ("H", 3)), 5)
    chlorine = composition_pattern((("Cl", 1),), 5)
    molecule = composition_pattern((("C", 1), ("Cl", 1), ("H", 3)), 5)
    for bins, expected in ((range(0, 26), methyl), (range(26, 43), chlorine), (range(43, 60), molecule)):
        for b in bins:
            assert patterns[b] == pytest.approx(expected, abs=1e-6), b


def test_pieces_of_one_mass_share_their_mean_pattern() -> None:
    # propanal: C2H5 and CHO both weigh 29
    env = Envelopes.of([Chem.MolFromSmiles("CCC=O")], size=40, width=4)
    expected = (composition_pattern((("C", 2), ("H", 5)), 4) + composition_pattern((("C", 1), ("H", 1), ("O", 1)), 4)) / 2
    assert env.patterns[env.index[0, 29]] == pytest.approx(expected, abs=1e-6)


def test_concat_and_take_keep_each_molecule_its_envelope() -> None:
    mols = [Chem.MolFromSmiles(s) for s in ("CCl", "CBr", "CCS")]
    alone = [Envelopes.of([m], 100, 6) for m in mols]
    joined = Envelopes.concat(alone, 100, 6)
    together = Envelopes.of(mols, 100, 6)
    taken = joined.take(np.array([2, 0]))
    assert taken.shape == (2, 100, 6)
    assert torch.allclose(taken, together.take(np.array([2, 0])))
    assert torch.allclose(taken[1], alone[0].take(np.array([0]))[0])


def test_spread_conserves_intensity_and_shifts_by_the_offsets() -> None:
    sqrt = torch.zeros(1, 12)
    sqrt[0, 3] = 2.0  # intensity 4 at m/z 3
    envelope = torch.zeros(1, 12, 4)
    envelope[..., 0], envelope[..., 2] = 0.75, 0.25
    out = spread_isotopes(sqrt, envelope).square()
    assert out[0, 3].item() == pytest.approx(3) and out[0, 5].item() == pytest.approx(1)
    assert out.sum().item() == pytest.approx(4)
    # what falls above the last bin is dropped
    sqrt[0, 11] = 1.0
    assert spread_isotopes(sqrt, envelope).square().sum().item() == pytest.approx(4.75)
    with pytest.raises(ValueError, match="do not fit"):
        spread_isotopes(sqrt, envelope[:, :5])


def test_spread_has_finite_gradients_through_empty_bins() -> None:
    sqrt = torch.tensor([[0.0, 1.0, 0.0, 0.0, 0.0]], requires_grad=True)
    envelope = torch.full((1, 5, 3), 1 / 3)
    spread_isotopes(sqrt, envelope).sum().backward()
    assert torch.isfinite(sqrt.grad).all() and sqrt.grad[0, 1] > 0


def monoisotopic_teacher_config(num_bins: int) -> dict:
    """The configuration of a tiny teacher with isotope envelopes and fingerprints of 64 bits."""
    featurizer = MolGraphFeaturizer()
    return {"_target_": "nextims.models.teacher.TeacherGNN", "atom_dim": featurizer.atom_dim,
            "bond_dim": featurizer.bond_dim, "fp_dim": 64, "num_bins": num_bins, "hidden_dim": 8, "num_layers": 1,
            "fp_hidden": 8, "joint_dim": 16, "num_blocks": 0, "isotope_envelope": True}


def monoisotopic_teacher(peak: int, num_bins: int) -> TeacherGNN:
    """A teacher whose spectrum head predicts one monoisotopic ion at m/z `peak`, whatever the molecule."""
    model = build(OmegaConf.create(monoisotopic_teacher_config(num_bins)))
    head = model.spectrum_head
    with torch.no_grad():
        for layer in (head.forward_head, head.reverse_head, head.gate):
            layer.weight.zero_()
        head.forward_head.bias.fill_(-1.0)
        head.forward_head.bias[peak] = 1.0
        head.gate.bias.fill_(30.0)  # the forward prediction alone
    return model.eval()


def test_teacher_spreads_tetrachloroethylene_over_its_whole_cluster() -> None:
    featurizer = MolGraphFeaturizer()
    mol = Chem.MolFromSmiles("ClC(Cl)=C(Cl)Cl")
    model = monoisotopic_teacher(164, 200)
    batch = {"graph": Batch.from_data_list([featurizer(mol)]),
             "fp": torch.from_numpy(count_morgan(mol, 64)[None]), "mass": torch.tensor([nominal_mass(mol)])}
    with pytest.raises(ValueError, match="need `envelope`"):
        model(batch)
    batch["envelope"] = Envelopes.of([mol], 201, model.needs_envelope).take(np.array([0]))
    spectrum = model(batch).square()[0].detach().numpy()
    even = spectrum[164:174:2]
    assert even / even.max() == pytest.approx(CL4 / CL4.max(), abs=0.01)
    assert spectrum[165] / spectrum[164] == pytest.approx(2 * 0.0107 / 0.9893, rel=0.02)  # two carbons
    assert spectrum[:164].max() == 0 and spectrum[175:].max() == 0 and spectrum.sum() == pytest.approx(1, abs=1e-5)
