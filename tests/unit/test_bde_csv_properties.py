"""Property tests of the BDE CSV reader: corrupting a valid table never crashes it, every line is yielded or
counted under a reason, and a yielded row holds exactly what its own line says."""

from __future__ import annotations

import bz2
import csv
import dataclasses
import gzip
import lzma
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nextims.data.bde_db2 import SET_NAMES, VALUE_RANGE, BDERow, read_rows
from nextims.errors import DropReport, InputError, RecordError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.function_scoped_fixture])
HEADER = b"rid,molecule,bond_index,bond_type,fragment1,fragment2,bde,bdfe,set"
COMPRESS = {"": bytes, ".gz": gzip.compress, ".xz": lzma.compress, ".bz2": bz2.compress}

_smiles = st.text("CNOSFcnos()[]=#@+-123H", min_size=1, max_size=10)
_energy = st.floats(*VALUE_RANGE, allow_nan=False).map(repr)
_row = st.tuples(st.integers(0, 10**6).map(str), _smiles, st.integers(0, 40).map(str), st.just("C-H"), _smiles,
                 _smiles, _energy, st.one_of(st.just(""), _energy), st.sampled_from(["train", "valid", "Test", "val"]))
# bytes a corruption writes: quotes, separators, NUL, bytes that are not UTF-8, a bare CR, digits, letters, and a
# newline (which makes two lines of one)
_byte = st.sampled_from([b'"', b",", b"\x00", b"\xff", b"\xc3", b"\r", b" ", b"x", b"9", b"-", b"e", b"\n"])
_value = st.sampled_from(["-500", "1e30", "-1e30", "nan", "inf", "", "trian", "1,5", '"7', "0x10", "1e-400"])


@st.composite
def _corrupted(draw: st.DrawFn) -> list[tuple[bytes, tuple[str, ...] | None]]:
    """Data lines of a valid table after a few corruptions: (bytes, fields), fields None where corrupted."""
    lines: list[tuple[bytes, tuple[str, ...] | None]] = [
        (",".join(r).encode(), r) for r in draw(st.lists(_row, min_size=1, max_size=8))]
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        data, fields = lines[i]
        op = draw(st.sampled_from(["replace", "insert", "delete", "value", "drop", "duplicate", "garbage"]))
        at = draw(st.integers(0, len(data)))
        if op == "replace":
            lines[i] = data[:at] + draw(_byte) + data[at + 1:], None
        elif op == "insert":
            lines[i] = data[:at] + draw(_byte) + data[at:], None
        elif op == "delete":
            lines[i] = data[:at] + data[at + draw(st.integers(1, 20)):], None
        elif op == "value":
            changed = list(fields or data.decode("utf-8", "replace").split(","))
            changed[draw(st.integers(0, len(changed) - 1))] = draw(_value)
            lines[i] = ",".join(changed).encode(), None
        elif op == "drop" and len(lines) > 1:
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "garbage":
            lines.insert(i, (draw(st.binary(max_size=40)), None))
    # an inserted newline makes two physical lines, both corrupted
    return [(piece, fields if b"\n" not in data else None) for data, fields in lines for piece in data.split(b"\n")]


def _key(row: BDERow) -> tuple:
    """A row's values, NaN as None (NaN != NaN)."""
    return tuple(None if isinstance(v, float) and math.isnan(v) else v for v in dataclasses.astuple(row))


def _expected(fields: tuple[str, ...] | list[str], record: str) -> tuple:
    """The row a line with these fields stands for."""
    f = [x.strip() for x in fields]
    return _key(BDERow(record, f[1], int(f[2]), (f[4], f[5]), float(f[6]), float(f[7]) if f[7] else math.nan, f[8]))


def _table(lines: list[bytes], crlf: bool = False, final_newline: bool = True) -> bytes:
    """A table's bytes: the header and these data lines."""
    end = b"\r\n" if crlf else b"\n"
    return end.join([HEADER, *lines]) + (end if final_newline else b"")


@SETTINGS
@given(lines=_corrupted(), crlf=st.booleans(), final_newline=st.booleans(), suffix=st.sampled_from(list(COMPRESS)))
def test_corrupted_tables_yield_each_line_or_count_it(tmp_path: Path, lines: list, crlf: bool, final_newline: bool,
                                                      suffix: str) -> None:
    text = _table([data for data, _ in lines], crlf, final_newline)
    path = tmp_path / f"t.csv{suffix}"
    path.write_bytes(COMPRESS[suffix](text))
    report = DropReport()
    rows = {int(r.record.rsplit(":", 1)[1]): r for r in read_rows(path, report=report)}
    physical = dict(enumerate(text.split(b"\n"), start=1))
    nonblank = {number: fields for number, (_, fields) in enumerate(lines, start=2) if physical[number].strip()}
    assert len(rows) + report.total_dropped == len(nonblank)  # each line once: yielded or counted
    assert set(rows) <= set(nonblank)
    for number, fields in nonblank.items():
        record = f"{path.name}:{number}"
        if fields is not None:  # an untouched line is always read, unchanged
            assert _key(rows[number]) == _expected(fields, record)
        elif number in rows:  # a corrupted line that still reads holds its own values, nothing of its neighbours
            own = next(csv.reader([physical[number].decode("utf-8")], strict=True))
            assert _key(rows[number]) == _expected(own, record)
    for row in rows.values():
        assert VALUE_RANGE[0] <= row.bde <= VALUE_RANGE[1] and row.set.lower() in SET_NAMES
        assert math.isnan(row.bdfe) or VALUE_RANGE[0] <= row.bdfe <= VALUE_RANGE[1]


@SETTINGS
@given(rows=st.lists(_row, min_size=1, max_size=30), suffix=st.sampled_from([".gz", ".xz", ".bz2"]),
       cut=st.floats(0, 1, exclude_max=True))
def test_a_cut_compressed_table_yields_a_prefix_and_counts_the_cut(tmp_path: Path, rows: list, suffix: str,
                                                                  cut: float) -> None:
    whole = COMPRESS[suffix](_table([",".join(r).encode() for r in rows]))
    path = tmp_path / f"t.csv{suffix}"
    path.write_bytes(whole[:int(cut * len(whole))])
    report = DropReport()
    try:
        got = [_key(r) for r in read_rows(path, report=report)]
    except InputError:  # the cut took the header: the file is refused
        return
    assert got == [_expected(r, f"{path.name}:{i}") for i, r in enumerate(rows[:len(got)], start=2)]
    assert dict(report.dropped) == {"truncated": 1}


@SETTINGS
@given(data=st.binary(max_size=300))
def test_any_bytes_after_the_header_are_read_line_by_line(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(HEADER + b"\n" + data)
    report = DropReport()
    rows = list(read_rows(path, report=report))
    assert len(rows) + report.total_dropped == sum(1 for line in data.split(b"\n") if line.strip())


def test_strict_reading_names_the_first_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(_table([b"1,C,0,C-H,[H],[CH3],105.0,,train", b'2,C,1,C-H,"[H],[CH3],105.0,,train',
                             b"3,C,2,C-H,[H],[CH3],105.0,,train"]))
    with pytest.raises(RecordError, match="'t.csv:3': bad_csv"):
        list(read_rows(path))
