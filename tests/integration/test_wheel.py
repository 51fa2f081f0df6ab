"""The wheel works from any folder: built from this checkout, installed into a fresh venv, run from an empty
folder, it finds its configs, bundled data and weights inside the package and writes only under that folder."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from nextims import PROJECT_ROOT
from tests.conftest import DATA_DIR, TINY

# what `pip wheel` reads (copied, so the build leaves no build/ or egg-info in the checkout)
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "nextims", "hydra_plugins", "conf", "data")

# run by the venv's python from the empty folder: where the composed configs point
PATHS_SCRIPT = """
import json
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
import nextims
from nextims.config import conf_dir, register_resolvers
register_resolvers()
with initialize_config_dir(str(conf_dir()), version_base="1.3"):
    cfg = compose("train", overrides=["data.split.method=lists"])
# the sweeps' Optuna storage, resolved against these paths (without composing the sweeper plugin)
search = OmegaConf.load(conf_dir() / "hparams_search" / "neims_optuna.yaml")
optuna = OmegaConf.merge(search, {"paths": cfg.paths}).hydra.sweeper.storage
print(json.dumps({"package": nextims.__file__, "conf": str(conf_dir()), "data": cfg.data.path,
                  "test_list": cfg.data.split.test_list, "val_list": cfg.data.split.val_list,
                  "cache": cfg.paths.cache_dir, "checkpoints": cfg.paths.checkpoint_dir,
                  "fetched": cfg.paths.data_dir, "mlflow": cfg.tracking.uri, "artifacts": cfg.tracking.artifact_root,
                  "optuna": optuna, "weights": cfg.paths.weights_dir}))
"""


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    """This process (and the children it starts) under umask `mask`."""
    before = os.umask(mask)
    try:
        yield
    finally:
        os.umask(before)


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run cmd in cwd without this checkout on the path (no PYTHONPATH, no user site); fail with its output."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def package_files(package: Path) -> dict[str, int]:
    """Every file of an installed package but byte code, with its size."""
    return {str(p.relative_to(package)): p.stat().st_size for p in package.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (system site-packages for torch and the other dependencies) holding the wheel of this
    checkout; returns its python."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        src = PROJECT_ROOT / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.exists():
            shutil.copy2(src, source / name)
    run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
         "-w", str(root / "dist")], root)
    (wheel,) = (root / "dist").glob("nextims-*.whl")
    run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(root / "venv")], root)
    python = root / "venv" / "bin" / "python"
    # the venv sees the system's pip; --no-deps only to keep the test fast (the wheel declares its dependencies),
    # --ignore-installed so the system's (editable) nextims is neither used nor touched
    run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", "--no-index", str(wheel)], root)
    return python


@pytest.mark.slow
def test_wheel_predicts_and_trains_from_an_empty_folder(venv: Path, tmp_path: Path) -> None:
    work = tmp_path / "empty"
    work.mkdir()
    paths = json.loads(run([str(venv), "-c", PATHS_SCRIPT], work).stdout.strip().splitlines()[-1])
    package = Path(paths["package"]).parent
    assert package.is_relative_to(venv.parent.parent), paths  # the venv's copy, not this checkout
    for key in ("conf", "data", "test_list", "val_list", "weights"):
        assert Path(paths[key]).is_relative_to(package) and Path(paths[key]).exists(), (key, paths)
    for key in ("cache", "checkpoints", "fetched", "artifacts"):
        assert Path(paths[key]).is_relative_to(work), (key, paths)
    for key in ("mlflow", "optuna"):
        assert paths[key] == f"sqlite:///{work / Path(paths[key]).name}", (key, paths)
    metadata = next(package.parent.glob("nextims-*.dist-info")) / "METADATA"
    declared = [Requirement(line.split(":", 1)[1]) for line in metadata.read_text().splitlines()
                if line.startswith("Requires-Dist:") and "extra ==" not in line]
    pinned = map(Requirement, tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    assert {r.name: r.specifier for r in declared} == {r.name: r.specifier for r in pinned}
    before = package_files(package)

    with umask(0o022):
        done = run([str(venv), "-m", "nextims.predict", 'input="CCO"', "output=e.msp", "progress=false"], work)
    assert "wrote 1 spectra to e.msp" in done.stdout
    assert stat.S_IMODE((work / "e.msp").stat().st_mode) == 0o644 and "Name: CCO" in (work / "e.msp").read_text()

    tiny = [o for o in TINY if not o.startswith("data=")]
    run([str(venv), "-m", "nextims.train", "data=tiny", f"data.path={DATA_DIR / 'massbank_tiny.jsonl'}",
         *tiny, "export_name=wheel_tiny"], work)
    (metrics,) = work.glob("outputs/*/*/metrics.json")
    run_dir = metrics.parent
    assert (run_dir / "model.safetensors").exists() and (run_dir / "export" / "wheel_tiny.safetensors").exists()
    assert list((work / ".cache").glob("features-*.h5")) and list((work / "outputs" / "checkpoints").glob("*/last.ckpt"))
    assert package_files(package) == before  # nothing written into the installed package
