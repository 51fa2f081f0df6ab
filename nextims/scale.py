"""`python -m nextims.bench scale`: loading, featurizing, training and validating at library scale, measured on a
synthetic library of a shipped model's predictions for transfer-set molecules."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from nextims.config import build, conf_dir, register_resolvers
from nextims.data.dataset_cache import load_dataset
from nextims.data.molecules import read_molecules
from nextims.io.atomic import atomic_open
from nextims.phases.common import SpectrumContext, checkpoint_dir, load_data, load_features
from nextims.predict import compose_predict, run_predict
from nextims.training.batches import epoch_batch_count
from nextims.training.checkpoint import load_checkpoint
from nextims.training.runtime import peak_rss_gb, seed_everything, set_threads, worker_count

COLUMNS = ("stage", "load_s", "features_s", "bde_cache_s", "batches", "epoch_s", "val_s", "peak_gb")


def synthetic_library(scale: DictConfig, weights_dir: str) -> Path:
    """`scale.n` molecules of `scale.sources` (a fixed-seed sample, `scale.seed`) with `scale.model`'s predicted
    spectra (weights from weights_dir), as an MSP file in `scale.dir` (made once; reused while it exists)."""
    folder = Path(scale.dir)
    path = folder / f"library-{scale.model}-n{int(scale.n)}-seed{int(scale.seed)}.msp"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    smiles = [m.smiles for source in scale.sources for m in read_molecules(str(source)) if m.error is None]
    if len(smiles) < int(scale.n):
        raise ValueError(f"bench.scale.n={int(scale.n)}: the transfer set holds {len(smiles)} molecules")
    chosen = np.random.default_rng(int(scale.seed)).permutation(len(smiles))[: int(scale.n)]
    molecules = path.with_suffix(".smi")
    with atomic_open(molecules, "w", encoding="utf-8") as out:
        out.writelines(f"{smiles[i]} scale{rank}\n" for rank, i in enumerate(chosen))
    start = time.perf_counter()
    report = run_predict(compose_predict([f"input={molecules}", f"output={path}", f"model={scale.model}",
                                          f"paths.weights_dir={weights_dir}", "progress=false"]))
    print(f"synthetic library: {report.kept} spectra predicted by {scale.model} in {time.perf_counter() - start:.0f} s "
          f"({report.total_dropped} molecules refused) -> {path}")
    return path


def stage_config(cfg: DictConfig, library: Path, overrides: list[str]) -> DictConfig:
    """The training config of one stage: the library as `data=msp`, one epoch, no tracking, the stage's overrides."""
    scale = cfg.bench.scale
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        return compose("train", overrides=["data=msp", f"data.path={library}", "tracking=none", "trainer.max_epochs=1",
                                           f"paths.cache_dir={Path(scale.dir) / 'cache'}",
                                           f"paths.checkpoint_dir={Path(scale.dir) / 'checkpoints'}",
                                           f"paths.output_dir={Path(scale.dir) / 'runs'}", *overrides])


def measure_load(cfg: DictConfig) -> dict[str, Any]:
    """First load (no cache: read, filter, bin in data.workers processes, then cached) and a cached load."""
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    cache = Path(cfg.paths.cache_dir)
    for old in cache.glob("spectra-*.h5"):
        old.unlink()
    workers = worker_count(data_cfg.get("workers", 0))
    start = time.perf_counter()
    data = load_dataset(data_cfg, cache, workers, progress=None)
    first = time.perf_counter() - start
    start = time.perf_counter()
    load_dataset(data_cfg, cache, workers, progress=None)
    cached = time.perf_counter() - start
    read = data.report.kept + data.report.total_dropped
    return {"stage": "load", "records": read, "kept": len(data), "load_s": first, "records_per_s": read / first,
            "cached_load_s": cached, "workers": workers, "peak_gb": peak_rss_gb()}


def measure_training(cfg: DictConfig, name: str) -> dict[str, Any]:
    """One model's cached load, features cache, BDE targets (teacher), one (possibly cut) training epoch with its
    early-stopping validation; the full epoch's time extrapolated from the batches run."""
    from nextims.phases.spectrum import bde_targets, train_network
    from nextims.tracking import NullTracker

    seed_everything(int(cfg.seed))
    set_threads(cfg.trainer.num_threads)
    start = time.perf_counter()
    data = load_data(cfg)
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    ctx = SpectrumContext(data, load_features(cfg, data))
    features_s = time.perf_counter() - start
    tracker = NullTracker()
    start = time.perf_counter()
    bde = bde_targets(cfg, ctx, tracker) if cfg.phase.get("bde_targets") else None
    bde_s = time.perf_counter() - start if bde is not None else float("nan")
    folder = checkpoint_dir(cfg)
    shutil.rmtree(folder, ignore_errors=True)  # time a fresh epoch, never a resumed one
    train_network(build(cfg.model), ctx, cfg, tracker, bde)
    (epoch,) = load_checkpoint(folder / "last.ckpt")["loop"]["history"]
    per_epoch = epoch_batch_count(len(data.record_indices("train")), int(cfg.trainer.batch_size))
    shutil.rmtree(folder, ignore_errors=True)
    return {"stage": name, "load_s": load_s, "features_s": features_s, "bde_cache_s": bde_s,
            "batches": f"{int(epoch['time/batches'])}/{per_epoch}",
            "epoch_s": epoch["time/epoch_s"] * per_epoch / max(1, int(epoch["time/batches"])),
            "val_s": epoch["time/val_s"], "val_queries": int(epoch.get("val/n_queries", 0)),
            "peak_gb": peak_rss_gb()}


def _run_stage(cfg_yaml: str, stage: str, out: str) -> None:
    """A stage in a fresh process, so that its peak resident memory is its own; the result as JSON in out."""
    register_resolvers()
    cfg = OmegaConf.create(cfg_yaml)
    result = measure_load(cfg) if stage == "load" else measure_training(cfg, stage)
    Path(out).write_text(json.dumps(result))


def fresh_process(target: Callable[..., None], args: tuple, out: Path) -> dict[str, Any]:
    """target(*args, str(out)) in a spawned process (its memory not inherited from this one, its peak its own); the
    JSON it wrote to out."""
    out.unlink(missing_ok=True)
    process = multiprocessing.get_context("spawn").Process(target=target, args=(*args, str(out)))
    process.start()
    process.join()
    if process.exitcode != 0 or not out.exists():
        raise RuntimeError(f"benchmark stage {out.stem} ({target.__name__}) failed (exit code {process.exitcode})")
    return json.loads(out.read_text())


def in_fresh_process(cfg: DictConfig, stage: str, folder: Path) -> dict[str, Any]:
    """_run_stage in a fresh process."""
    return fresh_process(_run_stage, (OmegaConf.to_yaml(cfg, resolve=True), stage), folder / f"stage-{stage}.json")


def print_rows(rows: list[dict[str, Any]]) -> None:
    """The stages' measurements, one row each."""
    print(" | ".join(f"{c:>12s}" for c in COLUMNS))
    for row in rows:
        print(" | ".join(f"{row.get(c, ''):>12}" if isinstance(row.get(c, ""), str) else f"{row[c]:>12.2f}"
                         for c in COLUMNS))


def bench_scale(cfg: DictConfig) -> dict[str, Any]:
    """Build (once) the synthetic library, then measure its first and cached load and, for each of
    bench.scale.runs, a training epoch in a fresh process; print the table and the closing `scale ...` line."""
    scale = cfg.bench.scale
    library = synthetic_library(scale, str(cfg.bench.weights))
    folder = Path(scale.dir)
    load = in_fresh_process(stage_config(cfg, library, []), "load", folder)
    print(f"first load: {load['records']} records ({load['kept']} kept) in {load['load_s']:.1f} s "
          f"({load['records_per_s']:.0f} records/s, {load['workers']} workers); cached load {load['cached_load_s']:.1f} s; "
          f"peak {load['peak_gb']:.2f} GB")
    rows = [load]
    for name, overrides in scale.runs.items():
        rows.append(in_fresh_process(stage_config(cfg, library, list(overrides)), str(name), folder))
        print(f"{name}: " + ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                                      for k, v in rows[-1].items() if k != "stage"))
    print(f"\nscale benchmark: {load['kept']} spectra of {library.name} (2-core timings unless run elsewhere); epoch_s "
          "is the full epoch's time extrapolated from `batches` run; val_s is one early-stopping validation "
          "(trainer.val_max_compounds); peak_gb is each stage's own process")
    print_rows(rows)
    epochs = {row["stage"]: row["epoch_s"] for row in rows[1:]}
    summary = {"n": load["kept"], "load_s": load["load_s"], "cached_load_s": load["cached_load_s"],
               **{f"epoch_s_{k}": v for k, v in epochs.items()}, "peak_gb": max(row["peak_gb"] for row in rows)}
    print("scale " + " ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))
    return summary
