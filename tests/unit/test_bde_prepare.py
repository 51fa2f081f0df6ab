"""`python -m nextims.prepare bde`: the release when the network allows, else the alfabet wheel (no network here)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import lzma
import zipfile
from pathlib import Path
from urllib.error import URLError

import pytest

import nextims.prepare as prepare

DATA = Path(__file__).resolve().parents[1] / "data" / "bde"
MEMBER = "alfabet/model_files/20201012_bonds_for_neighbors.csv.gz"


def fake_wheel(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(MEMBER, gzip.compress((DATA / "tiny.csv").read_bytes()))
        archive.writestr("alfabet/__init__.py", "")
    return path


def test_extract_member_recompresses(tmp_path: Path) -> None:
    wheel = fake_wheel(tmp_path / "alfabet-0.1.0-py3-none-any.whl")
    prepare.extract_member(wheel, MEMBER, tmp_path / "table.csv.xz")
    assert lzma.decompress((tmp_path / "table.csv.xz").read_bytes()) == (DATA / "tiny.csv").read_bytes()
    assert not list(tmp_path.glob(".*.tmp"))


def test_falls_back_to_the_wheel_without_network(tmp_path: Path, monkeypatch, capsys) -> None:
    def no_network(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(prepare, "urlopen", no_network)
    monkeypatch.setattr(prepare, "fetch_wheel", lambda req, member, dest: prepare.extract_member(
        fake_wheel(tmp_path / "alfabet.whl"), member, dest))
    path = prepare.prepare_bde([f"paths.data_dir={tmp_path}", f"paths.cache_dir={tmp_path / 'cache'}"])
    out = capsys.readouterr().out
    assert "bde_db2_release: cannot fetch it (URLError" in out
    assert path == tmp_path / "bde" / "alfabet_0.1.0_bonds_for_neighbors.csv.xz" and path.exists()
    assert "kept 259, dropped 0" in out and "bde_data=bde_db2`" in out


class FakeResponse(io.BytesIO):
    def __enter__(self) -> "FakeResponse":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def test_takes_the_release_when_reachable(tmp_path: Path, monkeypatch, capsys) -> None:
    payload = (DATA / "release_format.csv.gz").read_bytes()
    api = {"files": [{"name": "bde-db2.csv.gz", "download_url": "https://example.org/file",
                      "computed_md5": hashlib.md5(payload).hexdigest()}]}

    def fake_urlopen(url: str, timeout: float = 0) -> FakeResponse:
        return FakeResponse(json.dumps(api).encode() if "api.figshare.com" in url else payload)

    monkeypatch.setattr(prepare, "urlopen", fake_urlopen)
    path = prepare.prepare_bde([f"paths.data_dir={tmp_path}", f"paths.cache_dir={tmp_path / 'cache'}"])
    assert path == tmp_path / "bde" / "bde-db2.csv.gz" and path.read_bytes() == payload
    assert "kept 24, dropped 0" in capsys.readouterr().out
    api["files"][0]["computed_md5"] = "0" * 32
    with pytest.raises(ValueError, match="md5"):
        prepare.fetch_figshare(19367051, "bde-db2.csv.gz", tmp_path / "other.csv.gz")
    assert not (tmp_path / "other.csv.gz").exists()
