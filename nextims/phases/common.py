"""What every spectrum phase does first: load the data, featurize it, start tracking."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from nextims.config import build, flatten, to_yaml
from nextims.data.cache import content_hash
from nextims.data.feature_store import FeatureSet, build_or_load
from nextims.data.dataset_cache import load_dataset
from nextims.data.spectra import SpectraData
from nextims.models.weights import check_precision
from nextims.tracking import NullTracker, source_tags
from nextims.training.distributed import is_main
from nextims.training.runtime import peak_rss_gb, worker_count

# The config entries that define a spectrum training run (its checkpoint folder).
RUN_DEFINING = ("seed", "phase", "data", "featurizer", "model", "loss", "trainer")
# trainer options that join a run's key only when set
OFF_BY_DEFAULT = ("ema_decay", "limit_train_batches")
# The config entries tracked as params of a spectrum run: the run-defining ones, the ensemble size and, where the
# phase has one, the teacher.
TRACKED = (*RUN_DEFINING, "ensemble_size", "teacher")
# trainer options that do not change what is trained (left out of the tracked params)
UNTRACKED_TRAINER = ("resume", "keep_checkpoints")

log = logging.getLogger(__name__)


@dataclass
class SpectrumContext:
    """The loaded dataset and its features."""

    data: SpectraData
    features: FeatureSet

    def __post_init__(self) -> None:
        self.fingerprints = self.features.sparse_fingerprints  # kept sparse; dense a batch at a time


def load_data(cfg: DictConfig) -> SpectraData:
    """The spectra of `cfg.data`, read and filtered in `data.workers` processes, cached in `paths.cache_dir`
    unless `data.cache` is false."""
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    cache_dir = Path(cfg.paths.cache_dir) if data_cfg.get("cache", True) else None
    return load_dataset(data_cfg, cache_dir, worker_count(data_cfg.get("workers", 0)))


def load_features(cfg: DictConfig, data: SpectraData) -> FeatureSet:
    """The features of the dataset's compounds (cached; built in `data.workers` processes)."""
    return build_or_load(list(data.compound_keys), data.compound_smiles, build(cfg.featurizer.graph),
                         n_bits=int(cfg.featurizer.fp_bits), radius=int(cfg.featurizer.fp_radius),
                         cache_dir=Path(cfg.paths.cache_dir), workers=worker_count(cfg.data.get("workers", 0)))


def load_context(cfg: DictConfig) -> SpectrumContext:
    """Load and split the spectra, log the dataset report, featurize the compounds (cached; both in `data.workers`
    processes)."""
    data = load_data(cfg)
    log.info(data.report.format())
    return SpectrumContext(data, load_features(cfg, data))


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
        for option in UNTRACKED_TRAINER:  # how to run, not what is trained
            spec["trainer"].pop(option, None)
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


def run_params(cfg: DictConfig, defining: Sequence[str] = TRACKED) -> dict[str, Any]:
    """The params that define a run: the flattened `defining` entries the config has, without the trainer's
    bookkeeping options; absolute paths are reduced to their file names."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    params = flatten({k: resolved[k] for k in defining if k in resolved})
    for option in UNTRACKED_TRAINER:
        params.pop(f"trainer.{option}", None)
    return file_names(params)


def file_names(obj: Any) -> Any:
    """obj (dicts and lists, any depth) with every absolute path reduced to its file name: records that are shared
    (MLflow params, model cards) name files, not the folders of the machine that wrote them."""
    if isinstance(obj, dict):
        return {k: file_names(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [file_names(v) for v in obj]
    return Path(obj).name if isinstance(obj, str) and Path(obj).is_absolute() else obj


def run_name(tags: dict[str, Any], trial: int | None) -> str:
    """`<phase>-<model>-<data>-<start time>[-trial<n>]`: descriptive, and distinct for distinct runs."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")[:-3]
    return f"{tags['phase']}-{tags['model']}-{tags['data']}-{stamp}" + (f"-trial{trial}" if trial is not None else "")


def start_tracking(cfg: DictConfig, extra_tags: dict[str, Any] | None = None,
                   defining: Sequence[str] = TRACKED) -> NullTracker:
    """Build the tracker, start this run (nested under a sweep's parent run), log its params and config (rank 0).

    The run is named by `run_name` (data being the `data` tag of extra_tags when given) and tagged with phase,
    model, data, the package version and the git commit; the params are the `defining` config groups.
    """
    if not is_main():
        return NullTracker()
    tracker = build(cfg.tracking)
    sweep_dir, study, trial = sweep_info()
    tags = {"phase": cfg.phase.name, "model": cfg.model.name, "data": cfg.data.name, **(extra_tags or {})}
    tags.update({**source_tags(), "run_folder": output_dir(cfg).name})
    if trial is not None:
        tags["trial"] = trial
    tracker.start(run_name(tags, trial), tags, sweep_dir=sweep_dir, sweep_name=study)
    tracker.log_params(run_params(cfg, defining))
    tracker.log_text(to_yaml(cfg), "config.yaml")
    return tracker


@contextlib.contextmanager
def tracked_run(cfg: DictConfig, extra_tags: dict[str, Any] | None = None,
                defining: Sequence[str] = TRACKED) -> Iterator[NullTracker]:
    """A tracked run that ends FINISHED, or FAILED when the block raises."""
    tracker = start_tracking(cfg, extra_tags, defining)
    try:
        yield tracker
    except BaseException:
        tracker.end("FAILED")
        raise
    peak = peak_rss_gb()
    log.info(f"peak resident memory: {peak:.2f} GB")
    tracker.log_metrics({"resources/peak_rss_gb": peak})
    tracker.end()


def log_run_folder(cfg: DictConfig, tracker: NullTracker) -> None:
    """Log the run folder's metrics.json, model card (model.json) and, with tracking.log_weights, its weights."""
    out = output_dir(cfg)
    files = [out / "metrics.json", out / "model.json"]
    if getattr(tracker, "log_weights", False):
        files += sorted(p for p in out.glob("model.*") if p.suffix in (".safetensors", ".part"))
    for path in files:
        if path.is_file():
            tracker.log_artifact(path)


def write_metrics(cfg: DictConfig, metrics: dict[str, Any], tracker: NullTracker) -> Path:
    """Write metrics.json to the run folder, log the metrics (validation ones as `best/val/...`) and the run
    folder's files (see log_run_folder)."""
    out = output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    tracker.log_summary({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
    log_run_folder(cfg, tracker)
    shown = {k: v for k, v in sorted(metrics.items()) if isinstance(v, (int, float)) and k.count("/") <= 1}
    log.info(" ".join(f"{k}={v:.4f}" for k, v in shown.items()))
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
