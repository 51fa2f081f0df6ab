"""Where the package's own files are (configs, bundled data, shipped weights) and where runs write.

In a source checkout the Hydra configs and the bundled data are the repository's top-level `conf/` and `data/`;
an installed wheel carries them inside the package as `nextims/conf/` and `nextims/bundled_data/`
(pyproject.toml maps them there). Everything a run writes goes under the working directory instead.
"""

from __future__ import annotations

import os
from pathlib import Path

from nextims import PACKAGE_DIR, PROJECT_ROOT

WEIGHTS_DIR = PACKAGE_DIR / "weights"
# the wheel's names for the repository's conf/ and data/
PACKAGED_CONF = PACKAGE_DIR / "conf"
PACKAGED_DATA = PACKAGE_DIR / "bundled_data"


def source_checkout() -> Path | None:
    """The repository holding this package when it runs from a source checkout (or an editable install), else None."""
    if (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "conf" / "train.yaml").is_file():
        return PROJECT_ROOT
    return None


def conf_dir() -> Path:
    """The folder of the Hydra configs: the checkout's conf/, else the installed package's copy."""
    root = source_checkout()
    return root / "conf" if root else PACKAGED_CONF


def bundled_data_dir() -> Path:
    """The data shipped with the package (MassBank EI, the NEIMS split lists): the checkout's data/, else the
    installed package's copy."""
    root = source_checkout()
    return root / "data" if root else PACKAGED_DATA


def fetched_data_dir() -> Path:
    """Where data that `python -m nextims.prepare` fetches lives (the BDE tables): the checkout's data/, else
    data/ under the working directory (never inside an installed package)."""
    root = source_checkout()
    return root / "data" if root else work_dir() / "data"


def work_dir() -> Path:
    """The folder runs write under (run folders, caches, checkpoints, MLflow and Optuna stores): the working
    directory."""
    return Path(os.getcwd())
