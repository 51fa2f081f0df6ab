"""End-to-end prediction speed: molecules per second from a SMILES file to an MSP file."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig

from nextims.data.molecules import ChunkPreparer, prepared_chunks, read_molecules
from nextims.phases.common import load_data
from nextims.predict import compose_predict, model_weights, run_predict
from nextims.predictor import SpectrumPredictor
from nextims.training.runtime import set_threads, thread_count, worker_count

FEATURIZE = "featurize"
COLUMNS = ("name", "molecules", "seconds", "mol/s", "ms/mol", "of featurize", "vs teacher")


def write_smi(smiles: list[str], count: int, path: Path) -> Path:
    """A .smi file of `count` molecules named mol1.., cycling through smiles."""
    with path.open("w", encoding="utf-8") as out:
        for i, smi in enumerate(itertools.islice(itertools.cycle(smiles), count), 1):
            out.write(f"{smi} mol{i}\n")
    return path


def best_seconds(run: Callable[[], object], repeats: int) -> float:
    """The shortest wall time of `repeats` runs."""
    best = float("inf")
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def featurize_file(path: Path, prepare: ChunkPreparer, cfg: DictConfig) -> int:
    """Read a .smi file and prepare it in chunks as predict with cfg does (its workers), but with no model;
    returns the molecules kept."""
    chunks = prepared_chunks(read_molecules(str(path)), prepare, int(cfg.batch_size), worker_count(cfg.workers),
                             cfg.start_method)
    return sum(len(chunk.molecules) for chunk in chunks)


def featurize_preparer(cfg: DictConfig, base: DictConfig) -> ChunkPreparer:
    """The preparation the featurize row times: what `bench.speed.featurize_as` (a predict `model=` value) reads,
    its graphs left out (the fingerprint ceiling); the plain fingerprint when that model has no weights."""
    pcfg = base.copy()
    pcfg.model = str(cfg.bench.speed.featurize_as)
    try:
        predictor = SpectrumPredictor.load(model_weights(pcfg), "cpu")
    except FileNotFoundError:
        return ChunkPreparer(int(cfg.data.max_mz), int(base.max_heavy_atoms), int(cfg.featurizer.fp_bits),
                             int(cfg.featurizer.fp_radius))
    return dataclasses.replace(predictor.chunk_preparer(int(base.max_heavy_atoms)), graph_featurizer=None)


def predict_quietly(cfg: DictConfig, source: Path) -> None:
    """run_predict on a .smi file with its console report swallowed."""
    cfg.input = str(source)
    with contextlib.redirect_stdout(io.StringIO()):
        run_predict(cfg)


def bench_speed(cfg: DictConfig) -> list[dict[str, Any]]:
    """Time `python -m nextims.predict` (SMILES in, MSP out) for each configured model and the featurize
    ceiling (read + prepare + fingerprint, no model); print the table."""
    speed = cfg.bench.speed
    set_threads(cfg.trainer.num_threads)
    smiles = load_data(cfg).compound_smiles
    count, repeats = int(speed.molecules), int(speed.repeats)
    base = compose_predict(["progress=false", f"device={speed.device}", *speed.predict_overrides])
    base.paths.weights_dir = str(cfg.bench.weights)
    if cfg.trainer.num_threads:
        base.num_threads = int(cfg.trainer.num_threads)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="nextims-speed-") as tmp:
        source = write_smi(smiles, count, Path(tmp) / "molecules.smi")
        warmup = write_smi(smiles[: int(speed.warmup)], min(int(speed.warmup), count), Path(tmp) / "warmup.smi")
        base.output = str(Path(tmp) / "predicted.msp")
        for model in speed.models:
            pcfg = base.copy()
            pcfg.model = str(model)
            name = Path(str(model)).stem
            try:
                model_weights(pcfg)
            except FileNotFoundError:
                rows.append({"name": name, "molecules": count, "seconds": None})
                continue
            predict_quietly(pcfg, warmup)
            rows.append({"name": name, "molecules": count,
                         "seconds": best_seconds(lambda: predict_quietly(pcfg, source), repeats)})
        prepare = featurize_preparer(cfg, base)
        featurize_file(warmup, prepare, base)
        rows.append({"name": FEATURIZE, "molecules": count,
                     "seconds": best_seconds(lambda: featurize_file(source, prepare, base), repeats)})
    print_speed_table(rows, cfg, base, len(smiles), prepare.sites)
    return rows


def print_speed_table(rows: list[dict[str, Any]], cfg: DictConfig, predict_cfg: DictConfig, compounds: int,
                      sites: bool = False) -> None:
    """The table (filling in the derived columns of rows; seconds None = missing weights) and the summary line."""
    timed = {r["name"]: r["seconds"] for r in rows if r["seconds"] is not None}
    for r in rows:
        if r["name"] in timed:
            r["mol/s"] = r["molecules"] / r["seconds"]
            r["ms/mol"] = 1000.0 * r["seconds"] / r["molecules"]
            r["of featurize"] = timed[FEATURIZE] / r["seconds"]
            r["vs teacher"] = timed["teacher"] / r["seconds"] if "teacher" in timed else "-"
    speed = cfg.bench.speed
    workers = worker_count(predict_cfg.workers)
    threads = thread_count(predict_cfg.num_threads, workers) or torch.get_num_threads()
    print(f"\nspeed benchmark: {speed.molecules} molecules ({compounds} compounds of data={cfg.data.name}, cycled), "
          f"SMILES file -> MSP file, device={speed.device}, workers={workers}, model threads={threads}, "
          f"batch={predict_cfg.batch_size}, best of {speed.repeats}; {FEATURIZE} = read + prepare + the inputs "
          f"{speed.featurize_as} reads, no graphs (fingerprint{' + cleavage sites' if sites else ''}; same workers), "
          f"no model")
    width = max(len(str(r["name"])) for r in rows)
    print(" | ".join(f"{c:>{width if c == 'name' else 12}s}" for c in COLUMNS))
    for r in rows:
        cells = [f"{r['name']:>{width}s}", f"{r['molecules']:>12d}"]
        if "mol/s" in r:
            vs = r["vs teacher"]
            cells += [f"{r['seconds']:>12.2f}", f"{r['mol/s']:>12.0f}", f"{r['ms/mol']:>12.3f}",
                      f"{r['of featurize']:>12.1%}", f"{vs:>11.2f}x" if isinstance(vs, float) else f"{vs:>12s}"]
        else:
            cells.append(f"{'missing':>12s}")
        print(" | ".join(cells))
    print("speed " + " ".join(f"{r['name']}={round(r['mol/s']) if 'mol/s' in r else 'missing'}" for r in rows))
