"""Reader for MassBank record text files (the MassBank-data repository's `TAG: value` format)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from nextims.errors import DropReport, RecordError
from nextims.io.text import RecordFormat, iter_spectra, parse_energy, parse_float, spectrum_files
from nextims.spectrum import Spectrum, validate_peaks

# Tags whose value starts with a subtag (`AC$MASS_SPECTROMETRY: ION_MODE POSITIVE`).
_SUBTAGGED = {"AC$MASS_SPECTROMETRY", "AC$CHROMATOGRAPHY", "AC$GENERAL", "MS$FOCUSED_ION", "MS$DATA_PROCESSING",
              "CH$LINK", "SP$LINK"}
_PLAIN = {"ACCESSION": "id", "RECORD_TITLE": "title", "CH$FORMULA": "formula", "CH$SMILES": "smiles",
          "CH$IUPAC": "inchi", "CH$EXACT_MASS": "exact_mass", "AC$INSTRUMENT": "instrument",
          "AC$INSTRUMENT_TYPE": "instrument_type", "LICENSE": "license", "COPYRIGHT": "copyright",
          "PK$SPLASH": "splash"}
_SUBTAG_KEYS = {("CH$LINK", "INCHIKEY"): "inchikey", ("AC$MASS_SPECTROMETRY", "MS_TYPE"): "ms_type",
                ("AC$MASS_SPECTROMETRY", "ION_MODE"): "ion_mode",
                ("AC$MASS_SPECTROMETRY", "IONIZATION_ENERGY"): "ionization_energy_raw"}
_ACCESSION = re.compile(r"^ACCESSION:\s*(\S+)", re.MULTILINE)
# Tags (and `tag subtag`s) that say which record, compound or spectrum a record is, once: given twice with different
# values, the text holds two records (a lost `//` line joined them) and is refused; given twice alike, kept once.
_IDENTITY = {"ACCESSION", "CH$FORMULA", "CH$EXACT_MASS", "CH$SMILES", "CH$IUPAC", "CH$LINK INCHIKEY", "PK$SPLASH",
             "PK$NUM_PEAK"}


def parse_massbank_record(text: str, terminated: bool = True, where: str = "?") -> Spectrum:
    """The Spectrum of one MassBank record's text (without its closing `//` line)."""
    accession = _accession(text)
    record = accession or where
    if not terminated:
        raise RecordError(record, "truncated", "the file ends before the record's `//` line")
    metadata: dict[str, Any] = {}
    names: list[str] = []
    peak_rows: list[list[str]] = []
    declared: int | None = None
    block = ""
    identity: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith(" "):
            if block == "PK$PEAK":
                peak_rows.append(line.split())
            continue
        tag, sep, value = line.partition(":")
        if not sep:
            continue
        tag, value = tag.strip(), value.strip()
        if accession is not None and not block and tag != "ACCESSION":  # ACCESSION opens a record (fixed tag order)
            raise RecordError(record, "malformed_record", f"{tag} before ACCESSION: the end of another record whose "
                                                          "`//` line is missing?")
        block = tag
        field = tag if tag in _IDENTITY else f"{tag} {value.partition(' ')[0]}"
        if field in _IDENTITY and value and value != "N/A":
            if field in identity:
                if identity[field] != value:
                    raise RecordError(record, "conflicting_field",
                                      f"{field} given twice: {identity[field]!r} and {value!r}")
                continue  # the same value again: kept once
            identity[field] = value
        if tag == "PK$NUM_PEAK":
            declared = _peak_count(value, record)
        elif tag == "CH$NAME":
            names.append(value)
        elif tag != "PK$PEAK" and value and value != "N/A":
            _store(metadata, tag, value)
    mz, intensities = _peak_table(peak_rows, record)
    if declared is not None and len(mz) < declared:
        raise RecordError(record, "truncated", f"{len(mz)} peak lines, PK$NUM_PEAK says {declared}")
    if declared is not None and len(mz) > declared:
        raise RecordError(record, "peak_count_mismatch", f"{len(mz)} peak lines, PK$NUM_PEAK says {declared}")
    validate_peaks(mz, intensities, record)
    metadata["id"] = record
    if names:
        metadata["name"], metadata["synonyms"] = names[0], names[1:]
    metadata["exact_mass"] = parse_float(metadata.get("exact_mass"))
    metadata["ionization_energy_ev"] = parse_energy(metadata.get("ionization_energy_raw"))
    parts = record.split("-")
    if len(parts) >= 3 and parts[0] == "MSBNK":
        metadata["contributor"] = "-".join(parts[1:-1])
    return Spectrum(mz, intensities, metadata)


def read_massbank_record(
    path: str | Path, report: DropReport | None = None, encoding: str = "utf-8"
) -> Iterator[Spectrum]:
    """The spectra of one MassBank record file (usually one record; plain, .gz, .xz or .bz2)."""
    return iter_spectra(path, FORMAT, report, encoding)


def read_massbank_records(
    paths_or_dir: str | Path | Iterable[str | Path], report: DropReport | None = None, encoding: str = "utf-8"
) -> Iterator[Spectrum]:
    """The spectra of many MassBank record files: a directory (searched recursively for *.txt), a file, or paths."""
    paths = spectrum_files(paths_or_dir) if isinstance(paths_or_dir, (str, Path)) else paths_or_dir
    for path in paths:
        yield from read_massbank_record(path, report, encoding)


def _is_end(line: bytes) -> bool:
    return line.strip() == b"//"


def _accession(text: str) -> str | None:
    match = _ACCESSION.search(text)
    return match.group(1) if match else None


def _store(metadata: dict[str, Any], tag: str, value: str) -> None:
    """Put one `TAG: value` line under its standard key, or its lower-cased tag (`tag:subtag` for subtagged tags)."""
    key = _PLAIN.get(tag, tag.lower())
    if tag in _SUBTAGGED:
        subtag, _, value = value.partition(" ")
        key = _SUBTAG_KEYS.get((tag, subtag), f"{tag}:{subtag}".lower())
        value = value.strip()
    metadata[key] = f"{metadata[key]}; {value}" if key in metadata else value


def _peak_count(value: str, record: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise RecordError(record, "malformed_record", f"PK$NUM_PEAK is {value!r}") from None


def _peak_table(rows: list[list[str]], record: str) -> tuple[np.ndarray, np.ndarray]:
    """m/z and absolute intensity (the first two columns of `  m/z int. rel.int.` lines)."""
    if any(len(row) < 2 for row in rows):
        raise RecordError(record, "malformed_peaks", "a PK$PEAK line has fewer than two columns")
    try:
        table = np.array([row[:2] for row in rows], dtype=np.float64).reshape(-1, 2)
    except ValueError as exc:
        raise RecordError(record, "malformed_peaks", str(exc)) from None
    return table[:, 0], table[:, 1]


FORMAT = RecordFormat(_is_end, parse_massbank_record, _accession)
