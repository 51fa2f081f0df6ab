"""Tests for molecule parsing, fingerprints, nominal masses and graphs."""

import numpy as np
import pytest
import torch
from rdkit import Chem

from nextims.data.featurize import (
    ELEMENTS,
    MolGraphFeaturizer,
    _morgan_generator,
    count_morgan,
    featurizer_signature,
    fragment_masses,
    mol_from_smiles,
    nominal_mass,
)
from nextims.errors import RecordError


def test_mol_from_smiles_parses_valid_smiles():
    mol = mol_from_smiles("c1ccccc1O")
    assert mol.GetNumAtoms() == 7


@pytest.mark.parametrize("smiles", ["C1CC", "c1cccc1", "CC(C)(C)(C)(C)C", "", "not a smiles", None])
def test_mol_from_smiles_raises_record_error_quietly(smiles, capfd):
    with pytest.raises(RecordError) as info:
        mol_from_smiles(smiles, record="rec-7")
    assert info.value.record == "rec-7"
    assert info.value.reason == "bad_smiles"
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_rdkit_logging_is_restored_after_a_bad_smiles(capfd):
    with pytest.raises(RecordError):
        mol_from_smiles("C1CC")
    assert Chem.MolFromSmiles("C1CC") is None
    assert "SMILES Parse Error" in capfd.readouterr().err


def test_count_morgan_counts_repeated_environments():
    mol = mol_from_smiles("CCCCCCCC")
    fp = count_morgan(mol, n_bits=2048, radius=2)
    assert fp.dtype == np.float32 and fp.shape == (2048,)
    assert fp.max() >= 2  # the inner CH2 environments repeat
    unfolded = _morgan_generator(2048, 2).GetSparseCountFingerprint(mol).GetNonzeroElements()
    assert fp.sum() == sum(unfolded.values())
    assert not np.array_equal(fp, count_morgan(mol_from_smiles("CCCCCCCO"), n_bits=2048, radius=2))


def test_morgan_generator_is_created_once_per_settings():
    assert _morgan_generator(1024, 2) is _morgan_generator(1024, 2)
    assert _morgan_generator(1024, 2) is not _morgan_generator(1024, 3)


@pytest.mark.parametrize("smiles, mass", [
    ("C", 16), ("Clc1ccccc1", 112), ("O", 18), ("[2H]C([2H])([2H])[2H]", 20),
    ("BrC(Br)Br", 250), ("[NH4+]", 18), ("C[Si](C)(C)O", 90),
])
def test_nominal_mass(smiles, mass):
    assert nominal_mass(mol_from_smiles(smiles)) == mass


@pytest.mark.parametrize("smiles, mass", [("C", 16), ("[13CH4]", 17), ("[CH3]", 15), ("[2H]OC", 33), ("N#N", 28)])
def test_nominal_mass_counts_explicit_and_implicit_hydrogens_alike(smiles, mass):
    mol = mol_from_smiles(smiles)
    with_h_atoms = Chem.AddHs(mol)
    assert with_h_atoms.GetNumAtoms() > mol.GetNumAtoms() or smiles == "N#N"
    assert nominal_mass(mol) == nominal_mass(with_h_atoms) == mass


def test_graph_dimensions_and_edge_order():
    featurizer = MolGraphFeaturizer()
    mol = mol_from_smiles("CC(=O)Nc1ccc(O)cc1")
    g = featurizer(mol)
    assert g.x.shape == (mol.GetNumAtoms(), featurizer.atom_dim)
    assert g.x.dtype == torch.float32 and g.edge_attr.dtype == torch.float32
    assert g.edge_index.dtype == torch.int64
    assert g.edge_index.shape == (2, 2 * mol.GetNumBonds())
    assert g.edge_attr.shape == (2 * mol.GetNumBonds(), featurizer.bond_dim)
    for bond in mol.GetBonds():
        b = bond.GetIdx()
        begin, end = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        assert g.edge_index[:, 2 * b].tolist() == [begin, end]
        assert g.edge_index[:, 2 * b + 1].tolist() == [end, begin]
        assert torch.equal(g.edge_attr[2 * b], g.edge_attr[2 * b + 1])


def test_atom_features():
    featurizer = MolGraphFeaturizer()
    g = featurizer(mol_from_smiles("c1ccccc1[Na]"))
    carbon, sodium = g.x[0], g.x[6]
    assert carbon[ELEMENTS.index("C")] == 1 and carbon[: len(ELEMENTS) + 1].sum() == 1
    assert sodium[len(ELEMENTS)] == 1  # "other" element
    assert carbon[-1] == pytest.approx(12.011 / 100, rel=1e-4)
    assert g.x[:, : len(ELEMENTS) + 1].sum(dim=1).tolist() == [1.0] * 7
    # Every atom has exactly one degree, charge, H-count and hybridisation slot set.
    one_hots = g.x[:, : featurizer.atom_dim - 9].sum(dim=1)
    assert one_hots.tolist() == [5.0] * 7
    ring_flags = g.x[:, featurizer.atom_dim - 8]
    assert ring_flags.tolist() == [1.0] * 6 + [0.0]


def test_bond_features():
    featurizer = MolGraphFeaturizer()
    benzene = featurizer(mol_from_smiles("c1ccccc1"))
    assert benzene.edge_attr[:, 3].tolist() == [1.0] * 12  # aromatic
    assert benzene.edge_attr[:, 5].tolist() == [1.0] * 12  # in ring
    butene = mol_from_smiles("C/C=C/C")
    g = featurizer(butene)
    double = next(b.GetIdx() for b in butene.GetBonds() if b.GetBondType() == Chem.BondType.DOUBLE)
    assert g.edge_attr[2 * double, 1] == 1
    assert g.edge_attr[2 * double, 8] == 1  # E stereo
    assert g.edge_attr[:, 6:].sum(dim=1).tolist() == [1.0] * g.edge_attr.shape[0]


def test_single_atom_molecule_has_empty_edges():
    for featurizer in (MolGraphFeaturizer(), MolGraphFeaturizer(explicit_hydrogens=True)):
        g = featurizer(mol_from_smiles("[Ar]"))
        assert g.num_nodes == 1
        assert g.edge_index.shape == (2, 0) and g.edge_attr.shape == (0, featurizer.bond_dim)


def test_explicit_hydrogens_make_xh_bonds_edges():
    implicit, explicit = MolGraphFeaturizer(), MolGraphFeaturizer(explicit_hydrogens=True)
    mol = mol_from_smiles("CO")
    g = explicit(mol)
    assert g.num_nodes == 6 and g.edge_index.shape == (2, 10)
    assert explicit.atom_dim == implicit.atom_dim - 5  # no H-count one-hot
    assert g.x.shape[1] == explicit.atom_dim
    assert g.x[:, ELEMENTS.index("H")].sum() == 4
    assert implicit(mol).num_nodes == 2


def test_signature_changes_with_options():
    base = featurizer_signature(MolGraphFeaturizer(), 4096, 2)
    assert base == featurizer_signature(MolGraphFeaturizer(), 4096, 2)
    assert base != featurizer_signature(MolGraphFeaturizer(explicit_hydrogens=True), 4096, 2)
    assert base != featurizer_signature(MolGraphFeaturizer(), 2048, 2)
    assert base != featurizer_signature(MolGraphFeaturizer(), 4096, 3)
    assert {"feature_version", "rdkit"} <= set(base)


def _bond(mol, a: int, b: int) -> int:
    return mol.GetBondBetweenAtoms(a, b).GetIdx()


def test_fragment_masses_by_hand():
    ethanol = mol_from_smiles("CCO")  # CH3-CH2-OH
    masses = fragment_masses(ethanol)
    cc, co = _bond(ethanol, 0, 1), _bond(ethanol, 1, 2)
    assert masses[2 * cc].tolist() == 31 and masses[2 * cc + 1] == 15  # CH2OH+ / CH3+
    assert masses[2 * co].tolist() == 17 and masses[2 * co + 1] == 29  # OH / C2H5+
    halide = mol_from_smiles("ClCC(Br)C")  # Cl-CH2-CH(Br)-CH3: Cl 35, Br 79
    m = fragment_masses(halide)
    assert m[2 * _bond(halide, 0, 1)] == 14 + 13 + 79 + 15 and m[2 * _bond(halide, 0, 1) + 1] == 35
    assert m[2 * _bond(halide, 2, 3)] == 79 and m[2 * _bond(halide, 2, 3) + 1] == 35 + 14 + 13 + 15


def test_fragment_masses_of_ring_bonds_are_zero_and_the_two_ions_add_up():
    mol = mol_from_smiles("OC1CCCCC1")
    masses = fragment_masses(mol)
    for bond in mol.GetBonds():
        b = bond.GetIdx()
        if bond.IsInRing():
            assert masses[2 * b] == masses[2 * b + 1] == 0
        else:
            assert {int(masses[2 * b]), int(masses[2 * b + 1])} == {17, 83}
    for smiles in ("CC(=O)Nc1ccc(O)cc1", "CC(C)(C)[Si](C)(C)OC(=O)CCl", "[2H]C([2H])([2H])C(=O)O"):
        mol = mol_from_smiles(smiles)
        m = fragment_masses(mol)
        for bond in mol.GetBonds():
            b = bond.GetIdx()
            assert bond.IsInRing() or m[2 * b] + m[2 * b + 1] == nominal_mass(mol), (smiles, b)


def test_fragment_masses_of_a_lone_atom_and_with_explicit_hydrogens():
    assert fragment_masses(mol_from_smiles("[Ar]")).shape == (0,)
    featurizer = MolGraphFeaturizer(explicit_hydrogens=True)
    g = featurizer(mol_from_smiles("CO"))
    assert g.frag_mass.dtype == torch.int64 and g.frag_mass.shape == (10,)
    hydrogen = g.x[:, ELEMENTS.index("H")] == 1
    ends = g.edge_index[1]
    assert (g.frag_mass[hydrogen[ends]] == 1).all()
    assert (g.frag_mass[0::2] + g.frag_mass[1::2] == 32).all()  # CH3OH
