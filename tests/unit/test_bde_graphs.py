"""BDE graphs: bond order shared with the explicit-H featurizer and RDKit, bond types, packed batches."""

from __future__ import annotations

import numpy as np
from rdkit import Chem

from nextims.data.bde_graphs import (BDE_FEATURIZER, PackedGraphs, bond_type_code, bond_type_label, bond_type_name,
                                     element_index, mol_arrays, ranges)
from nextims.data.featurize import MolGraphFeaturizer


def test_bonds_follow_rdkit_order_heavy_bonds_first() -> None:
    mol = Chem.MolFromSmiles("OC(=O)c1ccc(Br)cc1")
    arrays = mol_arrays(mol)
    mol_h = Chem.AddHs(mol)
    expected = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol_h.GetBonds()]
    assert [tuple(p) for p in arrays.bond_atoms.tolist()] == expected
    heavy = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()]
    assert expected[:len(heavy)] == heavy  # the implicit-H graph's bonds come first, in its order
    graph = MolGraphFeaturizer(explicit_hydrogens=True)(mol)
    assert np.array_equal(graph.edge_index[:, 0::2].T.numpy(), arrays.bond_atoms)
    assert np.array_equal(graph.edge_attr[0::2].numpy(), arrays.bond_attr)
    assert arrays.x.shape == (mol_h.GetNumAtoms(), BDE_FEATURIZER.atom_dim)


def test_bond_type_codes_and_labels() -> None:
    c, h, br = element_index("C"), element_index("H"), element_index("Br")
    assert bond_type_code(c, h, 0, False) == bond_type_code(h, c, 0, False)
    assert bond_type_code(c, c, 0, False) != bond_type_code(c, c, 0, True) != bond_type_code(c, c, 3, True)
    assert bond_type_label(bond_type_code(h, c, 0, False)) == "C-H"
    assert bond_type_label(bond_type_code(c, br, 0, False)) == "Br-C"
    assert bond_type_name(bond_type_code(c, c, 3, True)) == "C-C aromatic ring"
    assert bond_type_label(bond_type_code(br, element_index("X"), 4, True, 2)) == "Br-X"
    assert bond_type_label(bond_type_code(element_index("Sn"), c, 0, False)) == "C-X"
    codes = mol_arrays(Chem.MolFromSmiles("c1ccccc1CBr")).bond_type
    names = {bond_type_name(int(k)) for k in codes}
    assert names == {"C-C aromatic ring", "C-C single", "Br-C single", "C-H single"}
    nitro = {bond_type_name(int(k)) for k in mol_arrays(Chem.MolFromSmiles("C[N+](=O)[O-]")).bond_type}
    assert nitro == {"C-N single 1 charged", "N-O double 1 charged", "N-O single 2 charged", "C-H single"}
    nitrate = {bond_type_name(int(k)) for k in mol_arrays(Chem.MolFromSmiles("CO[N+](=O)[O-]")).bond_type}
    assert "N-O single 1 charged" in nitrate and "N-O single 2 charged" in nitrate


def test_packed_batch_offsets() -> None:
    smiles = ["CO", "c1ccccc1Cl", "CCN"]
    single = [mol_arrays(Chem.MolFromSmiles(s)) for s in smiles]
    packed = PackedGraphs.pack(single)
    batch = packed.batch(np.array([2, 0]))
    n2, n0 = len(single[2].x), len(single[0].x)
    assert batch["x"].shape[0] == n2 + n0 and batch["num_mols"] == 2
    assert np.array_equal(batch["bond_atoms"][: len(single[2].bond_type)].numpy(), single[2].bond_atoms)
    assert np.array_equal(batch["bond_atoms"][len(single[2].bond_type):].numpy(), single[0].bond_atoms + n2)
    assert batch["atom_mol"].tolist() == [0] * n2 + [1] * n0
    assert np.array_equal(batch["bond_rows"], packed.bond_rows(np.array([2, 0])))
    assert ranges(np.array([5, 0]), np.array([2, 3])).tolist() == [5, 6, 0, 1, 2]
