"""Two-cut pieces (nextims.data.pieces) and the fragment head that scores them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rdkit import Chem
from torch_geometric.data import Batch

from nextims.data.featurize import MolGraphFeaturizer
from nextims.data.pieces import TwoCutPieces
from nextims.models.heads import FragmentPieceHead


def _pieces(smiles: str) -> TwoCutPieces:
    return TwoCutPieces.of([Chem.MolFromSmiles(smiles)])


def test_diethyl_ether_pieces_are_the_middles_of_its_bond_pairs() -> None:
    # C0-C1-O2-C3-C4, bonds 0..3: cutting bonds i < j leaves atoms i+1..j between them
    pieces = _pieces("CCOCC")
    found = sorted((tuple(c), pieces.atoms[pieces.atom_offsets[p]:pieces.atom_offsets[p + 1]].tolist(), int(m))
                   for p, (c, m) in enumerate(zip(pieces.cuts.tolist(), pieces.mass)))
    assert found == [((0, 1), [1], 14), ((0, 2), [1, 2], 30), ((0, 3), [1, 2, 3], 44), ((1, 2), [2], 16),
                     ((1, 3), [2, 3], 30), ((2, 3), [3], 14)]


def test_cyclohexane_opened_twice_gives_both_arcs_of_every_bond_pair() -> None:
    pieces = _pieces("C1CCCCC1")
    assert len(pieces.mass) == 2 * 15 and pieces.piece_offsets.tolist() == [0, 30]
    sizes = np.diff(pieces.atom_offsets)
    assert (pieces.mass == 14 * sizes).all()
    # the two arcs of one pair hold all six atoms between them
    assert sorted(np.bincount(sizes).tolist()) == sorted([0, 6, 6, 6, 6, 6])
    assert set((sizes[0::2] + sizes[1::2]).tolist()) == {6}


def test_a_molecule_without_two_cut_pieces_has_none_and_take_keeps_owners() -> None:
    both = TwoCutPieces.concat([_pieces("C"), _pieces("CCOCC"), _pieces("CC")])
    assert both.piece_offsets.tolist() == [0, 0, 6, 6]
    taken = both.take(np.array([2, 1, 0, 1]))
    assert taken["owner"].tolist() == [1] * 6 + [3] * 6
    assert taken["mass"].tolist()[:6] == both.mass.tolist()
    assert taken["atom_piece"].max().item() == 11 and len(taken["atom"]) == 2 * len(both.atoms)
    assert len(TwoCutPieces.concat([]).take(np.zeros(0, np.int64))["owner"]) == 0


def _batch(smiles: list[str], featurizer: MolGraphFeaturizer, hidden: int):
    mols = [Chem.MolFromSmiles(s) for s in smiles]
    graph = Batch.from_data_list([featurizer(m) for m in mols])
    # embeddings that depend on the molecule only, so a molecule gets the same ones in any batch
    h = torch.cat([torch.randn(m.GetNumAtoms(), hidden, generator=torch.Generator().manual_seed(len(s)))
                   for m, s in zip(mols, smiles)])
    e = torch.cat([torch.randn(2 * m.GetNumBonds(), hidden, generator=torch.Generator().manual_seed(100 + len(s)))
                   for m, s in zip(mols, smiles)])
    joint = torch.cat([torch.randn(1, 8, generator=torch.Generator().manual_seed(200 + len(s))) for s in smiles])
    return h, e, graph, joint, TwoCutPieces.of(mols).take(np.arange(len(mols)))


def test_fragment_head_places_each_piece_at_its_mass_plus_shifts() -> None:
    torch.manual_seed(0)
    head = FragmentPieceHead(hidden_dim=4, joint_dim=8, num_bins=100, shifts=(-1, 0))
    with torch.no_grad():
        head.score[-1].weight.zero_()
        head.score[-1].bias.fill_(0.0)
    out = head(*_batch(["CCOCC"], MolGraphFeaturizer(), 4))[0]
    unit = torch.nn.functional.softplus(torch.tensor(0.0))
    expected = torch.zeros(101)
    for m in (14, 30, 44, 16, 30, 14):
        expected[m] += unit
        expected[m - 1] += unit
    assert torch.allclose(out, expected)


def test_fragment_head_scores_a_molecule_alike_in_any_batch_and_learns() -> None:
    torch.manual_seed(0)
    head = FragmentPieceHead(hidden_dim=4, joint_dim=8, num_bins=200)
    featurizer = MolGraphFeaturizer()
    alone = head(*_batch(["CC(=O)OC1CCCCC1"], featurizer, 4))
    mixed = head(*_batch(["CCOCC", "C", "CC(=O)OC1CCCCC1"], featurizer, 4))
    assert torch.allclose(alone[0], mixed[2], atol=1e-6) and mixed[1].abs().sum() == 0
    mixed.sum().backward()
    assert head.score[0].weight.grad.abs().sum() > 0


def test_teacher_with_fragment_head_needs_pieces() -> None:
    from nextims.models.teacher import TeacherGNN
    from nextims.models.ensemble import SpectrumEnsemble
    from nextims.data.featurize import count_morgan, nominal_mass

    featurizer = MolGraphFeaturizer()
    config = {"_target_": "nextims.models.teacher.TeacherGNN", "atom_dim": featurizer.atom_dim,
              "bond_dim": featurizer.bond_dim, "fp_dim": 64, "num_bins": 100, "hidden_dim": 8, "num_layers": 1,
              "fp_hidden": 8, "joint_dim": 16, "num_blocks": 0, "cleavage_head": True, "fragment_head": True}
    model = TeacherGNN(**{k: v for k, v in config.items() if k != "_target_"}).eval()
    assert model.needs_pieces and SpectrumEnsemble(config, 2).needs_pieces
    mol = Chem.MolFromSmiles("CCOCC")
    batch = {"graph": Batch.from_data_list([featurizer(mol)]), "fp": torch.from_numpy(count_morgan(mol, 64)[None]),
             "mass": torch.tensor([nominal_mass(mol)])}
    with pytest.raises(ValueError, match="need `pieces`"):
        model(batch)
    batch["pieces"] = TwoCutPieces.of([mol]).take(np.array([0]))
    assert model(batch).shape == (1, 101)
