"""Spectrum phases `baseline`, `teacher` and `student`: train a spectrum model, evaluate it on val and test, save it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from nextims import __version__
from nextims.config import build
from nextims.data.cache import content_hash
from nextims.evaluation.plots import close, mirror_plot
from nextims.evaluation.split_eval import evaluate_split
from nextims.losses import DistillationLoss, MultitaskTeacherLoss, spectrum_loss
from nextims.models.knn import TanimotoKNN
from nextims.models.weights import check_compatible, load_model, save_weights
from nextims.phases.common import (SpectrumContext, checkpoint_dir, export_path, export_precision, file_names,
                                   load_context, output_dir, report_export, tracked_run, write_metrics)
from nextims.training.batches import SpectrumBatches, epoch_batch_count, mixed_epoch, predict_intensities
from nextims.training.loop import fit
from nextims.training.distributed import is_main
from nextims.training.runtime import seed_everything, select_device, set_threads

DATA_LICENCES = {"massbank_ei": "CC BY-NC-SA 4.0 (the most restrictive licence of the MassBank records it was "
                                "trained on; attribution: the MassBank consortium and each record's contributors)"}
Predictor = Callable[[np.ndarray], np.ndarray]


def saved_predictor(path: Path, cfg: DictConfig, ctx: SpectrumContext) -> Predictor:
    """Predictions of saved weights, after checking they match the configured features and m/z range."""
    device = select_device(cfg.trainer.device)
    model, card = load_model(path, device)
    check_compatible(card, OmegaConf.to_container(cfg.featurizer, resolve=True), int(cfg.data.max_mz), path)
    batches = SpectrumBatches.for_model(model, ctx.data, ctx.features, device)
    return lambda idx: predict_intensities(model, batches, idx)


def train_knn(model: TanimotoKNN, ctx: SpectrumContext) -> Predictor:
    """Fit k-NN on the training compounds' representative spectra."""
    train = ctx.data.compound_indices("train")
    rep = ctx.data.representative_records()
    model.fit(ctx.fingerprints.dense(train), ctx.data.spectra[rep[train]])
    return lambda idx: model.predict(ctx.fingerprints.dense(idx))


def build_loss(cfg: DictConfig, model: torch.nn.Module) -> torch.nn.Module:
    """The configured loss: distillation for the student (and any model with a balance term), else the spectrum
    term plus the BDE term for models with a BDE head."""
    spectrum_cfg = OmegaConf.to_container(cfg.loss.spectrum, resolve=True)
    spectrum = spectrum_loss(spectrum_cfg.pop("name"), **spectrum_cfg)
    if cfg.phase.get("distill") or hasattr(model, "balance_loss"):
        return DistillationLoss(lambda_spectrum=float(cfg.loss.lambda_spectrum), lambda_soft=float(cfg.loss.lambda_soft),
                                lambda_balance=float(cfg.loss.lambda_balance), spectrum=spectrum)
    return MultitaskTeacherLoss(lambda_spectrum=float(cfg.loss.lambda_spectrum), lambda_bde=float(cfg.loss.lambda_bde),
                                spectrum=spectrum, bde_scale=float(cfg.loss.bde_scale))


def loss_step_for(loss_fn: torch.nn.Module) -> Callable[[torch.nn.Module, dict[str, Any]], tuple[torch.Tensor, dict[str, float]]]:
    """One training step's loss for the batch's targets: multitask with `bde`, distillation with a balance term
    or `soft` labels, else the spectrum loss alone."""

    def loss_step(m: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        if "bde" in batch:
            spectrum, predicted_bde = m(batch, with_bde=True)
            return loss_fn(predicted_spectrum=spectrum, target_spectrum=batch["target"],
                           predicted_bde=predicted_bde, target_bde=batch["bde"])
        spectrum = m(batch)
        if isinstance(loss_fn, DistillationLoss):
            return loss_fn(predicted_spectrum=spectrum, target_spectrum=batch.get("target"),
                           teacher_spectrum=batch.get("soft"), balance_loss=getattr(getattr(m, "module", m), "balance_loss", None))
        return loss_fn(predicted_spectrum=spectrum, target_spectrum=batch["target"])

    return loss_step


def train_network(model: torch.nn.Module, ctx: SpectrumContext, cfg: DictConfig, tracker: Any,
                  bde: list[np.ndarray] | None = None, soft: np.ndarray | None = None, run_key: str = "",
                  transfer: Any = None) -> Predictor:
    """Train a neural spectrum model with the shared loop (multitask with bde targets, distillation with soft labels
    and, given a transfer set, the teacher's predictions for its molecules)."""
    device = select_device(cfg.trainer.device)
    model.to(device)
    batches = SpectrumBatches.for_model(model, ctx.data, ctx.features, device, bde=bde, soft=soft)
    train_records = ctx.data.record_indices("train")

    def predictor(m: torch.nn.Module) -> Predictor:
        return lambda idx: predict_intensities(m, batches, idx)

    per_epoch = int(cfg.transfer.per_epoch) if transfer is not None else 0
    transfer_batch = int(cfg.transfer.get("batch_size") or 0) if transfer is not None else 0
    fit(model, loss_step_for(build_loss(cfg, model)),
        epoch_batches=lambda epoch: mixed_epoch(batches, train_records, int(cfg.trainer.batch_size), int(cfg.seed),
                                                epoch, transfer, per_epoch, transfer_batch),
        validate=lambda m: evaluate_split(ctx.data, predictor(m), "val",
                                          max_compounds=cfg.trainer.get("val_max_compounds")),
        cfg=OmegaConf.to_container(cfg.trainer, resolve=True), ckpt_dir=checkpoint_dir(cfg, extra=run_key),
        data_key=ctx.data.content_key(),
        log=lambda metrics, step: tracker.log_metrics(metrics, step),
        batches_per_epoch=epoch_batch_count(len(train_records), int(cfg.trainer.batch_size),
                                            len(transfer) if transfer is not None else 0, per_epoch, transfer_batch))
    return predictor(model)


def bde_targets(cfg: DictConfig, ctx: SpectrumContext, tracker: Any) -> list[np.ndarray]:
    """Per compound, the cached BDE (kcal/mol) of each bond of its graph; NaN where flagged (out of domain)."""
    from nextims.phases.bde_cache import BDECache, ensure_cache

    cache = BDECache(ensure_cache(cfg, tracker, ctx.data))
    out = []
    for i, key in enumerate(ctx.data.compound_keys):
        n_bonds = int(ctx.features.edge_offsets[i + 1] - ctx.features.edge_offsets[i]) // 2  # edges: both ways
        values, flagged = cache.bonds(str(key))
        values = np.asarray(values[:n_bonds], dtype=np.float32).copy()
        values[np.asarray(flagged[:n_bonds], dtype=bool)] = np.nan
        out.append(values)
    return out


def log_mirror_plots(ctx: SpectrumContext, predict: Predictor, tracker: Any) -> None:
    """Mirror plots (predicted under observed) of the first few validation compounds."""
    n = int(getattr(tracker, "mirror_plots", 0))
    compounds = ctx.data.compound_indices("val")[:n]
    if not len(compounds):
        return
    predicted = predict(compounds)
    rep = ctx.data.representative_records()
    for c, p in zip(compounds, predicted):
        record = ctx.data.records[rep[c]]
        fig = mirror_plot(ctx.data.spectra[rep[c]], p, f"{record.id}  {record.smiles}")
        tracker.log_figure(fig, f"mirror/{record.key}.png")
        close(fig)


def export(model: torch.nn.Module, card: dict[str, Any], cfg: DictConfig) -> Path:
    """Export the weights (in `export_precision`, to export_path) and their card, with licence and the command that
    made them."""
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    card = {**card, "name": cfg.export_name, "licence": DATA_LICENCES.get(str(cfg.data.name), "see the training data"),
            "command": " ".join(["python -m nextims.train", *overrides]), "nextims_version": __version__,
            "torch_version": torch.__version__}
    path = save_weights(model, export_path(cfg), card, export_precision(cfg))
    report_export(cfg, path)
    return path


def model_card(cfg: DictConfig, ctx: SpectrumContext, metrics: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The card saved beside a spectrum model: how to rebuild it, its features, data, split and metrics."""
    return {"model": OmegaConf.to_container(cfg.model, resolve=True),
            "featurizer": OmegaConf.to_container(cfg.featurizer, resolve=True),
            "data": {"name": cfg.data.name, "max_mz": int(cfg.data.max_mz),
                     "split": file_names(OmegaConf.to_container(cfg.data.split, resolve=True)),
                     "counts": ctx.data.summary()["split_counts"]},
            "metrics": metrics, "task": "spectrum", **extra}


def finish_run(cfg: DictConfig, ctx: SpectrumContext, model: Any, predict: Predictor, tracker: Any,
               extra_card: dict[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate on val (and on test only when `evaluate_test` asks: model choices are made on validation; the test
    split is read by `phase=evaluate` and `bench`), save the model and its card in the run folder (and export it),
    log the metrics."""
    metrics = evaluate_split(ctx.data, predict, "val")
    if cfg.get("evaluate_test"):
        metrics.update(evaluate_split(ctx.data, predict, "test"))
    if isinstance(model, torch.nn.Module):
        card = model_card(cfg, ctx, metrics, **(extra_card or {}))
        save_weights(model, output_dir(cfg) / "model", card)
        if cfg.get("export_name"):
            export(model, card, cfg)
    log_mirror_plots(ctx, predict, tracker)
    write_metrics(cfg, metrics, tracker)
    return metrics


def log_dataset(ctx: SpectrumContext, tracker: Any) -> None:
    """Log the dataset report (what was kept and what was dropped, by reason)."""
    tracker.log_dict(ctx.data.summary(), "dataset_report.json")
    tracker.log_text(ctx.data.report.format(), "dataset_report.txt")
    tracker.log_metrics({"data/kept": ctx.data.report.kept,
                         **{f"data/dropped/{k}": v for k, v in ctx.data.report.dropped.items()}})


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train, evaluate (val; test with `evaluate_test`), save weights and a model card in the run folder.

    With `ensemble_size` above 1, trains that many members (seeds seed, seed+1, ...) and saves their ensemble.
    """
    size = cfg.get("ensemble_size", 1)
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"ensemble_size must be a whole number >= 1 (1: one model), got {size!r}")
    export_precision(cfg)  # refuse a bad setting before training, not after
    if size > 1:
        from nextims.phases.ensemble import run_ensemble

        return run_ensemble(cfg)
    seed_everything(int(cfg.seed))
    set_threads(cfg.trainer.num_threads)
    ctx = load_context(cfg)
    with tracked_run(cfg) as tracker:
        log_dataset(ctx, tracker)
        model = build(cfg.model)
        extra_card: dict[str, Any] = {}
        if isinstance(model, TanimotoKNN):
            predict = train_knn(model, ctx)
        else:
            bde = bde_targets(cfg, ctx, tracker) if cfg.phase.get("bde_targets") else None
            soft, soft_key, transfer = None, "", None
            if cfg.phase.get("distill"):
                from nextims.phases.soft_labels import ensure_soft_labels, teacher_weights
                from nextims.phases.transfer_labels import ensure_transfer_set

                soft, soft_key = ensure_soft_labels(cfg, ctx, tracker)
                transfer = ensure_transfer_set(cfg, ctx, tracker)
                extra_card["teacher"] = {"weights": teacher_weights(cfg).name, "soft_labels_key": soft_key,
                                         "transfer_molecules": len(transfer) if transfer is not None else 0}
                if transfer is not None:
                    soft_key = content_hash(soft_key, transfer.key, int(cfg.transfer.per_epoch),
                                            cfg.transfer.get("batch_size"))
            predict = train_network(model, ctx, cfg, tracker, bde, soft, run_key=soft_key, transfer=transfer)
        if not is_main():
            return {}
        return finish_run(cfg, ctx, model, predict, tracker, extra_card)
