"""The spectrum index: a library of unit-m/z spectra in one HDF5 file, ready to search and to memory-map.

Layout (attributes `format = "nextims-spectrum-index"`, `version = 1`, `max_mz`, `count`, `nnz`, `created_by`,
`complete`): the spectra as CSR rows, `indptr` (count + 1 int64), `mz` (nnz uint16 bins 1..max_mz, ascending in a
row), `intensity` (nnz float32, relative to the row's base peak = 1) and `weight` (nnz float32, the row's unit
weighted vector sqrt(I) * m/z at those bins), all contiguous and uncompressed; per entry `mass` (int32 nominal
molecular mass, -1 when unknown) and the string columns `name`, `inchikey`, `smiles`, `formula`, `source`.

Files are written atomically (a temporary sibling renamed over the path at the end, `complete` set last), spectra
streamed chunk by chunk through a scratch file, so a build that fails or is killed leaves nothing `open_index`
accepts, and a million spectra never sit in memory as objects. Peaks above max_mz are cut (the base peak and the
weights are those of the peaks kept); a spectrum with no peak at m/z 1..max_mz is refused (`no_peaks_in_range`).
"""

from __future__ import annotations

import itertools
import os
import socket
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import h5py
import numpy as np

import nextims
from nextims.errors import DropReport, InputError, RecordError, handle
from nextims.io.atomic import atomic_path
from nextims.search.prefilter import SparseRows
from nextims.spectrum import Spectrum

FORMAT = "nextims-spectrum-index"
VERSION = 1
DEFAULT_MAX_MZ = 1000
TEXT_COLUMNS = ("name", "inchikey", "smiles", "formula", "source")
PEAK_ARRAYS = {"mz": np.uint16, "intensity": np.float32, "weight": np.float32}
# spectra encoded per chunk, and entries / peaks copied per slice
WRITE_CHUNK = 4096
COPY_ROWS = 65536
COPY_PEAKS = 1 << 22
_STRING = h5py.string_dtype("utf-8")
# a spectrum's source: one string for all, or a function of the spectrum; None takes its `source` metadata
Source = str | Callable[[Spectrum], str] | None


@dataclass
class Block:
    """Encoded index entries: peaks per entry, their CSR peak arrays, masses and string columns."""

    counts: np.ndarray
    mz: np.ndarray
    intensity: np.ndarray
    weight: np.ndarray
    mass: np.ndarray
    text: dict[str, list[str]]

    def __len__(self) -> int:
        return len(self.counts)


@lru_cache(maxsize=65536)
def _smiles_mass(smiles: str) -> int | None:
    """Nominal mass of a SMILES, None when it does not parse."""
    from nextims.data.featurize import mol_from_smiles, nominal_mass

    try:
        return nominal_mass(mol_from_smiles(smiles))
    except RecordError:
        return None


def _inchi_mass(inchi: str) -> int | None:
    """Nominal mass of an InChI, None when it does not parse."""
    from rdkit import Chem, rdBase

    from nextims.data.featurize import nominal_mass

    with rdBase.BlockLogs():
        mol = Chem.MolFromInchi(inchi)
    return nominal_mass(mol) if mol is not None and mol.GetNumAtoms() else None


def entry_mass(spectrum: Spectrum, from_structure: bool = True) -> int:
    """Nominal molecular mass of a spectrum's compound: from its SMILES or InChI (with from_structure), else its
    `mw` field, else -1."""
    if from_structure:
        smiles, inchi = spectrum.get("smiles"), spectrum.get("inchi")
        mass = _smiles_mass(smiles) if isinstance(smiles, str) and smiles.strip() else None
        if mass is None and isinstance(inchi, str) and inchi.startswith("InChI="):
            mass = _inchi_mass(inchi)
        if mass is not None:
            return int(mass)
    try:
        mw = float(spectrum.get("mw"))
    except (TypeError, ValueError):
        return -1
    return int(np.floor(mw + 0.5)) if np.isfinite(mw) and mw > 0 else -1


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def encode_spectra(spectra: Sequence[Spectrum], max_mz: int, source: Source = None,
                   report: DropReport | None = None, mass_from_structure: bool = True) -> Block:
    """Index entries of spectra: peaks binned to unit m/z 1..max_mz (summed), intensities relative to the base peak,
    unit weighted vectors; a spectrum with no peak there is counted in report (`no_peaks_in_range`) and skipped, or
    raises RecordError without a report."""
    width = max_mz + 1
    kept, keys, values = [], [], []
    for spectrum in spectra:
        bins = np.floor(spectrum.mz + 0.5).astype(np.int64)
        inside = (bins >= 1) & (bins <= max_mz) & (spectrum.intensities > 0)
        if not inside.any():
            handle(RecordError(spectrum.id, "no_peaks_in_range", f"no peak at m/z 1-{max_mz}"), report)
            continue
        keys.append(len(kept) * width + bins[inside])
        values.append(spectrum.intensities[inside])
        kept.append(spectrum)
    if not kept:
        return _empty_block()
    unique, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    sums = np.bincount(inverse.ravel(), weights=np.concatenate(values))
    row, mz = unique // width, unique % width
    counts = np.bincount(row, minlength=len(kept)).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    relative = sums / np.repeat(np.maximum.reduceat(sums, starts), counts)
    weight = np.sqrt(relative) * mz
    weight /= np.repeat(np.sqrt(np.add.reduceat(weight * weight, starts)), counts)
    sources = [_text(source(s) if callable(source) else source if source is not None else s.get("source"))
               for s in kept]
    text = {"name": [_text(s.get("name") or s.id) for s in kept], "inchikey": [_text(s.get("inchikey")) for s in kept],
            "smiles": [_text(s.get("smiles")) for s in kept], "formula": [_text(s.get("formula")) for s in kept],
            "source": sources}
    mass = np.array([entry_mass(s, mass_from_structure) for s in kept], dtype=np.int32)
    return Block(counts, mz.astype(np.uint16), relative.astype(np.float32), weight.astype(np.float32), mass, text)


def _empty_block() -> Block:
    return Block(np.zeros(0, np.int64), np.zeros(0, np.uint16), np.zeros(0, np.float32), np.zeros(0, np.float32),
                 np.zeros(0, np.int32), {name: [] for name in TEXT_COLUMNS})


def _spectrum_blocks(spectra: Iterable[Spectrum], max_mz: int, source: Source, report: DropReport | None,
                     mass_from_structure: bool) -> Iterator[Block]:
    """Blocks of WRITE_CHUNK spectra at a time."""
    items = iter(spectra)
    while chunk := list(itertools.islice(items, WRITE_CHUNK)):
        yield encode_spectra(chunk, max_mz, source, report, mass_from_structure)


@contextmanager
def _scratch(path: Path) -> Iterator[Path]:
    """A scratch sibling of path, named as atomic_path names its temporaries (so a killed writer's is cleaned up
    by the next write of path), removed at the end."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}@{socket.gethostname()}.", suffix=".tmp",
                                dir=path.parent)
    os.close(fd)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def _append(dataset: h5py.Dataset, values: np.ndarray) -> None:
    start = dataset.shape[0]
    dataset.resize(start + len(values), axis=0)
    dataset[start:] = values


def _write(path: str | Path, blocks: Iterable[Block], max_mz: int) -> int:
    """Write the entries of blocks as an index at path, atomically; returns their count."""
    path = Path(path)
    if not 1 <= max_mz <= np.iinfo(np.uint16).max:
        raise ValueError(f"{path}: max_mz {max_mz} must lie in 1..{np.iinfo(np.uint16).max}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, _scratch(path) as scratch_path:
        with h5py.File(scratch_path, "w") as scratch:
            columns = {"counts": np.int64, **PEAK_ARRAYS, "mass": np.int32, **{t: _STRING for t in TEXT_COLUMNS}}
            for name, dtype in columns.items():
                scratch.create_dataset(name, (0,), dtype=dtype, maxshape=(None,), chunks=(COPY_ROWS,))
            for block in blocks:
                for name in ("counts", *PEAK_ARRAYS, "mass"):
                    _append(scratch[name], getattr(block, name))
                for name in TEXT_COLUMNS:
                    _append(scratch[name], np.array(block.text[name], dtype=object))
        with h5py.File(scratch_path, "r") as scratch, h5py.File(tmp, "w") as out:
            count, nnz = scratch["counts"].shape[0], scratch["mz"].shape[0]
            out.attrs.update({"format": FORMAT, "version": VERSION, "max_mz": int(max_mz), "count": count,
                              "nnz": nnz, "created_by": f"nextims {nextims.__version__}", "complete": False})
            indptr = out.create_dataset("indptr", (count + 1,), dtype=np.int64)
            indptr[0] = 0
            offset = 0
            for start in range(0, count, COPY_ROWS):
                ends = offset + np.cumsum(scratch["counts"][start:start + COPY_ROWS])
                indptr[start + 1:start + 1 + len(ends)] = ends
                offset = int(ends[-1])
            for name, dtype in PEAK_ARRAYS.items():
                _copy(scratch[name], out.create_dataset(name, (nnz,), dtype=dtype), COPY_PEAKS)
            _copy(scratch["mass"], out.create_dataset("mass", (count,), dtype=np.int32), COPY_ROWS)
            for name in TEXT_COLUMNS:
                _copy(scratch[name], out.create_dataset(name, (count,), dtype=_STRING), COPY_ROWS)
            out.attrs["complete"] = True
    return count


def _copy(source: h5py.Dataset, target: h5py.Dataset, step: int) -> None:
    for start in range(0, source.shape[0], step):
        target[start:start + step] = source[start:start + step]


def build_index(path: str | Path, spectra: Iterable[Spectrum], source: Source = None, max_mz: int = DEFAULT_MAX_MZ,
                report: DropReport | None = None, mass_from_structure: bool = True) -> int:
    """Index spectra at path (atomically, WRITE_CHUNK spectra at a time); returns the entries written. source: one
    string (e.g. `experimental:massbank.msp`, `predicted:student`), a function of the spectrum, or None for its
    `source` metadata; refused spectra are counted in report (its drops only), or raise without one."""
    return _write(path, _spectrum_blocks(spectra, max_mz, source, report, mass_from_structure), max_mz)


def append_spectra(path: str | Path, spectra: Iterable[Spectrum], source: Source = None,
                   report: DropReport | None = None, mass_from_structure: bool = True) -> int:
    """Add spectra after the entries of the index at path (rewritten atomically, at its max_mz); returns the entries
    added."""
    index = open_index(path)
    added = [0]

    def counted() -> Iterator[Block]:
        for block in _spectrum_blocks(spectra, index.max_mz, source, report, mass_from_structure):
            added[0] += len(block)
            yield block

    _write(path, itertools.chain(index.blocks(), counted()), index.max_mz)
    return added[0]


def merge_indexes(paths: Sequence[str | Path], output: str | Path) -> int:
    """One index at output of the entries of several, in order (the first file's first); its max_mz is the largest
    (entries keep the peaks their own index kept). Returns the entries written."""
    if not paths:
        raise ValueError("merge_indexes: no index to merge")
    indexes = [open_index(p) for p in paths]
    blocks = itertools.chain.from_iterable(index.blocks() for index in indexes)
    return _write(output, blocks, max(index.max_mz for index in indexes))


def _memmapped(f: h5py.File, path: Path, name: str) -> np.ndarray:
    """A dataset as a read-only numpy.memmap when it is contiguous and allocated, else read into memory."""
    dataset = f[name]
    offset = dataset.id.get_offset()
    if offset is not None and dataset.chunks is None and dataset.compression is None and dataset.size:
        return np.memmap(path, mode="r", dtype=dataset.dtype, shape=dataset.shape, offset=offset)
    return dataset[()]


class SpectrumIndex:
    """An open spectrum index: CSR arrays `indptr`, `mz`, `intensity`, `weight` (memory-mapped), `mass`, and the
    string columns by `column(name)`."""

    def __init__(self, path: Path, attrs: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.path = path
        self.attrs = attrs
        self.max_mz = int(attrs["max_mz"])
        self.indptr, self.mz = arrays["indptr"], arrays["mz"]
        self.intensity, self.weight = arrays["intensity"], arrays["weight"]
        self.mass = np.asarray(arrays["mass"], dtype=np.int32)
        self._columns: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def __repr__(self) -> str:
        return f"SpectrumIndex({str(self.path)!r}, {len(self)} spectra, max_mz={self.max_mz})"

    @property
    def width(self) -> int:
        """Bins per dense row (max_mz + 1)."""
        return self.max_mz + 1

    def column(self, name: str) -> np.ndarray:
        """A string column (name, inchikey, smiles, formula, source) as an object array of str (read once)."""
        if name not in TEXT_COLUMNS:
            raise KeyError(f"{self.path}: no column {name!r}; columns: {', '.join(TEXT_COLUMNS)}")
        if name not in self._columns:
            with h5py.File(self.path, "r") as f:
                self._columns[name] = f[name].asstr()[()]
        return self._columns[name]

    def metadata(self, row: int) -> dict[str, Any]:
        """One entry's string columns and mass (-1: unknown)."""
        with h5py.File(self.path, "r") as f:
            meta: dict[str, Any] = {name: f[name].asstr()[row] for name in TEXT_COLUMNS}
        meta["mass"] = int(self.mass[row])
        return meta

    def columns_at(self, rows: np.ndarray) -> dict[str, dict[int, str]]:
        """The string columns of the given rows (any order, repeats allowed), by column and row."""
        unique = np.unique(np.asarray(rows, dtype=np.int64))
        if not len(unique):
            return {name: {} for name in TEXT_COLUMNS}
        with h5py.File(self.path, "r") as f:
            return {name: dict(zip(unique.tolist(), f[name].asstr()[unique])) for name in TEXT_COLUMNS}

    def peaks(self, row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One entry's bins (int64), relative intensities and weights."""
        a, b = int(self.indptr[row]), int(self.indptr[row + 1])
        return np.asarray(self.mz[a:b], dtype=np.int64), np.asarray(self.intensity[a:b]), np.asarray(self.weight[a:b])

    def binned(self, row: int) -> np.ndarray:
        """One entry as a dense (max_mz + 1,) float32 array of relative intensities."""
        bins, intensity, _ = self.peaks(row)
        out = np.zeros(self.width, np.float32)
        out[bins] = intensity
        return out

    def spectrum(self, row: int) -> Spectrum:
        """One entry as a Spectrum (relative intensities, metadata from its columns; `mw` its mass when known)."""
        bins, intensity, _ = self.peaks(row)
        meta = self.metadata(row)
        mass = meta.pop("mass")
        return Spectrum(bins.astype(np.float64), intensity.astype(np.float64),
                        {**meta, "id": meta["name"], **({"mw": mass} if mass >= 0 else {})})

    def sparse_rows(self) -> SparseRows:
        """The weighted unit vectors as CSR rows (memory-mapped, nothing read)."""
        return SparseRows(np.asarray(self.indptr), self.mz, self.weight)

    def dense_weights(self, start: int, stop: int, dtype: Any = np.float64) -> np.ndarray:
        """Rows start..stop of the weighted unit vectors as a dense (rows, max_mz + 1) array."""
        return self.sparse_rows().dense_rows(np.arange(start, stop), self.width).astype(dtype, copy=False)

    def blocks(self, rows: int = COPY_ROWS) -> Iterator[Block]:
        """The entries as Blocks of `rows` entries (for append and merge)."""
        with h5py.File(self.path, "r") as f:
            for start in range(0, len(self), rows):
                stop = min(len(self), start + rows)
                a, b = int(self.indptr[start]), int(self.indptr[stop])
                yield Block(np.diff(np.asarray(self.indptr[start:stop + 1])), np.asarray(self.mz[a:b]),
                            np.asarray(self.intensity[a:b]), np.asarray(self.weight[a:b]), self.mass[start:stop],
                            {name: list(f[name].asstr()[start:stop]) for name in TEXT_COLUMNS})


def _attribute(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def open_index(path: str | Path) -> SpectrumIndex:
    """Open a spectrum index; InputError names the file and what is wrong when it is not one (another format,
    another version, written incompletely, damaged)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such spectrum index file" if not path.exists() else f"{path}: not a file")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise InputError(f"{path}: not a nextims spectrum index (not an HDF5 file: {err})") from None
    with f:
        attrs = {key: _attribute(value) for key, value in f.attrs.items()}
        found = attrs.get("format")
        if found != FORMAT:
            what = "it has no format attribute" if found is None else f"its format attribute is {found!r}"
            raise InputError(f"{path}: not a nextims spectrum index ({what}, expected {FORMAT!r})")
        version = attrs.get("version")
        if version != VERSION:
            raise InputError(f"{path}: spectrum index version {version}, this nextims reads version {VERSION}; "
                             "rebuild the index")
        if not attrs.get("complete", False):
            raise InputError(f"{path}: spectrum index written incompletely (its writer stopped); rebuild it")
        missing = [name for name in ("indptr", *PEAK_ARRAYS, "mass", *TEXT_COLUMNS) if name not in f]
        if missing or "max_mz" not in attrs:
            raise InputError(f"{path}: damaged spectrum index (missing {', '.join(missing) or 'max_mz'})")
        arrays = {name: _memmapped(f, path, name) for name in ("indptr", *PEAK_ARRAYS)}
        arrays["mass"] = f["mass"][()]
        count, nnz = len(arrays["indptr"]) - 1, len(arrays["mz"])
        lengths = {name: f[name].shape[0] for name in ("mass", *TEXT_COLUMNS)}
        if (count < 0 or int(arrays["indptr"][-1]) != nnz or any(len(arrays[n]) != nnz for n in PEAK_ARRAYS)
                or any(n != count for n in lengths.values())):
            raise InputError(f"{path}: damaged spectrum index (array lengths disagree: {count} entries, "
                             f"{nnz} peaks, columns {lengths})")
    return SpectrumIndex(path, attrs, arrays)
