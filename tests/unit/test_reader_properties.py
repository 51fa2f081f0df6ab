"""Property tests of the spectrum readers (NIST MSP, MassBank records and JSON Lines, NEIMS SDF) and of predict's
molecule reader (.smi, .csv): corrupting a valid file never crashes a reader; a record the corruption left intact
reads exactly as written; what a corrupted stretch of a file yields depends on that stretch alone and never mixes
the identity of one record with the peaks or structure of another; every record is yielded or counted."""

from __future__ import annotations

import bz2
import csv
import dataclasses
import functools
import gzip
import io
import json
import lzma
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rdkit import Chem

from nextims.data.molecules import read_molecules
from nextims.errors import DropReport, InputError, RecordError
from nextims.io.massbank_jsonl import read_massbank_jsonl
from nextims.io.massbank_record import read_massbank_record
from nextims.io.msp import read_msp
from nextims.io.sdf import read_sdf
from nextims.io.text import STREAM_ERRORS, DamagedFileError, check_stream, open_binary
from nextims.spectrum import Spectrum

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large])
DATA = Path(__file__).resolve().parents[1] / "data" / "io"
BOM = b"\xef\xbb\xbf"
MAGIC = (b"\x1f\x8b", b"\xfd7zXZ\x00", b"BZh")
COMPRESS: dict[str, Callable[[bytes], bytes]] = {"": bytes, ".gz": lambda b: gzip.compress(b, mtime=0),
                                                 ".xz": lzma.compress, ".bz2": bz2.compress}
# A record id that is the record's place in the file (`t.msp.gz:12`): the same record read from another file
# (the stretch of a file read alone) has another place, so such ids are compared as this placeholder.
_PLACE = re.compile(r"t\.[a-z]+(?:\.(?:gz|xz|bz2))?:\d+")
# Bytes a corruption writes: NUL, bytes that are not UTF-8, a bare CR, a newline (which makes two lines of one),
# blanks, and the digits and punctuation the formats are made of. No upper-case letter and no digit 1-8: an edit
# cannot turn one record's tag or signature peak (below) into another's.
_BYTE = st.sampled_from([b"\x00", b"\xff", b"\xc3", b"\r", b"\n", b" ", b"\t", b"x", b"e", b"9", b"0", b"-", b".",
                         b":", b";", b",", b'"', b"[", b"]", b"{", b"}", b"/", b"$", b"<", b">", b"#"])


def _separated(candidates: range, n: int) -> tuple[int, ...]:
    """n numbers of candidates written with the digits 1-8 only, any two differing in at least two digits."""
    out: list[int] = []
    for value in candidates:
        if set(str(value)) <= set("12345678") and all(sum(a != b for a, b in zip(str(value), str(o))) >= 2
                                                      for o in out):
            out.append(value)
    return tuple(out[:n])


# Generated record i is named by TAGS[i] (in its id, SMILES and InChIKey) and has the signature peak
# (SIGNATURE_MZ[i], SIGNATURE_INTENSITY[i]), which no other peak has: 4-digit m/z, the others have at most 3.
TAGS = ("QJKWZP", "BVRTMD", "GLZQWK", "DMPJVB", "KTWGLR", "ZBQDMJ", "WRKVTG", "PGDZLQ")
SIGNATURE_MZ = _separated(range(1111, 4889), len(TAGS))
SIGNATURE_INTENSITY = _separated(range(111, 889), len(TAGS))
# SDF structures, one per record, of distinct heavy-atom counts (an edit cannot make one into another).
_SDF_SMILES = ("CI", "CCO", "CC(=O)O", "CCCCO", "c1ccccc1", "Cc1ccccc1", "Oc1ccccc1C", "CC(=O)c1ccccc1")


def _molecule(smiles: str) -> tuple[str, str, str]:
    """A V2000 mol block without its title line, and the canonical SMILES and InChIKey RDKit reads from it."""
    body = Chem.MolToMolBlock(Chem.MolFromSmiles(smiles)).split("\n", 1)[1]
    mol = Chem.MolFromMolBlock("title\n" + body)
    return body, Chem.MolToSmiles(mol), Chem.MolToInchiKey(mol)


MOLECULES = tuple(map(_molecule, _SDF_SMILES))


# ---------------------------------------------------------------------------------------------- the formats


@dataclass(frozen=True)
class Rec:
    """A generated record: its number (its tag, signature peak and SDF structure) and its peaks as written."""

    index: int
    peaks: tuple[tuple[str, str], ...]  # (m/z, intensity) text, m/z ascending, the signature peak last
    style: int  # how the record is laid out (peak separators, optional fields)


def _num(text: str) -> int | float:
    return int(text) if text.isdigit() else float(text)


def _plain_identity(i: int, accession: bool) -> tuple[str, str, str]:
    tag = TAGS[i]
    # the SMILES need not be valid: these readers keep it as text
    return (f"MSBNK-TEST-{tag}" if accession else tag), f"CCO[{tag}]", f"{tag}XXXXXXXX-UHFFFAOYSA-N"


def _write_msp(rec: Rec) -> str:
    ident, smiles, inchikey = _plain_identity(rec.index, False)
    pairs = [f"{mz} {intensity}" for mz, intensity in rec.peaks]
    body = {0: "\n".join(pairs),
            1: "\n".join("; ".join(pairs[k:k + 3]) + ";" for k in range(0, len(pairs), 3)),
            2: "\n".join(p.replace(" ", "\t") for p in pairs),
            3: "\n".join(f'{p} "C{k}H+"' for k, p in enumerate(pairs))}[rec.style]
    return (f"Name: compound {TAGS[rec.index]}\nDB#: {ident}\nInChIKey: {inchikey}\nSMILES: {smiles}\n"
            f"Num Peaks: {len(rec.peaks)}\n{body}\n\n")


def _write_massbank(rec: Rec) -> str:
    ident, smiles, inchikey = _plain_identity(rec.index, True)
    top = max(float(i) for _, i in rec.peaks)
    rows = "".join(f"  {mz} {i} {max(1, round(999 * float(i) / top))}\n" for mz, i in rec.peaks)
    annotation = "PK$ANNOTATION: m/z tentative_formula\n  41 C3H5+\n" if rec.style % 2 else ""
    return (f"ACCESSION: {ident}\nRECORD_TITLE: compound {TAGS[rec.index]}; EI-B; MS\n"
            f"CH$NAME: compound {TAGS[rec.index]}\nCH$SMILES: {smiles}\nCH$LINK: INCHIKEY {inchikey}\n"
            f"AC$INSTRUMENT_TYPE: EI-B\nAC$MASS_SPECTROMETRY: MS_TYPE MS\n{annotation}"
            f"PK$NUM_PEAK: {len(rec.peaks)}\nPK$PEAK: m/z int. rel.int.\n{rows}//\n")


def _write_jsonl(rec: Rec) -> str:
    ident, smiles, inchikey = _plain_identity(rec.index, True)
    obj = {"accession": ident, "name": f"compound {TAGS[rec.index]}", "smiles": smiles, "inchikey": inchikey,
           "peaks": [[_num(mz), _num(i)] for mz, i in rec.peaks]}
    return json.dumps(obj, separators=(",", ":") if rec.style % 2 else None) + "\n"


def _write_sdf(rec: Rec) -> str:
    tag = TAGS[rec.index]
    title = f"compound {tag}" if rec.style % 2 == 0 else ""
    inchikey = f"> <INCHIKEY>\n{MOLECULES[rec.index][2]}\n\n" if rec.style < 2 else ""  # else computed by RDKit
    peaks = "\n".join(f"{mz} {i}" for mz, i in rec.peaks)
    return (f"{title}\n{MOLECULES[rec.index][0]}> <NAME>\ncompound {tag}\n\n{inchikey}> <ID DB NO>\n{tag}\n\n"
            f"> <MASS SPECTRAL PEAKS>\n{peaks}\n\n$$$$\n")


@dataclass(frozen=True, repr=False)
class Fmt:
    """A spectrum format: its reader, a writer of generated records, and the lines that end its records."""

    name: str
    ext: str
    read: Callable[..., Iterator[Spectrum]]
    write: Callable[[Rec], str]
    identity: Callable[[int], tuple[str, str, str]]  # id, SMILES and InChIKey the reader finds in record i
    ends: Callable[[bytes], bool]  # whether bytes end with a whole line that closes a record
    is_end: Callable[[bytes], bool]  # whether one line closes a record
    neutral: bytes  # a line that may stand before any record and is no record itself
    snippets: tuple[bytes, ...]  # format-aware garbage: fragments of records, and values known to be hazards
    fixture: Path
    # Whether an intact record that a lost closing line joined to the end of a corrupted one can take fields it
    # lacks from that one. MSP: its records have no opening line and no field must come first, so `NIST#: 2`
    # left of record 2, joined to record 3 (which has no NIST#), is one valid record named 2, for any reader. The
    # other formats have a mandatory, unique field in every record (ACCESSION; the mol block), which a join repeats.
    lends: bool = False

    def __repr__(self) -> str:
        return self.name


_MSP_SNIPPETS = (b"Num Peaks: 2\n41 999\n", b"43 100\n", b"Name: \nNum Peaks: 1\n", b"\n\n\n", b"Num Peaks: x\n",
                 b"Synon: [{[]: 0}]\n", b"Synon: ['a', {1, []}]\nNum Peaks: 1\n41 1\n",
                 b"Synon: [" + b"+" * 5000 + b"1]\n",
                 b"CAS#: 1" + b"; CAS#: 1" * 1500 + b"\n", b"DB#:\nNum Peaks: 0\n")
_MASSBANK_SNIPPETS = (b"//\n", b"  41 100 999\n", b"PK$NUM_PEAK: 1\n", b"PK$PEAK: m/z int. rel.int.\n  41 1 1\n",
                      b"ACCESSION: \n", b"CH$LINK: INCHIKEY\n", b"PK$NUM_PEAK: many\n")
_SDF_SNIPPETS = (b"$$$$\n", b"M  END\n", b"> <MASS SPECTRAL PEAKS>\n41 1\n\n", b"> <ID DB NO>\n\n",
                 b"\n\n  0  0  0  0  0  0  0  0  0  0999 V2000\nM  END\n", b">  <NAME>\n")
_JSONL_SNIPPETS = (b"{}\n", b"[1]\n", b'{"peaks": [[41, 1]]}\n', b'{"peaks": [[1' + b"0" * 400 + b", 1]]}\n",
                   b"1" * 5000 + b"\n", b"[" * 3000 + b"\n", b'{"peaks": {"a": 1}}\n', b'{"peaks": [[41, -1]]}\n',
                   b'{"accession": null, "peaks": [[41, 1, 2]]}\n', b'{"peaks": [[41, 1e999]]}\n')

FORMATS = (
    Fmt("msp", ".msp", read_msp, _write_msp, lambda i: _plain_identity(i, False),
        lambda b: b.endswith((b"\n\n", b"\n\r\n")), lambda line: not line.strip(), b"\n", _MSP_SNIPPETS,
        DATA / "lib2nist_sample.msp", lends=True),
    Fmt("massbank", ".txt", read_massbank_record, _write_massbank, lambda i: _plain_identity(i, True),
        lambda b: re.search(rb"\n//\r?\n\Z", b) is not None, lambda line: line.strip() == b"//", b"//\n",
        _MASSBANK_SNIPPETS, DATA / "massbank_records"),
    Fmt("jsonl", ".jsonl", read_massbank_jsonl, _write_jsonl, lambda i: _plain_identity(i, True),
        lambda b: b.endswith(b"\n"), lambda line: False, b"\n", _JSONL_SNIPPETS,
        DATA / "massbank_ei_sample.jsonl"),
    Fmt("sdf", ".sdf", read_sdf, _write_sdf, lambda i: (TAGS[i], *MOLECULES[i][1:]),
        lambda b: re.search(rb"\n\$\$\$\$\r?\n\Z", b) is not None, lambda line: line.rstrip() == b"$$$$",
        b"$$$$\n", _SDF_SNIPPETS, DATA / "neims_sample.sdf"),
)
_IDS = [f.name for f in FORMATS]


# ------------------------------------------------------------------------------------------ records and keys

Key = tuple  # (id, m/z, intensities, SMILES, InChIKey) of a spectrum


def key(spectrum: Spectrum) -> Key:
    """What a spectrum says about its record: id, peaks and structure."""
    return (spectrum.id, tuple(spectrum.mz.tolist()), tuple(spectrum.intensities.tolist()),
            spectrum.get("smiles"), spectrum.get("inchikey"))


def placed(k: Key) -> Key:
    """k with an id that is the record's place in its file replaced by a placeholder."""
    return ("<place>", *k[1:]) if _PLACE.fullmatch(k[0]) else k


@dataclass(frozen=True)
class Original:
    """A record of the valid file: what the reader must yield for it and what names it and no other record."""

    key: Key
    marks: tuple[str, ...]  # strings only this record's id, SMILES or InChIKey contain
    signature: tuple[float, float] | None  # a peak only this record has (None: compare the whole peak list)


@dataclass(frozen=True)
class Case:
    """A corrupted file: its records before corruption, its chunks (bytes, the original they still are, None
    where corrupted), and the originals some copy of which was corrupted."""

    originals: tuple[Original, ...]
    chunks: tuple[tuple[bytes, int | None], ...]
    touched: frozenset[int]


def _generated(fmt: Fmt, rec: Rec) -> Original:
    ident, smiles, inchikey = fmt.identity(rec.index)
    mz = tuple(float(m) for m, _ in rec.peaks)
    intensity = tuple(float(i) for _, i in rec.peaks)
    return Original((ident, mz, intensity, smiles, inchikey), (TAGS[rec.index], inchikey),
                    (float(SIGNATURE_MZ[rec.index]), float(SIGNATURE_INTENSITY[rec.index])))


_mz = st.one_of(st.integers(1, 999).map(str), st.builds("{}.0{}".format, st.integers(1, 999), st.integers(1, 9)))
_intensity = st.one_of(st.integers(1, 999).map(str),
                       st.builds("{}.{}".format, st.integers(0, 999), st.integers(1, 9)))
_peaks = st.lists(st.tuples(_mz, _intensity), max_size=7, unique_by=lambda p: float(p[0]))


@st.composite
def _records(draw: st.DrawFn) -> list[Rec]:
    drawn = draw(st.lists(st.tuples(_peaks, st.integers(0, 3)), min_size=1, max_size=6))
    return [Rec(i, (*sorted(peaks, key=lambda p: float(p[0])), (str(SIGNATURE_MZ[i]), str(SIGNATURE_INTENSITY[i]))),
                style) for i, (peaks, style) in enumerate(drawn)]


def _garbage(fmt: Fmt) -> st.SearchStrategy[bytes]:
    """Random bytes or a fragment of the format; never a compression magic number or a byte-order mark at its
    start, which would make the stretch read alone (at the start of a file) read differently."""
    return st.one_of(st.binary(max_size=40), st.sampled_from(fmt.snippets)).map(
        lambda b: b"x" + b if b.startswith((BOM, *MAGIC)) else b)


# "unend" twice: a record joined to the next is where readers mix two records
_OPS = ["replace", "insert", "delete", "drop_line", "dup_line", "unend", "unend", "drop", "duplicate", "swap",
        "garbage"]


@st.composite
def _corruption(draw: st.DrawFn, fmt: Fmt, chunks: list[tuple[bytes, int | None]]) -> tuple[list, set[int]]:
    """A few corruptions of a file's chunks: byte edits, line drops and duplicates, a lost record end (which joins
    a record to the next), dropped, duplicated, swapped and inserted records."""
    chunks = list(chunks)
    touched: set[int] = set()
    for _ in range(draw(st.integers(0, 5))):
        if not chunks:
            chunks.append((draw(_garbage(fmt)), None))
            continue
        i = draw(st.integers(0, len(chunks) - 1))
        data, original = chunks[i]
        op = draw(st.sampled_from(_OPS))
        lines = data.splitlines(keepends=True)
        at = draw(st.integers(0, len(data)))
        new: bytes | None = None
        if op == "replace":
            new = data[:at] + draw(_BYTE) + data[at + 1:]
        elif op == "insert":
            new = data[:at] + draw(_BYTE) + data[at:]
        elif op == "delete":
            new = data[:at] + data[at + draw(st.integers(1, 20)):]
        elif op in ("drop_line", "dup_line") and lines:
            j = draw(st.integers(0, len(lines) - 1))
            new = b"".join(lines[:j] + lines[j + 1:] if op == "drop_line" else lines[:j + 1] + lines[j:])
        elif op == "unend" and len(lines) > 1:  # the record loses its closing line and any of its other lines
            keep = draw(st.lists(st.booleans(), min_size=len(lines) - 1, max_size=len(lines) - 1))
            new = b"".join(line for line, kept in zip(lines, keep) if kept)
        elif op == "unend" and lines:  # a one-line record (JSON Lines) loses its newline
            new = data.rstrip(b"\r\n")
        elif op == "drop":
            del chunks[i]
        elif op == "duplicate":
            chunks.insert(i, chunks[i])
        elif op == "swap" and i + 1 < len(chunks):
            chunks[i], chunks[i + 1] = chunks[i + 1], chunks[i]
        elif op == "garbage":
            chunks.insert(i, (draw(_garbage(fmt)), None))
        if new is not None and new != data:
            chunks[i] = (new, None)
            if original is not None:
                touched.add(original)
    return chunks, touched


@st.composite
def _generated_case(draw: st.DrawFn, fmt: Fmt) -> Case:
    recs = draw(_records())
    end = draw(st.sampled_from([b"\n", b"\r\n"]))
    chunks = [(fmt.write(r).encode().replace(b"\n", end), r.index) for r in recs]
    corrupted, touched = draw(_corruption(fmt, chunks))
    return Case(tuple(_generated(fmt, r) for r in recs), tuple(corrupted), frozenset(touched))


def _fixture_chunks(fmt: Fmt) -> list[bytes]:
    """The records of a format's fixture file(s), each with its closing line."""
    if fmt.fixture.is_dir():
        return [p.read_bytes() for p in sorted(fmt.fixture.rglob("*.txt"))]
    chunks, current = [], b""
    for line in fmt.fixture.read_bytes().splitlines(keepends=True):
        current += line
        if fmt.is_end(line) or fmt.name == "jsonl":
            chunks.append(current)
            current = b""
    if current:  # the fixture MSP ends without a blank line
        chunks.append(current + fmt.neutral)
    return [c for c in chunks if c.strip()]


@functools.cache
def _fixture_originals(fmt: Fmt) -> tuple[Original, ...]:
    """What the reader makes of the fixture's records, in order (named by equality: their ids are short)."""
    paths = sorted(fmt.fixture.rglob("*.txt")) if fmt.fixture.is_dir() else [fmt.fixture]
    spectra = [s for path in paths for s in fmt.read(path)]
    assert len(spectra) == len(_fixture_chunks(fmt))
    return tuple(Original(key(s), (), None) for s in spectra)


@st.composite
def _fixture_case(draw: st.DrawFn, fmt: Fmt) -> Case:
    """A corruption of the real records of the format's fixture; each record means what the reader makes of the
    valid fixture."""
    chunks = _fixture_chunks(fmt)
    corrupted, touched = draw(_corruption(fmt, list(zip(chunks, range(len(chunks))))))
    return Case(_fixture_originals(fmt), tuple(corrupted), frozenset(touched))


# ------------------------------------------------------------------------------------------------- reading


@dataclass
class _Log(DropReport):
    """A DropReport that also lists, in order, what happened to each record: "+" kept, else the drop reason."""

    events: list[str] = dataclasses.field(default_factory=list)

    def keep(self, n: int = 1) -> None:
        super().keep(n)
        self.events += ["+"] * n

    def drop(self, reason: str, record: str = "", detail: str = "") -> None:
        super().drop(reason, record, detail)
        self.events.append(reason)


def _lenient(fmt: Fmt, path: Path) -> tuple[list[Any], _Log]:
    """Each record's fate in reading order: the key of a yielded spectrum, or the reason it was dropped."""
    log = _Log()
    spectra = [key(s) for s in fmt.read(path, log)]
    assert log.kept == len(spectra) == log.events.count("+")
    keys = iter(spectra)
    return [("kept", next(keys)) if e == "+" else e for e in log.events], log


def _strict(fmt: Fmt, path: Path) -> tuple[list[Key], RecordError | None]:
    got: list[Key] = []
    try:
        for spectrum in fmt.read(path):
            got.append(key(spectrum))
    except RecordError as err:
        return got, err
    return got, None


def _visible(path: Path) -> tuple[bytes, bool] | None:
    """The bytes a reader gets from a file and whether a compressed stream was cut short; None when the stream is
    damaged. A cut stream gives its whole lines only."""
    try:
        check_stream(path)
    except DamagedFileError:
        return None
    lines = []
    with open_binary(path, check=False) as fh:
        try:
            for line in fh:
                lines.append(line)
        except STREAM_ERRORS:
            return b"".join(lines), True
    return b"".join(lines), False


@dataclass
class Piece:
    """A stretch of the file as read: one intact record (original set) or a corrupted stretch (original None)."""

    data: bytes
    original: int | None
    first: bool


def _pieces(fmt: Fmt, case: Case, bom: bytes, visible: bytes, touched: set[int], joined: set[int]) -> list[Piece]:
    """The file as read, cut into intact records and the corrupted stretches between them (adds the records a cut
    spoils to touched, and the untouched ones inside a corrupted stretch to joined). A record is intact when no
    corruption touched it, the stretch before it ends with a line that closes a record, and it ends with one
    itself (or ends the file)."""
    chunks = [(bom + case.chunks[0][0], case.chunks[0][1]), *case.chunks[1:]] if case.chunks else [(bom, None)]
    plain = b"".join(d for d, _ in chunks)
    if not plain.startswith(visible):  # a cut before the compression magic: the reader sees other bytes
        touched.update(o for _, o in chunks if o is not None)
        return [Piece(visible, None, True)]
    items, at = [], 0
    for data, original in chunks:
        if at + len(data) > len(visible):
            if at < len(visible):
                items.append((data[:len(visible) - at], None))
                at = len(visible)
            if original is not None:
                touched.add(original)
            continue
        items.append((data, original))
        at += len(data)
    pieces: list[Piece] = []
    for n, (data, original) in enumerate(items):
        intact = (original is not None and (n == 0 or fmt.ends(items[n - 1][0]))
                  and (fmt.ends(data) or n == len(items) - 1))
        if intact:
            pieces.append(Piece(data, original, n == 0))
            continue
        if original is not None:
            joined.add(original)
        if pieces and pieces[-1].original is None:
            pieces[-1].data += data
        else:
            pieces.append(Piece(data, None, n == 0))
    return pieces


def _has_records(fmt: Fmt, data: bytes, first: bool) -> bool:
    """Whether a stretch holds a line that belongs to a record (not blank, not a line that closes a record)."""
    if first and data.startswith(BOM):
        data = data[len(BOM):]
    return any(line.strip() and not fmt.is_end(line) for line in data.split(b"\n"))


def _claimants(case: Case, value: Any) -> set[int]:
    """The originals an id, SMILES or InChIKey value names."""
    if not isinstance(value, str):
        return set()
    return {i for i, o in enumerate(case.originals)
            if value in (o.key[0], o.key[3], o.key[4]) or any(m in value for m in o.marks)}


def _peak_owners(case: Case, k: Key) -> set[int]:
    """The originals whose peaks a spectrum has: its signature peak, or the whole peak list."""
    pairs = set(zip(k[1], k[2]))
    return {i for i, o in enumerate(case.originals)
            if (o.signature in pairs if o.signature else (k[1], k[2]) == o.key[1:3])}


def _check_provenance(case: Case, k: Key, touched: set[int]) -> None:
    """A spectrum never has the id, SMILES, InChIKey or peaks of two records, unless both were corrupted (touched:
    with Fmt.lends, also the intact records joined to a corrupted one): the text of a record a corruption left
    alone is never joined to another's (corrupted records can be edited into anything, even a record that names
    one and holds the peaks of another)."""
    owners = [s for s in (_claimants(case, k[0]), _claimants(case, k[3]), _claimants(case, k[4]),
                          _peak_owners(case, k)) if s]
    involved = set().union(*owners)
    if len(involved) > 1:
        assert involved <= touched, f"{k} mixes records {sorted(involved)}; intact: {sorted(involved - touched)}"


def check_corrupted_file(tmp_path: Path, fmt: Fmt, case: Case, bom: bool, suffix: str,
                         damage: tuple | None) -> None:
    """Write the case (with a byte-order mark, compressed, cut or with a flipped byte as asked), read it, and
    check the properties named in the module docstring."""
    plain = (BOM if bom else b"") + b"".join(d for d, _ in case.chunks)
    packed = COMPRESS[suffix](plain)
    if damage and damage[0] == "cut":
        packed = packed[:int(damage[1] * len(packed))]
    elif damage and packed:
        at = min(int(damage[1] * len(packed)), len(packed) - 1)
        packed = packed[:at] + bytes([packed[at] ^ damage[2]]) + packed[at + 1:]
    (tmp_path / "full").mkdir(exist_ok=True)
    (tmp_path / "alone").mkdir(exist_ok=True)
    path = tmp_path / "full" / f"t{fmt.ext}{suffix}"
    path.write_bytes(packed)

    seen = _visible(path)
    if seen is None:  # a damaged stream is refused before any record is read, with or without a report
        log = _Log()
        with pytest.raises(DamagedFileError):
            next(fmt.read(path, log))
        assert log.events == []
        with pytest.raises(DamagedFileError):
            next(fmt.read(path))
        return
    visible, cut = seen
    if damage and damage[0] == "cut" and packed.startswith(MAGIC):
        assert plain.startswith(visible)  # what a cut stream gives is the start of the file

    # 1. nothing but RecordError is raised (strict); nothing at all with a report
    events, log = _lenient(fmt, path)
    strict, err = _strict(fmt, path)
    first_drop = next((n for n, e in enumerate(events) if isinstance(e, str)), None)
    assert strict == [e[1] for e in events[:first_drop]]  # strict mode stops at the first bad record...
    assert (err is None) == (first_drop is None)
    if err is not None:
        assert err.reason == events[first_drop]  # ...naming it

    # 2. intact records read exactly; a corrupted stretch reads as it reads alone, whatever surrounds it
    touched, joined = set(case.touched), set()
    pieces = _pieces(fmt, case, BOM if bom else b"", visible, touched, joined)
    expected: list[Any] = []
    counted = 0
    for piece in pieces:
        if piece.original is not None:
            expected.append(("kept", placed(case.originals[piece.original].key)))
            counted += 1
            continue
        alone = tmp_path / "alone" / f"t{fmt.ext}"
        alone.write_bytes(piece.data if piece.first else fmt.neutral + piece.data)
        own = [("kept", placed(e[1])) if isinstance(e, tuple) else e for e in _lenient(fmt, alone)[0]]
        if _has_records(fmt, piece.data, piece.first):
            assert own, f"a stretch with record lines yields or counts nothing: {piece.data!r}"
            counted += 1
        expected += own
    got = [("kept", placed(e[1])) if isinstance(e, tuple) else e for e in events if e != "truncated_file"]
    assert got == expected
    # 3. accounting: a cut stream is counted once; every intact record is kept, and every corrupted stretch that
    # holds a record line yields or counts at least one record (a stretch can join or split records, so not more
    # can be said of it)
    assert events.count("truncated_file") == int(cut)
    assert log.kept + log.total_dropped >= counted + int(cut)
    for e in events:
        if isinstance(e, tuple):
            _check_provenance(case, e[1], touched | joined if fmt.lends else touched)


_damage = st.one_of(st.none(), st.tuples(st.just("cut"), st.floats(0, 1)),
                    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 255)))


@pytest.mark.parametrize("fmt", FORMATS, ids=_IDS)
@SETTINGS
@given(data=st.data())
def test_corrupted_generated_files(tmp_path: Path, fmt: Fmt, data: st.DataObject) -> None:
    case = data.draw(_generated_case(fmt), "case")
    suffix = data.draw(st.sampled_from(list(COMPRESS)), "suffix")
    damage = data.draw(_damage if suffix else st.one_of(st.none(), st.tuples(st.just("cut"), st.floats(0, 1))),
                       "damage")
    check_corrupted_file(tmp_path, fmt, case, data.draw(st.booleans(), "bom"), suffix, damage)


@pytest.mark.parametrize("fmt", FORMATS, ids=_IDS)
@settings(SETTINGS, max_examples=30)
@given(data=st.data())
def test_corrupted_fixture_files(tmp_path: Path, fmt: Fmt, data: st.DataObject) -> None:
    case = data.draw(_fixture_case(fmt), "case")
    suffix = data.draw(st.sampled_from(list(COMPRESS)), "suffix")
    damage = data.draw(_damage if suffix else st.one_of(st.none(), st.tuples(st.just("cut"), st.floats(0, 1))),
                       "damage")
    check_corrupted_file(tmp_path, fmt, case, False, suffix, damage)


@pytest.mark.parametrize("fmt", FORMATS, ids=_IDS)
@settings(SETTINGS, max_examples=20)
@given(recs=_records(), end=st.sampled_from([b"\n", b"\r\n"]), bom=st.booleans(),
       suffix=st.sampled_from(list(COMPRESS)))
def test_valid_files_read_exactly(tmp_path: Path, fmt: Fmt, recs: list[Rec], end: bytes, bom: bool,
                                  suffix: str) -> None:
    path = tmp_path / f"t{fmt.ext}{suffix}"
    text = b"".join(fmt.write(r).encode().replace(b"\n", end) for r in recs)
    path.write_bytes(COMPRESS[suffix]((BOM if bom else b"") + text))
    report = DropReport()
    assert [key(s) for s in fmt.read(path, report)] == [_generated(fmt, r).key for r in recs]
    assert report.kept == len(recs) and not report.dropped


# ------------------------------------------------------------------------- hazards found by reading the code


def _msp_case(*headers: bytes) -> Case:
    """A generated two-record MSP file whose first record has these header lines too."""
    fmt = FORMATS[0]
    recs = [Rec(0, (("41", "999"), (str(SIGNATURE_MZ[0]), str(SIGNATURE_INTENSITY[0]))), 0),
            Rec(1, (("43", "100"), (str(SIGNATURE_MZ[1]), str(SIGNATURE_INTENSITY[1]))), 1)]
    first = fmt.write(recs[0]).encode().replace(b"Num Peaks", b"".join(headers) + b"Num Peaks")
    return Case(tuple(_generated(fmt, r) for r in recs), ((first, None), (fmt.write(recs[1]).encode(), 1)),
                frozenset({0}))


def _jsonl_case(line: bytes) -> Case:
    fmt = FORMATS[2]
    rec = Rec(0, (("41", "999"), (str(SIGNATURE_MZ[0]), str(SIGNATURE_INTENSITY[0]))), 0)
    return Case((_generated(fmt, rec),), ((line, None), (fmt.write(rec).encode(), 0)), frozenset())


def _joined_case(fmt_name: str, keep: Callable[[list[bytes]], list[bytes]]) -> Case:
    """Two generated records, the first of which lost its closing line (and the lines keep drops): the reader sees
    one record that holds the text of both."""
    fmt = next(f for f in FORMATS if f.name == fmt_name)
    recs = [Rec(i, (("41", "999"), (str(SIGNATURE_MZ[i]), str(SIGNATURE_INTENSITY[i]))), 0) for i in range(2)]
    lines = fmt.write(recs[0]).encode().splitlines(keepends=True)[:-1]
    return Case(tuple(_generated(fmt, r) for r in recs),
                ((b"".join(keep(lines)), None), (fmt.write(recs[1]).encode(), 1)), frozenset({0}))


def _lent_case() -> Case:
    """What is left of the succinic acid record (its InChIKey line), joined to the intact UV-329 record, which has
    no InChIKey of its own."""
    fmt = FORMATS[1]
    chunks = _fixture_chunks(fmt)
    return Case(_fixture_originals(fmt), ((b"CH$LINK: INCHIKEY KDYFGRWQOYBRFD-UHFFFAOYSA-N\n", None), (chunks[3], 3)),
                frozenset({2}))


def _mol_block_case() -> Case:
    """What is left of the iodomethane record (its NIST-style mol block, without `M  END`), joined to the intact
    methyl benzoate record: RDKit reads the two mol blocks as iodomethane."""
    fmt = FORMATS[3]
    chunks = _fixture_chunks(fmt)
    return Case(_fixture_originals(fmt), ((chunks[0].partition(b"M  END")[0], None), (chunks[1], 1)), frozenset({0}))


@pytest.mark.parametrize("fmt_name, case", [
    # a record joined to the next, intact one: never the id of one with the peaks or structure of the other
    ("massbank", _lent_case()),
    ("sdf", _mol_block_case()),
    ("massbank", _joined_case("massbank", lambda lines: lines[:1])),  # only its ACCESSION line left
    ("massbank", _joined_case("massbank", lambda lines: [x for x in lines if not x.startswith(b"PK$PEAK")])),
    ("sdf", _joined_case("sdf", lambda lines: lines)),  # a second mol block and the data items given twice
    ("sdf", _joined_case("sdf", lambda lines: lines[:lines.index(b"M  END\n") + 1])),  # its mol block alone
    ("msp", _joined_case("msp", lambda lines: lines[:4])),
    ("msp", _joined_case("msp", lambda lines: lines)),
    ("msp", _msp_case(b"Synon: [{[]: 0}]\n")),  # a synonym list that is no list of plain values
    ("msp", _msp_case(b"Synon: [{1, []}]\n")),
    ("msp", _msp_case(b"CAS#: 1" + b"; CAS#: 1" * 1500 + b"\n")),  # one line of many `; CAS#:` fields
    ("jsonl", _jsonl_case(b"1" * 5000 + b"\n")),  # an integer longer than Python converts
    ("jsonl", _jsonl_case(b"[" * 3000 + b"\n")),  # nested deeper than the JSON decoder recurses
    ("jsonl", _jsonl_case(b'{"peaks": [[1' + b"0" * 400 + b", 1]]}\n")),  # an m/z too large for a float
], ids=["massbank-lent-inchikey", "sdf-joined-nist-mol-block", "massbank-joined-to-accession",
        "massbank-joined-no-peak-table", "sdf-joined", "sdf-joined-mol-block", "msp-joined-header", "msp-joined",
        "synonym-dict", "synonym-set", "cas-chain", "long-int", "deep-json", "huge-mz"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_inputs_that_once_broke_a_reader(tmp_path: Path, fmt_name: str, case: Case, suffix: str) -> None:
    """The smallest inputs that made a reader raise or mix two records, through the checks of the properties."""
    check_corrupted_file(tmp_path, next(f for f in FORMATS if f.name == fmt_name), case, False, suffix, None)


_line_text = st.text(max_size=30).filter(lambda v: len(("a" + v + "a").splitlines()) == 1)
_msp_values = st.one_of(_line_text, st.sampled_from(["[{[]: 0}]", "[{1, []}]", "['a', 'b']", "[1, 2", "[x]",
                                                     "[" * 150 + "]" * 150, "[" + "-" * 5000 + "1]",
                                                     "[" + "-" * 100000 + "1]", "1; NIST#: 2", "1; CAS#: 1; NIST#",
                                                     "1" + "; CAS#: 1" * 1200]))
_msp_keys = st.one_of(st.sampled_from(["Name", "Synon", "Synonyms", "CAS#", "NIST#", "DB#", "Comments", "Formula",
                                       "MW", "SMILES", "InChIKey", "ExactMass"]),
                      st.text(st.characters(blacklist_characters=":", blacklist_categories=("Cs",)), min_size=1,
                              max_size=10).filter(lambda k: len(("a" + k + "a").splitlines()) == 1))


@SETTINGS
@given(headers=st.lists(st.lists(st.tuples(_msp_keys, _msp_values), max_size=5), min_size=1, max_size=4),
       peaks=st.lists(st.tuples(st.integers(1, 999), st.integers(1, 999)), min_size=1, max_size=5,
                      unique_by=lambda p: p[0]))
def test_any_msp_header_gives_the_record_its_own_peaks_or_a_reason(tmp_path: Path, headers: list,
                                                                   peaks: list) -> None:
    records = []
    for n, fields in enumerate(headers):
        lines = [f"Name: r{n}"] + [f"{k}: {v}" for k, v in fields if re.sub(r"[\s_]+", "", k.lower()) != "numpeaks"]
        records.append("\n".join(lines + [f"Num Peaks: {len(peaks)}"] + [f"{m} {i}" for m, i in peaks]) + "\n\n")
    path = tmp_path / "h.msp"
    path.write_text("".join(records), encoding="utf-8")
    events, log = _lenient(FORMATS[0], path)
    assert len(events) == len(records)  # each record once: kept or counted
    want = tuple(float(m) for m, _ in sorted(peaks)), tuple(float(i) for _, i in sorted(peaks))
    assert all(e[1][1:3] == want for e in events if isinstance(e, tuple))
    _strict(FORMATS[0], path)


_json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-10**400, 10**400) | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8)
_json_peaks = st.one_of(_json_value, st.lists(st.lists(_json_value, min_size=2, max_size=2), max_size=4),
                        st.lists(st.tuples(st.integers(-10**400, 10**400), st.floats(allow_nan=False)), max_size=4))


def _as_peaks(value: Any) -> tuple[tuple, tuple] | None:
    """The (m/z, intensity) a `peaks` value holds, if it is a list of pairs of numbers that are floats."""
    try:
        pairs = [(float(a), float(b)) for a, b in value if all(isinstance(x, (int, float)) for x in (a, b))]
    except (TypeError, ValueError, OverflowError):
        return None
    if not isinstance(value, list) or len(pairs) != len(value):
        return None
    pairs.sort(key=lambda p: p[0])
    return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)


@SETTINGS
@given(objects=st.lists(st.dictionaries(st.sampled_from(["accession", "smiles", "inchikey", "name", "Peaks", "x"]),
                                        _json_value, max_size=4).flatmap(
    lambda d: st.builds(lambda p: {**d, "peaks": p}, _json_peaks)), min_size=1, max_size=5))
def test_any_json_object_gives_its_own_peaks_or_a_reason(tmp_path: Path, objects: list[dict]) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text("".join(json.dumps(o) + "\n" for o in objects), encoding="utf-8")
    events, _ = _lenient(FORMATS[2], path)
    assert len(events) == len(objects)
    for obj, event in zip(objects, events):
        if isinstance(event, tuple):
            assert _as_peaks(obj["peaks"]) == event[1][1:3]
    _strict(FORMATS[2], path)


# ------------------------------------------------------------------------------ predict's molecule reader

_MOL_SMILES = ("CCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O", "C[N+](C)(C)C", "[13CH4]", "OC[C@H]1OC(O)[C@@H]1O",
               "c1ccc2ccccc2c1", "N#Cc1ccccc1")
_MOL_BYTES = st.sampled_from([b"\x00", b"\xff", b"\xc3", b"\xe9", b"\r", b"\n", b" ", b"\t", b",", b'"', b"#",
                              b"x", b"9", b"\x85", b"\x0c", b"\xef\xbb\xbf", b"\xe2\x80\xa8"])


@st.composite
def _molecule_lines(draw: st.DrawFn, kind: str) -> list[tuple[bytes, tuple | None]]:
    """Lines of a valid .smi or .csv input after a few corruptions: (bytes, (SMILES, name) or None where the line
    was corrupted or is no molecule line)."""
    end = draw(st.sampled_from([b"\n", b"\r\n"]))
    lines: list[tuple[bytes, tuple | None]] = [(b"smiles,name" + end, None)] if kind == ".csv" else []
    for n in range(draw(st.integers(1, 8))):
        smiles, name = draw(st.sampled_from(_MOL_SMILES)), f"mol {TAGS[n % len(TAGS)]}{n}"
        if kind == ".smi" and draw(st.integers(0, 5)) == 0:
            lines.append((draw(st.sampled_from([b"# a comment", b"", b"   "])) + end, None))
        sep = "," if kind == ".csv" else draw(st.sampled_from([" ", "\t", "  "]))
        named = draw(st.booleans()) or kind == ".csv"
        lines.append(((f"{smiles}{sep}{name}" if named else smiles).encode() + end, (smiles, name if named else None)))
    for _ in range(draw(st.integers(0, 5))):
        i = draw(st.integers(0, len(lines) - 1))
        data, _ = lines[i]
        op = draw(st.sampled_from(["replace", "insert", "delete", "drop", "duplicate", "swap", "garbage"]))
        at = draw(st.integers(0, len(data)))
        if op == "replace":
            lines[i] = data[:at] + draw(_MOL_BYTES) + data[at + 1:], None
        elif op == "insert":
            lines[i] = data[:at] + draw(_MOL_BYTES) + data[at:], None
        elif op == "delete":
            lines[i] = data[:at] + data[at + draw(st.integers(1, 10)):], None
        elif op == "drop" and len(lines) > 1:
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap" and i + 1 < len(lines):
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
        elif op == "garbage":
            lines.insert(i, (draw(st.binary(max_size=30)), None))
    if draw(st.booleans()) and lines:  # no newline at the end of the file
        data, meaning = lines[-1]
        lines[-1] = data.rstrip(b"\r\n"), meaning
    return lines


def _decoded_lines(data: bytes) -> list[str]:
    """The text lines of bytes as a universal-newline text reader splits them."""
    parts = re.split(r"\r\n|\r|\n", data.decode("utf-8-sig", "surrogateescape"))
    return parts[:-1] if parts[-1] == "" else parts


def _bad(text: str) -> bool:
    """Whether text read with errors="surrogateescape" holds a byte that is not UTF-8."""
    return any("\udc80" <= c <= "\udcff" for c in text)


def _smi_expected(data: bytes) -> list[tuple]:
    """What read_molecules must yield for .smi bytes: (name, SMILES, error reason) of each molecule line."""
    out = []
    for n, line in enumerate(_decoded_lines(data), 1):
        parts = line.split(maxsplit=1)
        if _bad(line):
            out.append((f"line{n}", "", "undecodable_line"))
        elif parts and not parts[0].startswith("#"):
            out.append((parts[1].strip() if len(parts) > 1 else f"line{n}", parts[0], None))
    return out


def _csv_expected(data: bytes) -> list[tuple] | None:
    """What read_molecules must yield for .csv bytes, as _smi_expected; None when the header makes it refuse the
    file (no `smiles` column, or a header that is not UTF-8). A line that holds a byte that is not UTF-8, in any
    field, is yielded with an error."""
    text = data.decode("utf-8-sig", "surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None) or []
    if _bad("".join(header)) or "smiles" not in header:
        return None
    out = []
    for row in reader:
        if not row:
            continue
        line = reader.line_num
        if any(_bad(field) for field in row):
            out.append((f"line{line}", "", "undecodable_line"))
        else:
            fields = dict(zip(header, row))
            out.append((fields.get("name") or f"row{line}", fields.get("smiles") or "", None))
    return out


def _stream(path: Path) -> tuple[bytes, bool]:
    """All the bytes a (possibly compressed, possibly cut) file gives, and whether the stream was cut short."""
    out = b""
    with open_binary(path, check=False) as fh:
        try:
            while chunk := fh.read1(1 << 16):
                out += chunk
        except STREAM_ERRORS:
            return out, True
    return out, False


def _subsequence(wanted: list[tuple], got: list[tuple]) -> bool:
    """Whether each (SMILES, name or None) of wanted matches a molecule of got, in order."""
    items = iter(got)
    return all(any(g[1] == smiles and (name is None or g[0] == name) and g[2] is None for g in items)
               for smiles, name in wanted)


@pytest.mark.parametrize("kind", [".smi", ".csv"])
@SETTINGS
@given(data=st.data())
def test_corrupted_molecule_files_yield_each_line_as_written_or_with_an_error(tmp_path: Path, kind: str,
                                                                             data: st.DataObject) -> None:
    lines = data.draw(_molecule_lines(kind), "lines")
    suffix = data.draw(st.sampled_from(list(COMPRESS)), "suffix")
    cut = data.draw(st.none() | st.floats(0, 1), "cut")
    bom = BOM if data.draw(st.booleans(), "bom") else b""
    plain = bom + b"".join(d for d, _ in lines)
    packed = COMPRESS[suffix](plain)
    path = tmp_path / f"in{kind}{suffix}"
    path.write_bytes(packed if cut is None else packed[:int(cut * len(packed))])
    stream, was_cut = _stream(path)
    head = stream[:8192]
    # what a cut stream surely gives (its lines up to the last newline) and at most gives (up to its last line end)
    whole = stream[:stream.rfind(b"\n") + 1] if was_cut else stream
    ended = stream[:max(stream.rfind(b"\n"), stream.rfind(b"\r")) + 1]
    expect = _smi_expected if kind == ".smi" else _csv_expected
    full, complete = expect(stream), expect(whole)
    refused = b"\x00" in head or head.startswith((b"\xff\xfe", b"\xfe\xff")) or (full is None and not was_cut)
    try:
        got = [(m.name, m.smiles, m.error[0] if m.error else None) for m in read_molecules(str(path))]
    except InputError:  # a file that is not text, or a .csv whose header has no smiles column
        assert refused or (was_cut and complete is None)
        return
    assert not refused
    if was_cut:  # the molecules of the lines read before the cut, then one row naming the cut
        assert got[-1] == (f"{path.name}:cut", "", "truncated_file")
        got = got[:-1]
        assert got == (full or [])[:len(got)]
        assert len(got) <= len(expect(ended) or [])
        assert len(got) >= len(complete or []) - (kind == ".csv")  # a quoted csv field may run past the cut
    else:
        assert got == full
    # every intact line (its line before it ended, nothing changed in it) reads as written: in a .csv only where
    # no quote joins lines and the header is intact
    limit, at, wanted = len(whole) - len(bom), 0, []
    for n, (line, meaning) in enumerate(lines):
        at += len(line)
        after_line_end = n == 0 or lines[n - 1][0].endswith((b"\n", b"\r"))
        if meaning and at <= limit and plain.startswith(stream) and after_line_end:
            wanted.append(meaning)
    if kind == ".smi" or (b'"' not in stream and lines and lines[0][0] in (b"smiles,name\n", b"smiles,name\r\n")):
        assert _subsequence(wanted, got)
