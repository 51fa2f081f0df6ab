"""Soft labels of the transfer set: the teacher's predicted spectra of unlabelled molecules (conf `transfer`), built
shard by shard into `<cache_dir>/transfer-<key>/`, so an interrupted build resumes losing at most one shard.

The key covers the teacher's weights, the source files' content, the excluded (validation and test) compounds,
the student's inputs (fingerprint, cleavage sites), the m/z range and the sharding, so any change rebuilds.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

from nextims.data.cache import atomic_h5, cache_is_valid, content_hash, file_sha256
from nextims.data.featurize import FEATURE_VERSION
from nextims.data.molecules import PREPARE_VERSION, prepared_chunks
from nextims.data.sites import SITES_VERSION
from nextims.data.transfer import TransferSet, read_smiles_lines, write_shard
from nextims.errors import DropReport
from nextims.models.weights import weights_digest
from nextims.phases.common import SpectrumContext
from nextims.phases.soft_labels import teacher_weights
from nextims.predictor import SpectrumPredictor
from nextims.training.runtime import thread_count, torch_threads, worker_count

TRANSFER_VERSION = 1
# molecules per chunk handed to a preparation worker (divides the shard sizes one would choose)
CHUNK = 500


def transfer_sources(cfg: DictConfig) -> list[Path]:
    """The configured SMILES files; FileNotFoundError naming a missing one."""
    sources = [Path(str(p)) for p in cfg.transfer.sources]
    for path in sources:
        if not path.exists():
            raise FileNotFoundError(f"transfer.sources: no file {path}")
    return sources


def excluded_keys(ctx: SpectrumContext, splits: tuple[str, ...] = ("val", "test")) -> set[str]:
    """Compound keys (InChIKey first block) of the splits no transfer molecule may be."""
    return {str(ctx.data.compound_keys[i]) for i in ctx.data.compound_indices(splits)}


def transfer_key(cfg: DictConfig, teacher: Path, sources: list[Path], excluded: set[str]) -> str:
    """The cache key of the transfer set's soft labels."""
    t = cfg.transfer
    return content_hash("transfer", TRANSFER_VERSION, weights_digest(teacher), [file_sha256(p) for p in sources],
                        sorted(excluded), int(cfg.featurizer.fp_bits), int(cfg.featurizer.fp_radius), SITES_VERSION,
                        FEATURE_VERSION, int(cfg.data.max_mz), int(t.shard_size), t.get("limit"),
                        int(t.max_heavy_atoms), PREPARE_VERSION)


def _teacher(cfg: DictConfig, path: Path) -> SpectrumPredictor:
    """The teacher, checked to read the fingerprint the student is configured with."""
    teacher = SpectrumPredictor.load(path, str(cfg.trainer.device))
    if (teacher.n_bits, teacher.radius) != (int(cfg.featurizer.fp_bits), int(cfg.featurizer.fp_radius)):
        raise ValueError(f"teacher {path} reads {teacher.n_bits}-bit radius-{teacher.radius} fingerprints, the student "
                         f"{cfg.featurizer.fp_bits}-bit radius-{cfg.featurizer.fp_radius}: use the same featurizer")
    if teacher.max_mz != int(cfg.data.max_mz):
        raise ValueError(f"teacher {path} predicts m/z up to {teacher.max_mz}, data.max_mz is {cfg.data.max_mz}")
    return teacher


def build_shard(path: Path, key: str, items: list, teacher: SpectrumPredictor, excluded: set[str],
                t: DictConfig, progress: tqdm | None = None) -> Counter:
    """Prepare, filter and predict one shard's molecules; write them atomically; returns its counts by reason
    (`kept` for the written ones). progress advances by each chunk's molecules."""
    workers = worker_count(t.workers)
    preparer = dataclasses.replace(teacher.chunk_preparer(int(t.max_heavy_atoms)), sites=True)
    counts: Counter = Counter()
    chunks, keep, soft = [], [], []
    with torch_threads(thread_count("auto", workers)):
        for chunk in prepared_chunks(items, preparer, CHUNK, workers, t.get("start_method")):
            counts.update(reason for _, reason, _ in chunk.failures)
            mask = np.array([m.inchikey[:14] not in excluded for m in chunk.molecules], dtype=bool)
            counts["in_validation_or_test"] += int((~mask).sum())
            if mask.any():
                chunks.append(chunk)
                keep.append(mask)
                soft.append(teacher.predict_features(chunk)[mask])
            if progress is not None:
                progress.update(chunk.size)
    with atomic_h5(path, key, format_version=TRANSFER_VERSION) as f:
        counts["kept"] = write_shard(f, chunks, keep, soft) if chunks else 0
        f.attrs["counts"] = json.dumps(dict(counts))
    return counts


def _shard_counts(path: Path) -> Counter:
    """A written shard's counts by reason (`kept` included)."""
    with h5py.File(path, "r") as f:
        return Counter(json.loads(f.attrs["counts"]))


def ensure_transfer_set(cfg: DictConfig, ctx: SpectrumContext, tracker: Any = None) -> TransferSet | None:
    """The transfer set with the teacher's soft labels (None when `transfer.sources` is empty), built or resumed."""
    t = cfg.get("transfer")
    if not t or not t.get("sources"):
        return None
    sources, path = transfer_sources(cfg), teacher_weights(cfg)
    excluded = excluded_keys(ctx)
    key = transfer_key(cfg, path, sources, excluded)
    folder = Path(cfg.paths.cache_dir) / f"transfer-{key[:16]}"
    size, limit = int(t.shard_size), t.get("limit")
    total = sum(1 for _ in itertools.islice(read_smiles_lines(sources), limit))
    n_shards = -(-total // size)
    shards = [folder / f"shard-{i:05d}.h5" for i in range(n_shards)]
    valid = [cache_is_valid(p, f"{key}:{i}", TRANSFER_VERSION) for i, p in enumerate(shards)]
    report = DropReport("transfer set")
    if not all(valid):
        teacher = _teacher(cfg, path)
        start = time.perf_counter()
        progress = tqdm(total=total, initial=sum(valid[i] * min(size, total - i * size) for i in range(n_shards)),
                        unit="mol", desc="transfer soft labels", disable=not t.get("progress", True))
        stream = itertools.islice(read_smiles_lines(sources), limit)
        for i, shard in enumerate(shards):
            items = list(itertools.islice(stream, size))
            if valid[i]:
                continue
            build_shard(shard, f"{key}:{i}", items, teacher, excluded, t, progress)
        progress.close()
        print(f"built transfer soft labels for {total} molecules in {time.perf_counter() - start:.0f} s: {folder}")
    for shard in shards:
        counts = _shard_counts(shard)
        report.keep(counts.pop("kept", 0))
        for reason, n in counts.items():
            report.dropped[reason] += n
    print(report.format())
    transfer = TransferSet.load(shards, int(cfg.featurizer.fp_bits), key)
    if tracker is not None:
        tracker.log_dict({"folder": str(folder), "key": key, "teacher": str(path), "sources": [str(s) for s in sources],
                          "report": report.to_dict()}, "transfer_set.json")
    return transfer
