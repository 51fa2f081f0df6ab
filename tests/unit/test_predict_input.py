"""Reading prediction inputs that are not clean: undecodable lines, files that are not text, byte-order marks
and broken SD records."""

from __future__ import annotations

from pathlib import Path

import pytest
from rdkit import Chem

from nextims.data.molecules import ChunkPreparer, read_molecules
from nextims.errors import InputError
from nextims.predict import tsv_field


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
