"""Reading prediction inputs that are not clean: undecodable lines, files that are not text, byte-order marks
and broken SD records; structures that are salts, isotope-labelled or radicals, and molecules a model predicts
no peak for."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rdkit import Chem

from nextims.data.molecules import ChunkPreparer, InputMolecule, read_molecules
from nextims.errors import InputError
from nextims.predict import compose_predict, run_predict, tsv_field


def failures(path: Path, **columns: str) -> tuple[list[str], list[tuple[str, str, str]]]:
    """The names of the usable molecules in path and the (name, reason, detail) of those that fail."""
    chunk = ChunkPreparer(max_mass=2000, fp_bits=64)(read_molecules(str(path), **columns))
    return [m.name for m in chunk.molecules], chunk.failures


@pytest.mark.parametrize("name, content, line", [
    ("in.smi", b"CCO ethanol\nCCC caf\xe9\nc1ccccc1O phenol\n", 2),
    ("in.csv", b"smiles,name\nCCO,ethanol\nCCC,caf\xe9\nc1ccccc1O,phenol\n", 3),
])
def test_a_latin1_line_is_listed_and_the_others_read(tmp_path: Path, name: str, content: bytes, line: int) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    names, failed = failures(path)
    assert names == ["ethanol", "phenol"]
    assert failed == [(f"line{line}", "undecodable_line", f"line {line}: byte 0xe9 is not UTF-8")]


@pytest.mark.parametrize("suffix", [".smi", ".csv", ".sdf"])
@pytest.mark.parametrize("content", [bytes(range(256)) * 4, "smiles,name\nCCO,ethanol\n".encode("utf-16")],
                         ids=["binary", "utf16"])
def test_a_file_that_is_not_utf8_text_is_refused_in_one_line(tmp_path: Path, suffix: str, content: bytes) -> None:
    path = tmp_path / f"in{suffix}"
    path.write_bytes(content)
    with pytest.raises(InputError, match=rf"in\{suffix}: not UTF-8 text; expected .*UTF-8") as err:
        list(read_molecules(str(path)))
    assert "\n" not in str(err.value)


def test_a_csv_header_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"smiles,n\xe4me\nCCO,ethanol\n")
    with pytest.raises(InputError, match="not UTF-8 text; expected UTF-8 CSV text with a header row"):
        list(read_molecules(str(path)))


def test_a_csv_byte_order_mark_is_stripped(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("smiles,name\nCCO,ethanol\n", encoding="utf-8-sig")
    assert [(m.name, m.smiles) for m in read_molecules(str(path))] == [("ethanol", "CCO")]


def test_a_file_holding_only_the_start_of_a_byte_order_mark_is_listed_not_swallowed(tmp_path: Path) -> None:
    path = tmp_path / "in.smi"
    path.write_bytes(b"\xef\xbb")  # a BOM cut after two bytes: Python's utf-8-sig decoder returns nothing for it
    (molecule,) = read_molecules(str(path))
    assert molecule.name == "line1" and molecule.error == ("undecodable_line", "line 1: byte 0xef is not UTF-8")


def test_broken_sd_records_are_listed_by_number_title_and_rdkit_reason(tmp_path: Path) -> None:
    good = Chem.MolFromSmiles("CCO")
    good.SetProp("_Name", "ethanol")
    pentavalent = Chem.MolToMolBlock(Chem.MolFromSmiles("C(C)(C)(C)(C)C", sanitize=False))
    pentavalent = "pentavalent" + pentavalent[pentavalent.index("\n"):]
    garbled = Chem.MolToMolBlock(Chem.MolFromSmiles("CC")).replace("  2  1", " 2x 1")
    garbled = "garbled" + garbled[garbled.index("\n"):]
    last = Chem.MolFromSmiles("c1ccccc1O")
    sdf = tmp_path / "in.sdf"
    sdf.write_text("".join(block + "$$$$\n" for block in (Chem.MolToMolBlock(good) + ">  <id>\n1\n\n",
                                                          pentavalent, garbled, Chem.MolToMolBlock(last))))
    names, failed = failures(sdf)
    assert names == ["ethanol", "mol4"]
    (name1, reason1, detail1), (name2, reason2, detail2) = failed
    assert (name1, reason1) == ("pentavalent", "bad_molblock") and detail1.startswith("record 2 (line ")
    assert "Explicit valence for atom # 0 C, 5" in detail1
    assert (name2, reason2) == ("garbled", "bad_molblock") and detail2.startswith("record 3 (line ")
    assert "Cannot convert ' 2x' to unsigned int" in detail2


def test_tsv_field_escapes_tabs_newlines_and_backslashes() -> None:
    assert tsv_field("a\tb\nc\rd\\e") == "a\\tb\\nc\\rd\\\\e"


def test_a_cut_compressed_input_ends_with_a_truncated_file_row(tmp_path: Path) -> None:
    import gzip

    packed = gzip.compress(b"".join(b"C%s mol%d\n" % (b"C" * (i % 7), i) for i in range(5000)))
    path = tmp_path / "in.smi.gz"
    path.write_bytes(packed[: len(packed) // 2])
    molecules = list(read_molecules(str(path)))
    good, last = molecules[:-1], molecules[-1]
    assert 0 < len(good) < 5000 and [m.name for m in good] == [f"mol{i}" for i in range(len(good))]
    assert last.error == ("truncated_file", f"the compressed stream ends early after {len(good)} molecules; the "
                                            "rest is lost")


def test_a_damaged_compressed_input_is_refused_in_one_line(tmp_path: Path) -> None:
    import bz2

    packed = bz2.compress(b"CCO ethanol\n" * 20000)
    path = tmp_path / "in.smi.bz2"
    path.write_bytes(packed[:len(packed) // 2] + bytes([packed[len(packed) // 2] ^ 0xFF]) + packed[len(packed) // 2 + 1:])
    with pytest.raises(InputError, match=r"in\.smi\.bz2: the compressed stream is damaged"):
        next(read_molecules(str(path)))


def test_compressed_smiles_files_read_like_plain_ones(tmp_path: Path) -> None:
    import gzip
    import lzma

    text = b"CCO ethanol\nCCC caf\xe9\nc1ccccc1O phenol\n"
    plain = tmp_path / "in.smi"
    plain.write_bytes(text)
    (tmp_path / "in.smi.gz").write_bytes(gzip.compress(text))
    (tmp_path / "in.smi.xz").write_bytes(lzma.compress(text))
    expected = failures(plain)
    assert failures(tmp_path / "in.smi.gz") == expected == failures(tmp_path / "in.smi.xz")
    assert expected[0] == ["ethanol", "phenol"]


def prepared(*smiles: str) -> tuple[list, list[tuple[str, str, str]]]:
    """The prepared molecules of SMILES strings (each named by itself) and the (name, reason, detail) of failures."""
    chunk = ChunkPreparer(max_mass=500, fp_bits=64)([InputMolecule(s, s) for s in smiles])
    return chunk.molecules, chunk.failures


@pytest.mark.parametrize("salt, neutral, charged", [("CC(=O)[O-].[Na+]", "CC(=O)O", "CC(=O)[O-]"),
                                                    ("C[NH3+].[Cl-]", "CN", "C[NH3+]"),
                                                    ("[O-]c1ccccc1.[K+]", "Oc1ccccc1", "[O-]c1ccccc1")])
def test_a_salt_becomes_its_neutralised_largest_organic_fragment(salt: str, neutral: str, charged: str) -> None:
    (mol,), failed = prepared(salt)
    assert not failed and mol.smiles == neutral
    assert mol.note == f"largest organic fragment of {salt}; neutralised from {charged}"
    assert mol.inchikey == Chem.MolToInchiKey(Chem.MolFromSmiles(neutral))


def test_charges_hydrogens_cannot_remove_are_refused_and_zwitterions_kept() -> None:
    molecules, failed = prepared("C[N+](C)(C)C", "[Na+].[Cl-]", "[NH3+]CC(=O)[O-]", "C[N+](=O)[O-]")
    assert [(m.smiles, m.note) for m in molecules] == [("[NH3+]CC(=O)[O-]", ""), ("C[N+](=O)[O-]", "")]
    assert [(name, reason) for name, reason, _ in failed] == [("C[N+](C)(C)C", "net_charge"),
                                                              ("[Na+].[Cl-]", "net_charge")]


def test_isotope_labels_are_refused_naming_the_labels_and_the_unlabelled_compound() -> None:
    molecules, failed = prepared("[2H]C([2H])([2H])O[2H]", "[13CH3]C(=O)O", "CO")
    assert [m.smiles for m in molecules] == ["CO"]
    (deuterated, reason, detail), (carbon13, reason13, detail13) = failed
    assert (deuterated, reason, carbon13, reason13) == ("[2H]C([2H])([2H])O[2H]", "isotope_label",
                                                        "[13CH3]C(=O)O", "isotope_label")
    assert detail.startswith("4 x 2H;") and detail.endswith("unlabelled compound CO")
    assert detail13.startswith("1 x 13C;") and detail13.endswith("unlabelled compound CC(=O)O")


_PERIODIC = Chem.GetPeriodicTable()
_BASES = ("CCO", "c1ccccc1C(=O)O", "CC(=O)[O-].[Na+]", "C[NH3+].[Cl-]", "ClC(Cl)Cl", "CS(=O)C", "C[N]C", "CN")


@st.composite
def labelled_smiles(draw: st.DrawFn) -> str:
    """A small molecule, salt or radical with isotope labels on some of its atoms (hydrogens included)."""
    mol = Chem.AddHs(Chem.MolFromSmiles(draw(st.sampled_from(_BASES))))
    for atom in mol.GetAtoms():
        shift = draw(st.sampled_from((None, None, None, 0, 1, 2)))
        if shift is not None:
            atom.SetIsotope(_PERIODIC.GetMostCommonIsotope(atom.GetAtomicNum()) + shift)
    return Chem.MolToSmiles(Chem.RemoveHs(mol))


def formula_mass(formula: str) -> int:
    """The nominal mass of a Hill formula such as C2H6O."""
    return sum(_PERIODIC.GetMostCommonIsotope(element) * int(count or 1)
               for element, count in re.findall(r"([A-Z][a-z]?)(\d*)", formula))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labelled_smiles())
def test_the_formula_and_mass_written_never_disagree(smiles: str) -> None:
    molecules, failed = prepared(smiles)
    for mol in molecules:
        assert formula_mass(mol.formula) == mol.mass, (smiles, mol)
    assert all(reason in ("isotope_label", "net_charge") for _, reason, _ in failed), failed


def test_a_radical_gets_a_note_naming_its_atoms_and_the_closed_shell_molecule() -> None:
    (mol,), _ = prepared("C[N]C")
    assert mol.smiles == "C[N]C"
    assert mol.note == ("radical (unpaired electrons: [N] 1), predicted as written; if hydrogens were left out, the "
                        "closed-shell molecule is CNC")


def test_the_teacher_lists_methane_and_the_methyl_radical_with_an_actionable_reason(tmp_path: Path) -> None:
    smi = tmp_path / "in.smi"
    smi.write_text("C methane\n[CH3] methyl\nC[N]C dimethylaminyl\nCC(=O)[O-].[Na+] sodium_acetate\n")
    out = tmp_path / "out.json"
    report = run_predict(compose_predict([f"input={smi}", f"output={out}", "model=teacher", "workers=0", "device=cpu",
                                          "progress=false"]))
    assert report.kept == 2 and dict(report.dropped) == {"empty_prediction": 2}
    rows = [line.split("\t") for line in (tmp_path / "out.json.errors.tsv").read_text().splitlines()[1:]]
    no_peak = "teacher_massbank predicts no peak at m/z 1-1000 for this molecule"
    others = "try another model (model=student, model=neims)"
    assert rows == [["methane", "empty_prediction", f"{no_peak} (nominal mass 16); {others}"],
                    ["methyl", "empty_prediction", f"{no_peak} (nominal mass 15); {others}; radical (unpaired "
                     "electrons: [CH3] 1), predicted as written; if hydrogens were left out, the closed-shell "
                     "molecule is C"]]
    aminyl, acetate = json.loads(out.read_text())
    assert "; radical (unpaired electrons: [N] 1)" in aminyl["comments"]
    assert (acetate["smiles"], acetate["formula"], acetate["mw"]) == ("CC(=O)O", "C2H4O2", 60)
    assert acetate["comments"].endswith("; neutralised from CC(=O)[O-]")
