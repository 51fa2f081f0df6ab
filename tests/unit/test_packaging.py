"""pyproject.toml lists every Python package and every config file, so the wheel carries the whole program."""

from __future__ import annotations

import tomllib

from nextims import PROJECT_ROOT

SETUPTOOLS = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_folder_with_modules_is_a_listed_package() -> None:
    folders = {p.parent for top in ("nextims", "hydra_plugins") for p in (PROJECT_ROOT / top).rglob("*.py")
               if "__pycache__" not in p.parts}
    found = {".".join(f.relative_to(PROJECT_ROOT).parts) for f in folders}
    mapped = set(SETUPTOOLS["package-dir"])
    assert found == set(SETUPTOOLS["packages"]) - mapped


def test_package_data_globs_take_every_config_file() -> None:
    conf = PROJECT_ROOT / SETUPTOOLS["package-dir"]["nextims.conf"]
    globs = SETUPTOOLS["package-data"]["nextims.conf"]
    matched = {p for pattern in globs for p in conf.glob(pattern)}
    assert matched == set(conf.rglob("*.yaml")) and matched


def test_shipped_files_keep_the_weights_budget() -> None:
    """README's weights budget: each weights file at most 25 MB, everything the wheel ships at most 80 MB."""
    mb = 1_000_000
    folders = {"nextims": PROJECT_ROOT / "nextims", **{k: PROJECT_ROOT / v for k, v in SETUPTOOLS["package-dir"].items()}}
    shipped = {p for package, globs in SETUPTOOLS["package-data"].items() for g in globs
               for p in folders[package].glob(g) if p.is_file()}
    shipped |= {p for p in (PROJECT_ROOT / "nextims").rglob("*.py") if "__pycache__" not in p.parts}
    weights = [p for p in shipped if p.suffix in (".safetensors", ".part")]
    assert weights and {p.name: p.stat().st_size for p in weights if p.stat().st_size > 25 * mb} == {}
    assert sum(p.stat().st_size for p in shipped) <= 80 * mb
