"""What every spectrum phase does first: load the data, featurize it, start tracking."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from nextims.config import build, flatten, to_yaml
from nextims.data.cache import content_hash
from nextims.data.feature_store import FeatureSet, build_or_load
from nextims.data.spectra import SpectraData, load_spectra
from nextims.models.weights import check_precision
from nextims.tracking import NullTracker
from nextims.training.distributed import is_main

# The config entries that define a spectrum training run (its checkpoint folder).
RUN_DEFINING = ("seed", "phase", "data", "featurizer", "model", "loss", "trainer")
# trainer options that join a run's key only when set
OFF_BY_DEFAULT = ("ema_decay",)


@dataclass
class SpectrumContext:
    """The loaded dataset and its features."""

    data: SpectraData
    features: FeatureSet

    def __post_init__(self) -> None:
        self.fingerprints = self.features.fingerprints  # read once; FeatureSet re-reads on each access


def load_context(cfg: DictConfig) -> SpectrumContext:
    """Load and split the spectra, print the dataset report, featurize the compounds (cached)."""
    data = load_spectra(OmegaConf.to_container(cfg.data, resolve=True))
    print(data.report.format())
    featurizer = build(cfg.featurizer.graph)
    features = build_or_load(list(data.compound_keys), data.compound_smiles, featurizer,
                             n_bits=int(cfg.featurizer.fp_bits), radius=int(cfg.featurizer.fp_radius),
                             cache_dir=Path(cfg.paths.cache_dir))
    return SpectrumContext(data, features)


def output_dir(cfg: DictConfig) -> Path:
    """The run folder (`paths.output_dir`: Hydra's output dir unless overridden)."""
    return Path(cfg.paths.output_dir)


def checkpoint_dir(cfg: DictConfig, defining: Sequence[str] = RUN_DEFINING, extra: str = "") -> Path:
    """A folder keyed by the config entries that define the run (and `extra`, e.g. the key of its inputs' cache),
    so the same command resumes the same training."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    spec = {k: resolved.get(k) for k in defining}
    if extra:
        spec["extra"] = extra
    if isinstance(spec.get("trainer"), dict):
        spec["trainer"].pop("resume", None)
        # options added after runs were keyed stay out of the key while off, so those runs still resume
        for option in OFF_BY_DEFAULT:
            if spec["trainer"].get(option) is None:
                spec["trainer"].pop(option, None)
    return Path(cfg.paths.checkpoint_dir) / f"{cfg.phase.name}-{cfg.model.name}-{content_hash(spec)[:12]}"


def sweep_info() -> tuple[str | None, str, int | None]:
    """(sweep folder, study name, trial number) when this job is part of a Hydra multirun."""
    if not HydraConfig.initialized():
        return None, "", None
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None, "", None
    study = str(OmegaConf.select(hc, "sweeper.study_name", default="") or "")
    return str(Path(hc.sweep.dir).resolve()), study, int(hc.job.num)


def start_tracking(cfg: DictConfig, extra_tags: dict[str, Any] | None = None) -> NullTracker:
    """Build the tracker, start this run (nested under a sweep's parent run) and log the config (rank 0 only).

    The run is named `<phase>-<model>-<data>`, data being the `data` tag of extra_tags when given.
    """
    if not is_main():
        return NullTracker()
    tracker = build(cfg.tracking)
    sweep_dir, study, trial = sweep_info()
    tags = {"phase": cfg.phase.name, "model": cfg.model.name, "data": cfg.data.name, **(extra_tags or {})}
    name = f"{tags['phase']}-{tags['model']}-{tags['data']}" + (f"-trial{trial}" if trial is not None else "")
    tracker.start(name, tags, sweep_dir=sweep_dir, sweep_name=study)
    tracker.log_params(flatten(cfg))
    tracker.log_text(to_yaml(cfg), "config.yaml")
    return tracker


@contextlib.contextmanager
def tracked_run(cfg: DictConfig, extra_tags: dict[str, Any] | None = None) -> Iterator[NullTracker]:
    """A tracked run that ends FINISHED, or FAILED when the block raises."""
    tracker = start_tracking(cfg, extra_tags)
    try:
        yield tracker
    except BaseException:
        tracker.end("FAILED")
        raise
    tracker.end()


def write_metrics(cfg: DictConfig, metrics: dict[str, Any], tracker: NullTracker) -> Path:
    """Write metrics.json to the run folder and log the metrics."""
    out = output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    tracker.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
    shown = {k: v for k, v in sorted(metrics.items()) if isinstance(v, (int, float)) and k.count("/") <= 1}
    print(" ".join(f"{k}={v:.4f}" for k, v in shown.items()))
    return path


def export_precision(cfg: DictConfig) -> str:
    """The precision of exported weights (`export_precision`, default float16); ValueError when unknown."""
    return check_precision(str(cfg.get("export_precision", "float16")))


def export_path(cfg: DictConfig) -> Path:
    """Where `export_name` is written: <run folder>/export/<name>, or the shipped-weights folder with ship=true."""
    folder = Path(cfg.paths.weights_dir) if cfg.get("ship") else output_dir(cfg) / "export"
    return folder / str(cfg.export_name)


def report_export(cfg: DictConfig, path: Path) -> None:
    """Say where the exported weights went (and how to ship them)."""
    if cfg.get("ship"):
        print(f"shipped weights: {path} (card {path.with_suffix('.json').name} beside them)")
    else:
        print(f"exported weights: {path} (card {path.with_suffix('.json').name} beside them); "
              f"ship=true writes them to {cfg.paths.weights_dir} instead")
