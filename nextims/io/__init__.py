"""Readers for mass spectral library formats (MSP, MassBank JSON Lines and records, NEIMS SDF) and the MSP writer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from nextims.errors import DropReport
from nextims.io import massbank_jsonl, massbank_record, msp, sdf
from nextims.io.massbank_jsonl import read_massbank_jsonl
from nextims.io.massbank_record import read_massbank_record, read_massbank_records
from nextims.io.msp import read_msp, write_msp
from nextims.io.sdf import read_sdf
from nextims.io.text import RecordFormat, inner_suffix, spectrum_files
from nextims.spectrum import Spectrum

__all__ = ["FORMATS", "detect_format", "read_massbank_jsonl", "read_massbank_record", "read_massbank_records",
           "read_msp", "read_sdf", "read_spectra", "record_format", "spectrum_files", "write_msp"]

_READERS: dict[str, Callable[..., Iterator[Spectrum]]] = {
    "msp": read_msp,
    "massbank_jsonl": read_massbank_jsonl,
    "massbank": read_massbank_records,
    "sdf": read_sdf,
}
_RECORD_FORMATS: dict[str, RecordFormat] = {
    "msp": msp.FORMAT,
    "massbank_jsonl": massbank_jsonl.FORMAT,
    "massbank": massbank_record.FORMAT,
    "sdf": sdf.FORMAT,
}
FORMATS = ("auto", *_READERS)
_BY_SUFFIX = {".msp": "msp", ".jsonl": "massbank_jsonl", ".sdf": "sdf", ".sd": "sdf", ".txt": "massbank"}


def detect_format(path: str | Path) -> str:
    """The format of a file by its extension (under .gz/.xz/.bz2); a directory holds MassBank records."""
    if Path(path).is_dir():
        return "massbank"
    fmt = _BY_SUFFIX.get(inner_suffix(path))
    if fmt is None:
        raise ValueError(f"cannot tell the spectrum format of {str(path)!r} from its extension; "
                         f"name one of {', '.join(FORMATS[1:])}")
    return fmt


def _resolved(path: str | Path, fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown spectrum format {fmt!r} for {str(path)!r}; expected one of {', '.join(FORMATS)}")
    return detect_format(path) if fmt == "auto" else fmt


def record_format(path: str | Path, fmt: str = "auto") -> RecordFormat:
    """How the records of path (in format fmt, "auto": by extension) are split and parsed."""
    return _RECORD_FORMATS[_resolved(path, fmt)]


def read_spectra(path: str | Path, fmt: str = "auto", report: DropReport | None = None,
                 encoding: str = "utf-8") -> Iterator[Spectrum]:
    """Spectra of a file (or MassBank record directory) in format fmt (see FORMATS; "auto": by extension)."""
    return _READERS[_resolved(path, fmt)](path, report, encoding)
