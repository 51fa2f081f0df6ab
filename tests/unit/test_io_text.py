"""Tests for nextims.io.text: compressed opening, record splitting, decoding and peak-list parsing."""

from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path

import numpy as np
import pytest

from nextims.errors import DropReport, InputError, RecordError
from nextims.io.msp import read_msp
from nextims.io.text import (DamagedFileError, check_stream, decode_record, inner_suffix, open_binary,
                             parse_peak_pairs, split_records)

CONTENT = b"Name: a\nNum Peaks: 1\n41 999\n\nName: b\nNum Peaks: 1\n43 100\n"


@pytest.mark.parametrize(("name", "suffix"), [
    ("lib.msp", ".msp"), ("lib.MSP.gz", ".msp"), ("a.b.jsonl.xz", ".jsonl"), ("x.sdf.bz2", ".sdf"),
    ("record.txt", ".txt"), ("noext", ""), ("only.gz", ""),
])
def test_inner_suffix_looks_through_compression(name: str, suffix: str) -> None:
    assert inner_suffix(name) == suffix


@pytest.mark.parametrize("compress", [gzip.compress, lzma.compress, bz2.compress, lambda b: b])
def test_open_binary_decompresses_by_content(tmp_path: Path, compress) -> None:
    path = tmp_path / "lib.dat"  # no telling extension: the magic bytes decide
    path.write_bytes(compress(CONTENT))
    with open_binary(path) as fh:
        assert fh.read() == CONTENT


def test_split_records_on_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "lib.msp"
    path.write_bytes(b"\n\n" + CONTENT + b"\n\n")
    records = list(split_records(path, lambda line: not line.strip()))
    assert [r.data for r in records] == [b"Name: a\nNum Peaks: 1\n41 999\n", b"Name: b\nNum Peaks: 1\n43 100\n"]
    assert [r.line for r in records] == [3, 7]
    assert all(r.terminated for r in records)


def test_split_records_marks_unterminated_last_record(tmp_path: Path) -> None:
    path = tmp_path / "lib.sdf"
    path.write_bytes(b"one\n$$$$\ntwo\n")
    records = list(split_records(path, lambda line: line.rstrip() == b"$$$$"))
    assert [(r.data, r.terminated) for r in records] == [(b"one\n", True), (b"two\n", False)]


def test_split_lines_strips_bom_and_flags_missing_newline(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\xef\xbb\xbf{}\n\n{\"a\": 1")
    records = list(split_records(path))
    assert [(r.data, r.line, r.terminated) for r in records] == [(b"{}\n", 1, True), (b'{"a": 1', 3, False)]


def test_cut_compressed_stream_ends_in_unterminated_record(tmp_path: Path) -> None:
    path = tmp_path / "lib.msp.gz"
    packed = gzip.compress(CONTENT * 50)
    path.write_bytes(packed[: len(packed) // 2])
    records = list(split_records(path, lambda line: not line.strip()))
    assert records and not records[-1].terminated
    assert all(r.terminated for r in records[:-1])


def test_decode_record_names_record_on_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "x.msp"
    path.write_bytes(b"Name: caf\xe9\nNum Peaks: 0\n")
    (raw,) = split_records(path, lambda line: not line.strip())
    with pytest.raises(RecordError) as info:
        decode_record(raw, "utf-8", lambda text: text.split("\n")[0][6:], "x.msp:1")
    assert info.value.reason == "encoding"
    assert info.value.record == "caf\ufffd"
    assert "0xe9" in info.value.detail
    assert decode_record(raw, "latin-1", lambda text: None, "x.msp:1").startswith("Name: café")


def test_parse_peak_pairs_handles_separators_and_annotations() -> None:
    mz, intensity = parse_peak_pairs('41 999 "C3H5+"; 43\t100\n55:20 (57 10) 58.5 1e2', "r")
    np.testing.assert_array_equal(mz, [41, 43, 55, 57, 58.5])
    np.testing.assert_array_equal(intensity, [999, 100, 20, 10, 100])


@pytest.mark.parametrize("text", ["41 999 43", "41 abc", "41 999; x 1"])
def test_parse_peak_pairs_rejects_bad_text(text: str) -> None:
    with pytest.raises(RecordError) as info:
        parse_peak_pairs(text, "rec-1")
    assert (info.value.record, info.value.reason) == ("rec-1", "malformed_peaks")


def test_parse_peak_pairs_keeps_nan_for_validation() -> None:
    mz, intensity = parse_peak_pairs("41 nan", "r")
    assert mz[0] == 41 and np.isnan(intensity[0])


MANY = b"".join(b"Name: c%d\nNum Peaks: 2\n41 999\n%d 100\n\n" % (i, 42 + i % 50) for i in range(3000))


def flipped(data: bytes) -> bytes:
    """data with its middle byte inverted."""
    at = len(data) // 2
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


@pytest.mark.parametrize(("suffix", "compress"), [(".gz", gzip.compress), (".xz", lzma.compress),
                                                  (".bz2", bz2.compress)])
def test_a_damaged_stream_is_refused_before_any_record_is_read(tmp_path: Path, suffix: str, compress) -> None:
    path = tmp_path / f"lib.msp{suffix}"
    path.write_bytes(flipped(compress(MANY)))
    report = DropReport()
    with pytest.raises(DamagedFileError, match=rf"lib\.msp\{suffix}: the compressed stream is damaged") as err:
        next(read_msp(path, report))
    assert isinstance(err.value, InputError) and report.kept == 0
    with pytest.raises(DamagedFileError):
        open_binary(path)
    open_binary(path, check=False).close()


@pytest.mark.parametrize(("suffix", "compress"), [(".gz", gzip.compress), (".xz", lzma.compress)])
def test_a_cut_stream_is_read_to_the_cut_and_reported_once(tmp_path: Path, suffix: str, compress) -> None:
    packed = compress(MANY)
    path = tmp_path / f"lib.msp{suffix}"
    path.write_bytes(packed[: len(packed) * 4 // 10])
    check_stream(path)  # cut short is not damage: what came before the cut is sound
    report = DropReport()
    read = list(read_msp(path, report))
    assert 0 < len(read) < 3000 and [s.id for s in read] == [f"c{i}" for i in range(len(read))]
    assert report.dropped["truncated_file"] == 1 and report.kept == len(read)
    assert f"{len(read)} records read before the cut, the rest is lost" in report.examples["truncated_file"][0]
