"""Benchmarks: `python -m nextims.bench {spectra,bde,speed,scale,search,fragments} [hydra overrides]`."""

from __future__ import annotations

import logging
import sys
import time
from typing import Callable

import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from nextims.config import build, conf_dir, register_resolvers
from nextims.evaluation.bootstrap import compound_weights, error_ratio_interval, recall_interval
from nextims.evaluation.novelty import compound_classes, max_similarity
from nextims.evaluation.split_eval import LIBRARY_SPLITS, SplitScores, score_split
from nextims.models.weights import shipped_weights
from nextims.phases.bde import bench_bde
from nextims.phases.common import SpectrumContext, load_context
from nextims.phases.spectrum import saved_predictor, train_knn
from nextims.fragment_coverage import bench_fragments
from nextims.scale import bench_scale
from nextims.search_bench import bench_search
from nextims.speed import bench_speed
from nextims.training.runtime import seed_everything, set_threads

COLUMNS = ("model", "R@1", "R@5", "R@10", "R@10 ±5Da", "cosine", "WDP", "pred/s")


def timed(predict: Callable[[np.ndarray], np.ndarray], idx: np.ndarray, repeats: int) -> float:
    """Predictions per second (best of `repeats`), features precomputed."""
    best = np.inf
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        predict(idx)
        best = min(best, time.perf_counter() - start)
    return len(idx) / best


def spectrum_predictors(cfg: DictConfig, ctx: SpectrumContext) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Every shipped spectrum model (weights folder), plus the reference models fitted on the spot."""
    predictors = {path.stem: saved_predictor(path, cfg, ctx) for path in shipped_weights(cfg.bench.weights, "spectrum")}
    for name in cfg.bench.reference_models:
        predictors[name] = train_knn(build(OmegaConf.load(conf_dir() / "model" / f"{name}.yaml")), ctx)
    return predictors


def uncertainty_lines(scores: dict[str, SplitScores], boot: DictConfig) -> list[str]:
    """Each model's recall@k with its bootstrap interval over compounds and, given a reference model in the table,
    its top-k error relative to the reference's (paired resamples)."""
    k, level = int(boot.k), float(boot.level)
    first = next(iter(scores.values()))
    weights = compound_weights(first.query_compounds, int(boot.resamples), int(boot.seed))
    hits = {name: s.ranks <= k for name, s in scores.items()}
    pct = f"{100 * level:g}%"
    lines = [f"recall@{k} with its {pct} interval ({int(boot.resamples)} bootstrap resamples of the "
             f"{len(np.unique(first.query_compounds))} compounds):"]
    lines += [f"  {name}: {recall_interval(h, weights, level).format()}" for name, h in hits.items()]
    reference = boot.get("reference")
    if reference is None:
        return lines
    if reference not in hits:
        return lines + [f"no top-{k} error ratios: the reference model {reference!r} is not in the table"]
    lines.append(f"top-{k} error (1 - recall@{k}) relative to {reference}'s, with its {pct} interval (paired):")
    lines += [f"  {name}: {error_ratio_interval(h, hits[reference], weights, level).format(2)}x"
              for name, h in hits.items() if name != reference]
    return lines


def table_rows(scores: dict[str, SplitScores], split: str, speed: dict[str, float] | None = None) -> list[dict[str, float | str]]:
    """One row of COLUMNS per model (pred/s only when speed is given)."""
    rows = []
    for name, sc in scores.items():
        m = sc.metrics
        rows.append({"model": name, "R@1": m[f"{split}/recall@1"], "R@5": m[f"{split}/recall@5"],
                     "R@10": m[f"{split}/recall@10"], "R@10 ±5Da": m[f"{split}/recall@10_mass5"],
                     "cosine": m[f"{split}/cosine"], "WDP": m[f"{split}/wdp"],
                     **({"pred/s": speed[name]} if speed else {})})
    return rows


def print_table(rows: list[dict[str, float | str]]) -> None:
    """The rows under a header of the columns they have."""
    columns = [c for c in COLUMNS if c in rows[0]]
    width = max(len(str(r["model"])) for r in rows)
    print(" | ".join(f"{c:>{width if c == 'model' else 10}s}" for c in columns))
    for r in rows:
        print(" | ".join(f"{r[c]:>{width}s}" if c == "model" else f"{r[c]:>10.0f}" if c == "pred/s"
                         else f"{r[c]:>10.4f}" for c in columns))


def novel_mask(cfg: DictConfig, ctx: SpectrumContext, scores: SplitScores) -> tuple[np.ndarray, np.ndarray]:
    """Per query, whether its compound is novel (highest Tanimoto to any training compound below
    bench.novel.threshold), and each evaluated compound's highest similarity."""
    novel = cfg.bench.novel
    train = ctx.data.compound_indices("train")
    compounds = np.unique(scores.query_compounds)
    similarity = max_similarity([ctx.data.compound_smiles[i] for i in compounds],
                                [ctx.data.compound_smiles[i] for i in train],
                                int(novel.radius), int(novel.n_bits))
    is_novel = np.zeros(len(ctx.data.compound_keys), dtype=bool)
    is_novel[compounds[similarity < float(novel.threshold)]] = True
    return is_novel[scores.query_compounds], similarity


def class_lines(ctx: SpectrumContext, scores: dict[str, SplitScores], novel: np.ndarray, k: int = 10) -> list[str]:
    """Recall@k and mean cosine per chemical class (all queries and the novel ones), with the class's size."""
    first = next(iter(scores.values()))
    smiles = [ctx.data.compound_smiles[i] for i in first.query_compounds]
    classes = compound_classes(smiles)
    metrics = {f"recall@{k}": lambda sc, mask: np.mean(sc.ranks[mask] <= k),
               "cosine": lambda sc, mask: np.mean(sc.similarities["cosine"][mask])}
    lines = []
    for metric, value in metrics.items():
        lines.append(f"per class, {metric} (all queries | novel queries):")
        for name, member in classes.items():
            parts = []
            for label, mask in (("all", member), ("novel", member & novel)):
                n_c = len(np.unique(first.query_compounds[mask]))
                values = " ".join(f"{m}={value(sc, mask):.3f}" for m, sc in scores.items()) if mask.any() else "-"
                parts.append(f"{label} ({n_c} compounds, {int(mask.sum())} queries): {values}")
            lines.append(f"  {name}: " + " | ".join(parts))
    return lines


def bench_spectra(cfg: DictConfig) -> list[dict[str, float | str]]:
    """Evaluate every model on the split and print the tables (all queries, the novel subset, per class), with
    bootstrap intervals; the last two lines give every model's recall@10 on all queries and on the novel ones."""
    seed_everything(int(cfg.seed))
    set_threads(cfg.trainer.num_threads)
    ctx = load_context(cfg)
    split = str(cfg.bench.split)
    idx = ctx.data.compound_indices(split)
    scores, speed = {}, {}
    for name, predict in spectrum_predictors(cfg, ctx).items():
        scores[name] = score_split(ctx.data, predict, split)
        speed[name] = timed(predict, idx, int(cfg.bench.timing_repeats))
    rows = table_rows(scores, split, speed)
    counts = ctx.data.summary()["split_counts"]
    listed = ctx.data.report.listed.get("peak_above_molecular_ion", [])
    print(f"\nspectra benchmark: data={cfg.data.name} split={split} ({counts.get(split)}), "
          f"library = one observed spectrum per {'+'.join(LIBRARY_SPLITS[split])} compound + one predicted per "
          f"{split} compound; {len(listed)} records dropped as peak_above_molecular_ion (listed in the dataset report)")
    print_table(rows)
    novel, similarity = novel_mask(cfg, ctx, next(iter(scores.values())))
    novel_scores = {name: sc.subset(novel) for name, sc in scores.items()}
    n_compounds, n_queries = int((similarity < float(cfg.bench.novel.threshold)).sum()), int(novel.sum())
    print(f"\nnovel subset: {split} compounds whose most similar training compound has Tanimoto < "
          f"{cfg.bench.novel.threshold:g} (binary Morgan, radius {cfg.bench.novel.radius}, {cfg.bench.novel.n_bits} "
          f"bits): {n_compounds} compounds, {n_queries} queries; the library is the same")
    if n_queries:
        print_table(table_rows(novel_scores, split))
    print("\n".join(class_lines(ctx, scores, novel)))
    if scores:
        print("\n".join(uncertainty_lines(scores, cfg.bench.bootstrap)))
        if n_queries:
            print("novel subset:")
            print("\n".join(uncertainty_lines(novel_scores, cfg.bench.bootstrap)))
    print("recall@10 " + " ".join(f"{r['model']}={r['R@10']:.4f}" for r in rows))
    print("novel recall@10 " + " ".join(f"{name}={np.mean(sc.ranks <= 10) if n_queries else float('nan'):.4f}"
                                        for name, sc in novel_scores.items())
          + f" compounds={n_compounds} queries={n_queries}")
    return rows


BENCHMARKS = {"spectra": bench_spectra, "bde": bench_bde, "speed": bench_speed, "scale": bench_scale,
              "search": bench_search, "fragments": bench_fragments}


def main(argv: list[str] | None = None) -> None:
    """`python -m nextims.bench <name> [overrides]`."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in BENCHMARKS:
        raise SystemExit(f"usage: python -m nextims.bench {{{','.join(BENCHMARKS)}}} [hydra overrides]")
    register_resolvers()
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the phases' reports (dataset, BDE table)
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose("bench", overrides=argv[1:])
    BENCHMARKS[argv[0]](cfg)


if __name__ == "__main__":
    main()
