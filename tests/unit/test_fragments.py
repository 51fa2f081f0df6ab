"""Fragments of up to two bond cleavages (hand-checked molecules, a brute-force check of which bond pairs split a
molecule) and the coverage measurement."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem

from nextims.bench import main as bench_main
from nextims.fragment_coverage import LEVELS, decoys, measure, spectrum_coverage
from nextims.data.fragments import enumerate_fragments, fragment_pieces, hill_formula, ion_mz

_TABLE = Chem.GetPeriodicTable()


def ions(smiles: str, **kwargs: object) -> dict[str, tuple[int, int, int, int]]:
    """formula -> (m/z, cuts of the simplest source, its shift, number of sources)."""
    f = enumerate_fragments(Chem.MolFromSmiles(smiles), **kwargs)
    assert len(set(f.formula)) == len(f)  # deduplicated by ion formula
    return {fo: (int(m), int(k), int(s), len(src)) for fo, m, k, s, src in zip(f.formula, f.mz, f.n_cuts, f.h_shift,
                                                                              f.sources)}


def formula_mass(formula: str) -> int:
    """Nominal mass of a Hill formula."""
    return sum(_TABLE.GetMostCommonIsotope(e) * int(n or 1) for e, n in re.findall(r"([A-Z][a-z]?)(\d*)", formula))


def test_ethane_one_cut_gives_methyl_twice_as_one_ion() -> None:
    plain = ions("CC", h_shifts=(0,))
    assert plain == {"CH3": (15, 1, 0, 2), "C2H6": (30, 0, 0, 1)}
    shifted = ions("CC")
    assert {fo: v[0] for fo, v in shifted.items() if v[1] == 1} == {"CH": 13, "CH2": 14, "CH3": 15, "CH4": 16,
                                                                   "CH5": 17}
    # the molecular ion only loses hydrogens: M-H and M-2H
    assert {fo: v[:3] for fo, v in shifted.items() if v[1] == 0} == {"C2H6": (30, 0, 0), "C2H5": (29, 0, -1),
                                                                     "C2H4": (28, 0, -2)}


def test_propane_middle_piece_of_two_cuts() -> None:
    assert ions("CCC", h_shifts=(0,)) == {"CH3": (15, 1, 0, 2), "C2H5": (29, 1, 0, 2), "CH2": (14, 2, 0, 1),
                                          "C3H8": (44, 0, 0, 1)}
    f = enumerate_fragments(Chem.MolFromSmiles("CCC"), h_shifts=(0,))
    middle = f.formula.index("CH2")
    assert f.cuts[middle] == (0, 1) and f.atoms[middle].tolist() == [1]


def test_toluene_single_cuts_ring_openings_and_benzylic_ion() -> None:
    plain = ions("Cc1ccccc1", h_shifts=(0,))
    one = {fo for fo, v in plain.items() if v[1] == 1}
    two = {fo for fo, v in plain.items() if v[1] == 2}
    assert one == {"CH3", "C6H5"} and plain["C6H5"][0] == 77 and plain["C7H8"] == (92, 0, 0, 1)
    # two cuts in the ring: arcs of k ring CH, or of the ipso carbon, its methyl and k - 1 ring CH
    assert two == {"CH", "C2H2", "C3H3", "C4H4", "C5H5", "C2H3", "C3H4", "C4H5", "C5H6", "C6H7"}
    pieces = fragment_pieces(Chem.MolFromSmiles("Cc1ccccc1"))
    assert (pieces.n_cuts == 2).sum() == 2 * 15  # every pair of the six ring bonds splits it in two
    assert ions("Cc1ccccc1")["C7H7"] == (91, 0, -1, 1)  # the benzylic ion: M - H


def test_cyclohexane_has_no_single_cut_and_ring_pairs_give_c1_to_c5() -> None:
    got = ions("C1CCCCC1", h_shifts=(0,))
    assert got == {"CH2": (14, 2, 0, 6), "C2H4": (28, 2, 0, 6), "C3H6": (42, 2, 0, 6), "C4H8": (56, 2, 0, 6),
                   "C5H10": (70, 2, 0, 6), "C6H12": (84, 0, 0, 1)}
    assert len(enumerate_fragments(Chem.MolFromSmiles("C1CCCCC1"), max_cuts=1)) == 3  # M, M-H, M-2H


def test_ethyl_acetate_acylium_and_heteroatom_hydrogens() -> None:
    mol = Chem.MolFromSmiles("CCOC(C)=O")
    f = enumerate_fragments(mol)
    acylium = f.formula.index("C2H3O")
    assert f.mz[acylium] == 43 and f.n_cuts[acylium] == 1 and f.h_shift[acylium] == 0
    bond = mol.GetBondBetweenAtoms(2, 3).GetIdx()
    assert f.cuts[acylium] == (bond,) and f.atoms[acylium].tolist() == [3, 4, 5]
    got = ions("CCOC(C)=O")
    assert got["C2H5O"][:3] == (45, 1, 0) and got["C4H8O2"] == (88, 0, 0, 1)
    # McLafferty-like acetic acid ion C2H4O2 (60): the acetoxy piece C2H3O2 with one hydrogen more
    assert got["C2H4O2"][:3] == (60, 1, 1)
    assert all(formula_mass(fo) == v[0] for fo, v in got.items())


def test_hydrogens_move_only_from_where_they_are() -> None:
    # no hydrogen anywhere: no shifted ion at all
    assert ions("ClC(Cl)(Cl)Cl") == {"Cl": (35, 1, 0, 4), "CCl3": (117, 1, 0, 4), "CCl2": (82, 2, 0, 6),
                                     "CCl4": (152, 0, 0, 1)}
    # the O piece of a C=O cut has no hydrogen to give, and it can take at most all of the rest's
    got = ions("C=O")
    assert "CH4" not in got and got["HO"][:3] == (17, 1, 1) and got["H2O"][:3] == (18, 1, 2)
    assert got["C"][:3] == (12, 1, -2) and "CH3O" not in got


def test_explicit_hydrogens_and_unsanitized_rings_give_the_same_fragments() -> None:
    for smiles in ("CCOC(C)=O", "Cc1ccccc1", "OC1CCC2(CC1)CCCC2"):
        mol = Chem.MolFromSmiles(smiles)
        plain, explicit = enumerate_fragments(mol), enumerate_fragments(Chem.AddHs(mol))
        assert plain.formula == explicit.formula and np.array_equal(plain.mz, explicit.mz)
        assert plain.cuts == explicit.cuts and all(np.array_equal(a, b) for a, b in zip(plain.atoms, explicit.atoms))
    raw = Chem.MolFromSmiles("OC1CCC2(CC1)CCCC2", sanitize=False)
    raw.UpdatePropertyCache()
    assert enumerate_fragments(raw).formula == enumerate_fragments(Chem.MolFromSmiles("OC1CCC2(CC1)CCCC2")).formula


def brute_force_pieces(mol: Chem.Mol) -> dict[frozenset[int], int]:
    """Every new piece of every set of one or two bonds whose removal adds a part, with the fewest cuts, and the
    whole molecule."""
    n = mol.GetNumAtoms()
    bonds = [(b.GetIdx(), b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()]

    def parts(removed: tuple[int, ...]) -> list[frozenset[int]]:
        parent = list(range(n))

        def find(x: int) -> int:
            while parent[x] != x:
                x = parent[x]
            return x

        for b, u, v in bonds:
            if b not in removed:
                parent[find(u)] = find(v)
        groups: dict[int, set[int]] = {}
        for a in range(n):
            groups.setdefault(find(a), set()).add(a)
        return [frozenset(g) for g in groups.values()]

    whole = parts(())
    out = {frozenset(range(n)): 0}
    for k in (1, 2):
        for removed in itertools.combinations([b for b, _, _ in bonds], k):
            split = parts(removed)
            if len(split) > len(whole):
                for piece in set(split) - set(whole):
                    out.setdefault(piece, k)
    return out


@pytest.mark.parametrize("smiles", [
    "c1ccc2ccccc2c1", "C1CCC2(CC1)CCCC2", "C1CC2CCC1C2", "C12C3C4C1C5C2C3C45", "CC(C)Cc1ccc(cc1)C(C)C(=O)O",
    "C[C@]12CC[C@H]3[C@@H](CC=C4CC(O)CC[C@]34C)[C@@H]1CC[C@@H]2O", "c1ccc(cc1)-c1ccccc1", "C1CCCCCCCCCCC1",
    "CN1C=NC2=C1C(=O)N(C(=O)N2C)C", "O=C1c2ccccc2C(=O)c2ccccc21", "C1CC1C1CC1", "CCO.CC",
])
def test_pieces_are_those_of_every_disconnecting_bond_set(smiles: str) -> None:
    mol = Chem.MolFromSmiles(smiles)
    pieces = fragment_pieces(mol)
    mine = {frozenset(pieces.nodes[row].tolist()): int(k) for row, k in zip(pieces.atoms, pieces.n_cuts)}
    assert len(mine) == len(pieces)  # every piece once
    assert mine == brute_force_pieces(mol)
    # each piece's cut bonds are exactly the bonds leaving it
    for row, cut in zip(pieces.atoms, pieces.cuts):
        inside = set(pieces.nodes[row].tolist())
        leaving = {b.GetIdx() for b in mol.GetBonds()
                   if (b.GetBeginAtomIdx() in inside) != (b.GetEndAtomIdx() in inside)}
        assert leaving == set(cut)


def test_max_cuts_and_ion_mz_agree_with_the_ion_table() -> None:
    mol = Chem.MolFromSmiles("CC(=O)Oc1ccccc1C(=O)O")
    for max_cuts in (0, 1, 2):
        f = enumerate_fragments(mol, max_cuts=max_cuts)
        assert f.n_cuts.max() == max_cuts and np.array_equal(np.unique(f.mz), ion_mz(f.pieces, max_cuts))
        assert list(f.mz) == sorted(f.mz)
    full = fragment_pieces(mol)
    assert np.array_equal(ion_mz(full, 1, (0,)), np.unique(full.mass[full.n_cuts <= 1]))
    with pytest.raises(ValueError):
        fragment_pieces(mol, max_cuts=3)


def test_hill_formula() -> None:
    assert hill_formula({"C": 1, "H": 4}) == "CH4"
    assert hill_formula({"H": 1, "O": 1}) == "HO" and hill_formula({"Cl": 1, "H": 1}) == "ClH"
    assert hill_formula({"C": 6, "H": 5, "Br": 1, "N": 0}) == "C6H5Br" and hill_formula({"O": 2, "C": 1}) == "CO2"


def test_spectrum_coverage_and_decoys() -> None:
    spectrum = np.zeros(50, np.float32)
    spectrum[[15, 29, 30]] = [1.0, 2.0, 1.0]
    share, weighted, bins, count = spectrum_coverage(spectrum, np.array([15, 30, 40, 99]), 30)
    assert share == pytest.approx(0.5) and bins == pytest.approx(2 / 30) and count == 2
    w = np.sqrt([1.0, 2.0, 1.0]) * [15, 29, 30]
    assert weighted == pytest.approx((w[0] + w[2]) / w.sum())
    assert decoys(np.array([30, 100, 32, 99])).tolist() == [2, 3, 0, 1]
    assert decoys(np.array([7])).tolist() == [-1]


def test_measure_levels_grow_with_cuts_and_shifts() -> None:
    smiles = ["CCC(=O)CC", "Cc1ccccc1"]
    spectra = np.zeros((2, 101), np.float32)
    spectra[0, [29, 57, 86]] = [60, 100, 20]
    spectra[1, [39, 65, 91, 92]] = [10, 10, 100, 60]
    report = measure(smiles, spectra)
    assert report.coverage.shape == (2, len(LEVELS), 4) and report.decoy.shape == (2, len(LEVELS))
    intensity = report.coverage[:, :, 0]
    assert intensity[0].tolist() == pytest.approx([20 / 180, 20 / 180, 1, 1, 1, 1])
    assert intensity[1, 0] == pytest.approx(60 / 180) and intensity[1, 1] == pytest.approx(160 / 180)
    assert intensity[1, -1] == pytest.approx(1)  # C3H3 39 and C5H5 65: two cuts in the ring
    assert (np.diff(report.coverage[:, [0, 2, 4], 0], axis=1) >= 0).all()


def test_bench_fragments_on_the_tiny_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench_main(["fragments", "bench.fragments.molecules=12", "data=tiny", f"paths.cache_dir={tmp_path}"])
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert lines[-1].startswith("fragments molecules=12 ms_per_mol=") and "coverage_2cut=" in out
    rows = lines[-1 - len(LEVELS):-1]
    assert [row[:22].strip() for row in rows] == [level.name for level in LEVELS]
