"""Reader for MassBank EI records exported as JSON Lines (one JSON object per record)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from nextims.errors import DropReport, RecordError
from nextims.io.text import RecordFormat, iter_spectra
from nextims.spectrum import Spectrum, validate_peaks

# Fields renamed to the standard metadata keys; the rest keep their (lower-cased) names.
_RENAMED = {"accession": "id", "derivatized_flag": "derivatized"}
_ACCESSION = re.compile(r'"accession"\s*:\s*"([^"]+)"')


def parse_massbank_json(text: str, terminated: bool = True, where: str = "?") -> Spectrum:
    """The Spectrum of one JSON line; non-JSON is `malformed_json` (`truncated` if the file ends inside it)."""
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError; an integer too long to convert; deep nesting
        reason = "malformed_json" if terminated else "truncated"
        raise RecordError(_accession(text) or where, reason, str(exc)) from None
    if not isinstance(obj, dict):
        raise RecordError(where, "malformed_json", f"a JSON {type(obj).__name__}, not an object")
    record = str(obj.get("accession") or where)
    mz, intensities = _peaks(obj.get("peaks"), record)
    validate_peaks(mz, intensities, record)
    metadata: dict[str, Any] = {_RENAMED.get(k.lower(), k.lower()): v for k, v in obj.items() if k != "peaks"}
    metadata["id"] = record
    return Spectrum(mz, intensities, metadata)


def read_massbank_jsonl(
    path: str | Path, report: DropReport | None = None, encoding: str = "utf-8"
) -> Iterator[Spectrum]:
    """Spectra of a MassBank EI JSON Lines file (plain, .gz, .xz or .bz2)."""
    return iter_spectra(path, FORMAT, report, encoding)


def _accession(text: str) -> str | None:
    match = _ACCESSION.search(text)
    return match.group(1) if match else None


def _peaks(peaks: Any, record: str) -> tuple[np.ndarray, np.ndarray]:
    if not peaks:
        return np.empty(0), np.empty(0)
    try:
        table = np.asarray(peaks, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: an integer too large for a float
        raise RecordError(record, "malformed_peaks", str(exc)) from None
    if table.ndim != 2 or table.shape[1] != 2:
        raise RecordError(record, "malformed_peaks", "peaks are not [m/z, intensity] pairs")
    return table[:, 0], table[:, 1]


FORMAT = RecordFormat(None, parse_massbank_json, _accession)
