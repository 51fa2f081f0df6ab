"""Reader and writer for NIST MSP text (as exported by lib2nist and as written by matchms)."""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from nextims.errors import DropReport, RecordError
from nextims.io.atomic import atomic_open
from nextims.io.text import RawRecord, RecordFormat, iter_spectra, parse_peak_pairs, store_field
from nextims.spectrum import Spectrum, validate_peaks

# Field names (lower-cased, spaces and underscores removed) that map to standard metadata keys.
_FIELDS = {"name": "name", "compoundname": "name", "inchikey": "inchikey", "inchi": "inchi", "smiles": "smiles",
           "formula": "formula", "mw": "mw", "exactmass": "exact_mass", "license": "license",
           "copyright": "copyright", "contributor": "contributor", "ionmode": "ion_mode"}
_SYNONYMS = {"synon", "synonym", "synonyms"}
_NUM_PEAKS = "numpeaks"
_FLOATS = {"mw", "exact_mass"}
# Fields that lib2nist writes several of on one line: `CAS#: 50-00-0; NIST#: 123`.
_SHARED_LINE = {"cas#", "nist#"}
# Fields that say which compound a record is: given twice with different values, the record is refused.
_IDENTITY = {*_FIELDS.values(), "db#", "nist#", "cas#"}
_NAME_NOISE = re.compile(r"[\s_]+")
_COMMENT_SMILES = re.compile(r'(?:^|[\s"])SMILES=([^\s"]+)')


def parse_msp_record(text: str, terminated: bool = True, where: str = "?") -> Spectrum:
    """The Spectrum of one MSP record's text (the lines between blank lines)."""
    metadata, synonyms, num_peaks, peak_lines, conflicts = _split_header(text)
    record = _record_id(metadata) or where
    if conflicts:
        raise RecordError(record, "conflicting_field", conflicts[0])
    if num_peaks is None:
        raise RecordError(record, "malformed_record" if terminated else "truncated", "no Num Peaks line")
    declared = _peak_count(num_peaks, record)
    try:
        mz, intensities = parse_peak_pairs("\n".join(peak_lines), record)
    except RecordError as err:
        raise err if terminated else RecordError(record, "truncated", err.detail) from None
    if len(mz) != declared:
        reason = "truncated" if len(mz) < declared and not terminated else "peak_count_mismatch"
        raise RecordError(record, reason, f"{len(mz)} peaks, Num Peaks says {declared}")
    validate_peaks(mz, intensities, record)
    if "smiles" not in metadata and (match := _COMMENT_SMILES.search(str(metadata.get("comments", "")))):
        metadata["smiles"] = match.group(1)
    metadata["synonyms"] = synonyms
    metadata["id"] = record
    return Spectrum(mz, intensities, metadata)


def read_msp(path: str | Path, report: DropReport | None = None, encoding: str = "utf-8") -> Iterator[Spectrum]:
    """Spectra of an MSP file (plain, .gz, .xz or .bz2); records are separated by blank lines (a blank line inside a
    record's peak list, before it has all its Num Peaks peaks, does not end the record)."""
    return iter_spectra(path, FORMAT, report, encoding)


def write_msp(spectra: Iterable[Spectrum], path: str | Path, intensity_scale: float = 999.0,
              min_relative: float = 0.0) -> int:
    """Write spectra as MSP (intensities scaled to a maximum of intensity_scale), atomically; returns the count.

    Peaks at or below min_relative of the maximum, or rounding to 0, are left out. A spectrum with no peak
    left raises RecordError (reason `no_peaks`).
    """
    count = 0
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as out:
        for spectrum in spectra:
            out.write(format_msp_record(spectrum, intensity_scale, min_relative))
            out.write("\n")
            count += 1
    return count


def format_msp_record(spectrum: Spectrum, intensity_scale: float = 999.0, min_relative: float = 0.0) -> str:
    """One MSP record (ending with a newline) for a spectrum; see write_msp."""
    top = spectrum.intensities.max() if len(spectrum) else 0.0
    relative = spectrum.intensities / top if top > 0 else np.zeros(len(spectrum))
    scaled = np.rint(relative * intensity_scale)
    keep = (relative > min_relative) & (scaled > 0)
    if not keep.any():
        raise RecordError(spectrum.id, "no_peaks", "no peak left to write")
    lines = [f"Name: {_one_line(spectrum.get('name') or spectrum.id)}"]
    synonyms = spectrum.get("synonyms") or []
    lines += [f"Synon: {_one_line(s)}" for s in ([synonyms] if isinstance(synonyms, str) else synonyms)]
    for label, key in (("InChIKey", "inchikey"), ("SMILES", "smiles"), ("Formula", "formula"), ("MW", "mw"),
                       ("DB#", "id"), ("Comments", "comments")):
        value = spectrum.get(key)
        if value is not None and value != "":
            lines.append(f"{label}: {_one_line(_number(value))}")
    lines.append(f"Num Peaks: {int(keep.sum())}")
    mz = spectrum.mz[keep]
    labels = mz.astype(np.int64).tolist() if np.array_equal(mz, np.rint(mz)) else [_number(m) for m in mz.tolist()]
    lines += map("{} {}".format, labels, scaled[keep].astype(np.int64).tolist())
    return "\n".join(lines) + "\n"


def _is_blank(line: bytes) -> bool:
    return not line.strip()


@functools.lru_cache(maxsize=4096)
def _normal(key: str) -> str:
    return _NAME_NOISE.sub("", key.lower())


def _split_header(text: str) -> tuple[dict[str, Any], list[str], str | None, list[str], list[str]]:
    """The fields, synonyms and Num Peaks value of a record's header, the lines after Num Peaks, and what its
    identity fields say twice with different values."""
    metadata: dict[str, Any] = {}
    synonyms: list[str] = []
    conflicts: list[str] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        key, sep, value = line.partition(":")
        if not sep:
            continue
        if _normal(key) == _NUM_PEAKS:
            return metadata, synonyms, value.strip(), lines[i + 1:], conflicts
        _store(metadata, synonyms, key, value.strip(), conflicts)
    return metadata, synonyms, None, [], conflicts


def _join_peak_lists(records: Iterator[RawRecord]) -> Iterator[RawRecord]:
    """Records with a peak list that a blank line cut in two joined again: a run of lines that starts with a number
    continues the record before it while that record has fewer peaks than its Num Peaks."""
    pending: RawRecord | None = None
    for raw in records:
        if pending is not None and raw.data.lstrip()[:1].isdigit() and _lacks_peaks(pending):
            pending = RawRecord(pending.data + b"\n" + raw.data, pending.line, raw.terminated, raw.cut)
            continue
        if pending is not None:
            yield pending
        pending = raw
    if pending is not None:
        yield pending


def _lacks_peaks(raw: RawRecord) -> bool:
    """Whether a record's Num Peaks line promises more peaks than its text has."""
    _, _, num_peaks, peak_lines, _ = _split_header(raw.data.decode("latin-1"))
    try:
        return num_peaks is not None and len(parse_peak_pairs("\n".join(peak_lines), "")[0]) < int(num_peaks)
    except (RecordError, ValueError):
        return False


def _record_id(metadata: dict[str, Any]) -> str | None:
    value = metadata.get("db#") or metadata.get("nist#") or metadata.get("name")
    return str(value) if value else None


def _record_name(text: str) -> str | None:
    return _record_id(_split_header(text)[0])


def _store(metadata: dict[str, Any], synonyms: list[str], key: str, value: str, conflicts: list[str]) -> None:
    """Put one `Key: value` line under its standard key, or its lower-cased name. A field given again is kept
    once when the value is the same, noted in conflicts when an identity field's value differs, and otherwise
    joined to the earlier value with "; "."""
    # the fields of a shared line, stored last to first (a loop: a line can hold thousands of them)
    fields = [(key, value)]
    while _normal(fields[-1][0]) in _SHARED_LINE and ";" in fields[-1][1]:
        key, value = fields.pop()
        value, _, rest = value.partition(";")
        fields.append((key, value.strip()))
        other, sep, other_value = rest.partition(":")
        if not sep:
            break
        fields.append((other, other_value.strip()))
    for key, value in reversed(fields):
        _store_one(metadata, synonyms, key, value, conflicts)


def _store_one(metadata: dict[str, Any], synonyms: list[str], key: str, value: str, conflicts: list[str]) -> None:
    """Store one field (see _store)."""
    normal = _normal(key)
    if normal in _SYNONYMS:
        synonyms.extend(_synonym_list(value))
        return
    name = _FIELDS.get(normal, key.strip().lower())
    earlier = metadata.get(name)
    store_field(metadata, name, value, _FLOATS)
    later = metadata.get(name)
    if earlier is None or later == earlier:
        return
    if name in _IDENTITY:
        conflicts.append(f"{key.strip()} given twice: {earlier!r} and {later!r}")
        metadata[name] = earlier
    else:
        metadata[name] = f"{earlier}; {later}"


def _synonym_list(value: str) -> list[str]:
    """Synonyms of one line: the line itself, or the items of a Python list as matchms writes it."""
    if value.startswith("[") and value.endswith("]"):
        try:
            items = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):  # what literal_eval raises
            return [value]
        if isinstance(items, list):
            return [str(item) for item in items]
    return [value] if value else []


def _peak_count(value: str, record: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise RecordError(record, "malformed_record", f"Num Peaks is {value!r}") from None


def _number(value: Any) -> str:
    """A number as MSP text: integral values without decimals, others in their shortest exact form."""
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _one_line(value: Any) -> str:
    text = str(value)
    return (re.sub(r"[\r\n]+", " ", text) if "\n" in text or "\r" in text else text).strip()


FORMAT = RecordFormat(_is_blank, parse_msp_record, _record_name, _join_peak_lists)
