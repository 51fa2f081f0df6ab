"""Opening plain or compressed files, splitting them into records decoded one at a time, peak-list text."""

from __future__ import annotations

import bz2
import gzip
import lzma
import re
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import numpy as np

from nextims.errors import DropReport, InputError, RecordError, handle
from nextims.spectrum import Spectrum

T = TypeVar("T")

COMPRESSION_SUFFIXES = (".gz", ".xz", ".bz2")

_OPENERS = ((b"\x1f\x8b", gzip.open), (b"\xfd7zXZ\x00", lzma.open), (b"BZh", bz2.open))
# What a compressed stream that was cut short raises part-way through.
STREAM_ERRORS = (EOFError, lzma.LZMAError, zlib.error, gzip.BadGzipFile)
# What a damaged stream raises (a CRC or length mismatch, invalid data); bz2 raises a bare OSError.
_DAMAGE_ERRORS = (OSError, lzma.LZMAError, zlib.error)
_BOM = b"\xef\xbb\xbf"

_ENERGY = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:ev)?\s*$", re.IGNORECASE)
_ANNOTATION = re.compile(r'"[^"]*"')
_PAIR_SEPARATORS = re.compile(r"[\s;,:()]+")
_SPECIAL_PEAK_TEXT = re.compile(r'[";,:()]')


@dataclass(frozen=True)
class RawRecord:
    """The undecoded bytes of one record and where it starts."""

    data: bytes
    line: int  # 1-based line number of the record's first line
    terminated: bool  # False when the file ended inside this record
    cut: bool = False  # True when a compressed stream ended early here: everything after it is lost


class DamagedFileError(InputError):
    """A compressed file whose stream is damaged (checksum, invalid data): none of its records is used."""


def _opener(path: Path) -> Callable[..., BinaryIO] | None:
    """The decompressing opener of a gzip, xz or bzip2 file (told by its magic bytes); None for other files."""
    with path.open("rb") as fh:
        head = fh.read(6)
    return next((opener for magic, opener in _OPENERS if head.startswith(magic)), None)


def check_stream(path: str | Path) -> None:
    """Decompress a compressed file once to its end, so that a damaged stream is refused (DamagedFileError naming
    the file) before any of its records is used: gzip checks its CRC only at the end. A stream that is merely cut
    short passes; the readers count what they read before the cut."""
    path = Path(path)
    opener = _opener(path)
    if opener is None:
        return
    try:
        with opener(path, "rb") as fh:
            while fh.read(1 << 20):
                pass
    except EOFError:
        return
    except _DAMAGE_ERRORS as err:
        raise DamagedFileError(f"{path}: the compressed stream is damaged ({err or type(err).__name__}), so none of "
                               "its records is read; restore the file or decompress what is left by hand") from None


def open_binary(path: str | Path, check: bool = True) -> BinaryIO:
    """Open a file for reading bytes, decompressing gzip, xz and bzip2 content (told by its magic bytes); a damaged
    compressed stream raises DamagedFileError first (check_stream) unless check is False."""
    path = Path(path)
    opener = _opener(path)
    if opener is None:
        return path.open("rb")
    if check:
        check_stream(path)
    return opener(path, "rb")


def spectrum_files(path: str | Path) -> list[Path]:
    """The files a spectrum path stands for: the file itself, or a MassBank record directory's *.txt files."""
    root = Path(path)
    return sorted(root.rglob("*.txt")) if root.is_dir() else [root]


def inner_suffix(path: str | Path) -> str:
    """The lower-cased extension under any compression suffix ("a.msp.gz" -> ".msp")."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def split_records(path: str | Path, is_end: Callable[[bytes], bool] | None = None) -> Iterator[RawRecord]:
    """The records of a file: runs of lines closed by a line where is_end holds, or single lines if is_end is None.

    The closing line is not part of the record. A record the file ends inside (no closing line, a last line
    without newline when is_end is None, or a compressed stream cut short) comes with terminated=False;
    a run of blank lines is not a record.
    """
    lines: list[bytes] = []
    start = 1
    with open_binary(path) as stream:
        number = 0
        try:
            for number, line in enumerate(stream, start=1):
                if number == 1 and line.startswith(_BOM):
                    line = line[len(_BOM):]
                if is_end is None:
                    if line.strip():
                        yield RawRecord(line, number, line.endswith(b"\n"))
                elif is_end(line):
                    if any(chunk.strip() for chunk in lines):
                        yield RawRecord(b"".join(lines), start, True)
                    lines, start = [], number + 1
                else:
                    lines.append(line)
        except STREAM_ERRORS:
            yield RawRecord(b"".join(lines), start if lines else number + 1, False, cut=True)
            return
    if any(chunk.strip() for chunk in lines):
        yield RawRecord(b"".join(lines), start, False)


def location(path: str | Path, raw: RawRecord) -> str:
    """`file:line` naming a record that has no id (yet)."""
    return f"{Path(path).name}:{raw.line}"


def decode_record(raw: RawRecord, encoding: str, name_of: Callable[[str], str | None], where: str) -> str:
    """The record's text; RecordError (reason `encoding`) naming the record when its bytes do not decode.

    name_of(text) finds the record's id in the roughly decoded text; `where` names it otherwise.
    """
    try:
        return raw.data.decode(encoding)
    except UnicodeDecodeError as exc:
        record = name_of(raw.data.decode(encoding, "replace")) or where
        bad = raw.data[exc.start:exc.start + 1].hex()
        raise RecordError(record, "encoding", f"byte 0x{bad} at offset {exc.start} is not {encoding}") from None


@dataclass(frozen=True)
class RecordFormat:
    """How a spectrum format's files split into records (closing lines where is_end holds, or single lines; join
    rejoins records a split cut apart) and how one record's text is parsed (parse(text, terminated, location));
    name_of(text) finds a record's id in roughly decoded text, to name a record whose bytes do not decode."""

    is_end: Callable[[bytes], bool] | None
    parse: Callable[[str, bool, str], Spectrum]
    name_of: Callable[[str], str | None]
    join: Callable[[Iterator[RawRecord]], Iterator[RawRecord]] | None = None

    def records(self, path: str | Path) -> Iterator[tuple[str, RawRecord]]:
        """(location, raw record) of each record of a file; one with cut=True marks a compressed stream cut short."""
        records = split_records(path, self.is_end)
        for raw in self.join(records) if self.join is not None else records:
            yield location(path, raw), raw

    def spectrum(self, raw: RawRecord, where: str, source: str, encoding: str) -> Spectrum:
        """The Spectrum of one raw record (RecordError when it is unusable), its metadata's `source` set."""
        spectrum = self.parse(decode_record(raw, encoding, self.name_of, where), raw.terminated, where)
        spectrum.metadata.setdefault("source", source)
        return spectrum


def raw_records(path: str | Path, fmt: RecordFormat,
                report: DropReport | None) -> Iterator[tuple[str, str, RawRecord]]:
    """(file name, location, raw record) of each record of the file(s) of path (a file, or a MassBank record directory) that
    holds data; a compressed stream cut short counts once as `truncated_file` in report (raised without one),
    naming how many records came before the cut."""
    for file in spectrum_files(path):
        read = 0
        for where, raw in fmt.records(file):
            if raw.cut:
                handle(RecordError(file.name, "truncated_file", f"the compressed stream ends early at line "
                                                                f"{raw.line}: {read} records read before the cut, "
                                                                "the rest is lost"), report)
                if not raw.data.strip():
                    continue
            read += 1
            yield file.name, where, raw


def iter_spectra(path: str | Path, fmt: RecordFormat, report: DropReport | None, encoding: str) -> Iterator[Spectrum]:
    """The valid spectra of a file in format fmt. Bad records raise RecordError when report is None, else are
    counted there and skipped; a compressed stream cut short counts once as `truncated_file`."""
    yield from parsed_counted(raw_records(path, fmt, report),
                              lambda item: fmt.spectrum(item[2], item[1], item[0], encoding), report)


def parsed_counted(items: Iterable[T], parse: Callable[[T], Spectrum], report: DropReport | None) -> Iterator[Spectrum]:
    """parse of each item; an item that raises RecordError is counted in report and skipped (raised when report
    is None), each kept one counted as kept."""
    for item in items:
        try:
            spectrum = parse(item)
        except RecordError as err:
            handle(err, report)
            continue
        if report is not None:
            report.keep()
        yield spectrum


def parse_peak_pairs(text: str, record: str) -> tuple[np.ndarray, np.ndarray]:
    """m/z and intensity arrays from `mz intensity` pairs split by whitespace, `;`, `,`, `:` or brackets.

    Quoted peak annotations (`41 999 "C3H5+"`) are ignored.
    """
    if _SPECIAL_PEAK_TEXT.search(text):
        tokens = [t for t in _PAIR_SEPARATORS.split(_ANNOTATION.sub(" ", text)) if t]
    else:  # whitespace only: str.split does it several times faster
        tokens = text.split()
    if len(tokens) % 2:
        raise RecordError(record, "malformed_peaks", f"odd number of values ({len(tokens)}) in the peak list")
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError as exc:
        raise RecordError(record, "malformed_peaks", str(exc)) from None
    return values[0::2], values[1::2]


def parse_float(value: str | None) -> float | None:
    """A float from text, or None when there is none."""
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def parse_energy(value: str | None) -> float | None:
    """The eV value of an ionization-energy text (`70 eV`, `70eV`, `70` -> 70.0); None when absent or not in eV."""
    match = _ENERGY.match(value or "")
    return float(match.group(1)) if match else None


def store_field(metadata: dict[str, Any], key: str, value: str, floats: Collection[str]) -> None:
    """Set metadata[key]: a float for keys in floats (skipped when unparseable), else non-empty text."""
    if key in floats:
        number = parse_float(value)
        if number is not None:
            metadata[key] = number
    elif value:
        metadata[key] = value
