"""Phase `bde`: train the BonDNet-style BDE model on a BDE-db2-format table, evaluate it, save and ship it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from nextims import __version__
from nextims.config import build
from nextims.data.bde_dataset import BDEDataset, HeldOutSet, load_bde_table, load_heldout_sets
from nextims.data.bde_graphs import BDE_FEATURIZER, featurizer_signature
from nextims.data.featurize import ELEMENTS
from nextims.evaluation.bde_metrics import evaluate_molecules
from nextims.models.bondnet import BondNet, load_bondnet
from nextims.models.weights import save_weights, shipped_weights
from nextims.phases.common import (checkpoint_dir, export_path, export_precision, output_dir, report_export,
                                   tracked_run, write_metrics)
from nextims.training.distributed import is_main
from nextims.training.loop import fit
from nextims.training.runtime import seed_everything, select_device, set_threads

# The config entries that define a BDE training run (its checkpoint folder).
RUN_DEFINING = ("seed", "phase", "bde_data", "model", "trainer")
SPLITS = ("train", "val", "test")

log = logging.getLogger(__name__)


def load_data(cfg: DictConfig) -> tuple[BDEDataset, list[HeldOutSet]]:
    """The BDE table (validated, featurized, split; cached) and its held-out sets; logs the reports."""
    spec = OmegaConf.to_container(cfg.bde_data, resolve=True)
    data = load_bde_table(spec, cfg.paths.cache_dir)
    log.info(data.report.format())
    counts = {s: int(np.count_nonzero(data.split == s)) for s in (*SPLITS, "unused")}
    if not counts["unused"]:
        del counts["unused"]  # only under bde_data.train_fraction < 1
    log.info(f"BDE molecules: {len(data)} ({', '.join(f'{s} {n}' for s, n in counts.items())}); "
             f"{data.meta.get('propagated_bonds', 0)} bonds took the value of a symmetry-equivalent bond")
    heldout = load_heldout_sets(spec, cfg.paths.cache_dir, data)
    for h in heldout:
        log.info(f"held-out {h.name}: {len(h.molecules)} molecules"
                 + (f" ({h.excluded} left out: in the training table)" if h.excluded else ""))
    return data, heldout


def check_model(model: BondNet) -> None:
    """ValueError when the model's input sizes do not match the BDE featurizer."""
    if (model.atom_dim, model.bond_dim) != (BDE_FEATURIZER.atom_dim, BDE_FEATURIZER.bond_dim):
        raise ValueError(f"model.atom_dim/bond_dim are {model.atom_dim}/{model.bond_dim}, the featurizer gives "
                         f"{BDE_FEATURIZER.atom_dim}/{BDE_FEATURIZER.bond_dim}: set them in conf/model/bondnet.yaml")


def fit_domain(model: BondNet, data: BDEDataset, train: np.ndarray) -> None:
    """Set the model's target standardisation and known elements/bond types from the training molecules."""
    rows = data.graphs.bond_rows(train)
    targets = data.targets[rows]
    has = np.isfinite(targets[:, 0])
    model.set_normalisation(targets[has])
    model.set_domain(data.graphs.elements[data.graphs.atom_rows(train)], data.graphs.bond_type[rows][has])


def masked_loss(model: torch.nn.Module, batch: dict[str, Any], kind: str, bdfe_weight: float) -> torch.Tensor:
    """MSE or L1, in standardised units, over the bonds with a target (BDFE weighted by bdfe_weight).

    `model` may be the BondNet or its DistributedDataParallel wrapper.
    """
    std = getattr(model, "module", model).target_std
    predicted = model(batch)
    target = batch["target"]
    mask = torch.isfinite(target).float() * predicted.new_tensor([1.0, bdfe_weight])
    diff = (predicted - torch.nan_to_num(target)) / std
    per_bond = diff.pow(2) if kind == "mse" else diff.abs()
    return (per_bond * mask).sum() / mask.sum().clamp(min=1.0)


def epoch_batches(data: BDEDataset, molecules: np.ndarray, batch_size: int, seed: int,
                  device: torch.device) -> Iterator[dict[str, Any]]:
    """Shuffled batches of molecules with their per-bond targets; the order depends only on the seed."""
    order = np.random.default_rng(seed).permutation(molecules)
    for s in range(0, len(order), batch_size):
        batch = data.graphs.batch(order[s:s + batch_size], device)
        batch["target"] = torch.from_numpy(data.targets[batch["bond_rows"]]).to(device)
        yield batch


def evaluate_all(model: BondNet, data: BDEDataset, heldout: list[HeldOutSet], splits: tuple[str, ...],
                 batch_size: int, device: torch.device) -> dict[str, float]:
    """Errors on the table's splits and on every held-out set (by bond type)."""
    metrics: dict[str, float] = {}
    for split in splits:
        metrics.update(evaluate_molecules(model, data, data.molecules(split), split, True, batch_size, device))
    for h in heldout:
        metrics.update(evaluate_molecules(model, h.data, h.molecules, h.name, True, batch_size, device))
        metrics[f"{h.name}/excluded_molecules"] = float(h.excluded)
    return metrics


def train_bondnet(model: BondNet, data: BDEDataset, cfg: DictConfig, tracker: Any, device: torch.device) -> None:
    """Fit the model with the shared loop; early stopping on validation MAE; resumes from the last checkpoint."""
    train = data.molecules("train")
    if not len(train) or not len(data.molecules("val")):
        raise ValueError("the BDE table needs training and validation molecules with BDEs")
    fit_domain(model, data, train)
    model.to(device)
    kind, bdfe_weight = str(cfg.phase.loss), float(cfg.phase.bdfe_weight)
    batch_size, eval_batch = int(cfg.trainer.batch_size), int(cfg.phase.eval_batch_size)

    def loss_step(m: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        loss = masked_loss(m, batch, kind, bdfe_weight)
        return loss, {"loss": loss.item()}

    fit(model, loss_step,
        epoch_batches=lambda epoch: epoch_batches(data, train, batch_size, int(cfg.seed) * 100003 + epoch, device),
        validate=lambda m: evaluate_molecules(m, data, data.molecules("val"), "val", False, eval_batch, device),
        cfg=OmegaConf.to_container(cfg.trainer, resolve=True), ckpt_dir=checkpoint_dir(cfg, RUN_DEFINING),
        log=lambda metrics, step: tracker.log_metrics(metrics, step), batches_per_epoch=-(-len(train) // batch_size),
        data_key=data.content_key())


def model_card(model: BondNet, data: BDEDataset, cfg: DictConfig, metrics: dict[str, float]) -> dict[str, Any]:
    """What the saved weights are: model config, data, split, training config, metrics, domain."""
    known = model.known_elements.cpu().numpy()
    return {"task": "bde", "units": "kcal/mol", "outputs": ["bde", "bdfe"],
            "model": OmegaConf.to_container(cfg.model, resolve=True), "featurizer": featurizer_signature(),
            "data": {"name": cfg.bde_data.name, "source": data.meta.get("source"), "sha256": data.meta.get("sha256"),
                     "split": OmegaConf.to_container(cfg.bde_data.split, resolve=True),
                     "molecules": {s: int(len(data.molecules(s))) for s in SPLITS}},
            "trainer": OmegaConf.to_container(cfg.trainer, resolve=True),
            "loss": {"kind": str(cfg.phase.loss), "bdfe_weight": float(cfg.phase.bdfe_weight)},
            "domain": {"elements": [e for e, k in zip(ELEMENTS, known) if k],
                       "bond_types": int(model.known_bond_types.sum())},
            "metrics": metrics, "licence": str(cfg.bde_data.get("licence", "see the training data"))}


def export(model: BondNet, card: dict[str, Any], cfg: DictConfig) -> Path:
    """Export the weights (in `export_precision`, to export_path) and their card, with the command that made them."""
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    card = {**card, "name": cfg.export_name, "command": " ".join(["python -m nextims.train", *overrides]),
            "nextims_version": __version__, "torch_version": torch.__version__}
    path = save_weights(model, export_path(cfg), card, export_precision(cfg))
    report_export(cfg, path)
    return path


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train, evaluate (val, test, held-out sets), save weights and a model card in the run folder."""
    export_precision(cfg)  # refuse a bad setting before training, not after
    seed_everything(int(cfg.seed))
    set_threads(cfg.trainer.num_threads)
    data, heldout = load_data(cfg)
    with tracked_run(cfg, {"data": cfg.bde_data.name}, RUN_DEFINING) as tracker:
        tracker.log_dict({"report": data.report.to_dict(), **data.meta}, "bde_dataset_report.json")
        tracker.log_text(data.report.format(), "bde_dataset_report.txt")
        device = select_device(cfg.trainer.device)
        model = build(cfg.model)
        check_model(model)
        train_bondnet(model, data, cfg, tracker, device)
        if not is_main():
            return {}
        metrics = evaluate_all(model, data, heldout, ("val", "test"), int(cfg.phase.eval_batch_size), device)
        card = model_card(model, data, cfg, metrics)
        model.cpu()
        save_weights(model, output_dir(cfg) / "model", card)
        if cfg.get("export_name"):
            export(model, card, cfg)
        write_metrics(cfg, metrics, tracker)
    return metrics


def bde_weights(cfg: DictConfig) -> list[Path]:
    """The BDE models to benchmark: ckpt_path, or every shipped model whose card says task bde."""
    if cfg.get("ckpt_path"):
        return [Path(cfg.ckpt_path)]
    return shipped_weights(cfg.paths.weights_dir, "bde")


def format_bench(name: str, metrics: dict[str, float], sets: list[str]) -> str:
    """The benchmark table of one model: errors per set, then MAE per bond type and set."""
    lines = [f"\nBDE benchmark: {name} (kcal/mol, distinct BDEs: one bond per symmetry class; in-domain: "
             "bonds not flagged as an element or bond type unseen in training)",
             f"{'set':<18s}{'BDEs':>7s}{'flagged':>9s}{'MAE':>8s}{'MAE in-dom':>12s}{'RMSE':>8s}{'BDFE MAE':>10s}"]
    for s in sets:
        if f"{s}/mae" not in metrics:
            continue
        cells = [metrics.get(f"{s}/{k}") for k in ("mae", "mae_in_domain", "rmse", "bdfe_mae")]
        text = [f"{c:>{w}.3f}" if c is not None else f"{'-':>{w}s}" for c, w in zip(cells, (8, 12, 8, 10))]
        lines.append(f"{s:<18s}{metrics[f'{s}/n']:>7.0f}{metrics.get(f'{s}/n_flagged', 0):>9.0f}" + "".join(text))
    kinds = sorted({k.split("/", 2)[2] for k in metrics if k.count("/") == 2 and "/mae/" in k})
    lines.append("MAE by bond type")
    lines.append(f"{'type':<8s}" + "".join(f"{s[:11]:>12s}" for s in sets))
    for kind in kinds:
        cells = [metrics.get(f"{s}/mae/{kind}") for s in sets]
        lines.append(f"{kind:<8s}" + "".join(f"{c:>12.3f}" if c is not None else f"{'-':>12s}" for c in cells))
    return "\n".join(lines)


def bench_bde(cfg: DictConfig) -> dict[str, dict[str, float]]:
    """Evaluate the shipped BDE model(s) on the table's test split and the held-out sets; print the tables.

    The last line printed is `bde mae_test=... mae_commercial=... mae_pfas=... mae_exp=...` (last model).
    """
    seed_everything(int(cfg.seed))
    set_threads(cfg.trainer.num_threads)
    paths = bde_weights(cfg)
    if not paths:
        raise SystemExit(f"no shipped BDE model in {cfg.paths.weights_dir}; train it with "
                         "`python -m nextims.train experiment=bondnet_bde_db2` or pass ckpt_path=...")
    data, heldout = load_data(cfg)
    device = select_device(cfg.trainer.device)
    sets = ["test"] + [h.name for h in heldout]
    results = {}
    for path in paths:
        model, _ = load_bondnet(path, device)
        metrics = evaluate_all(model, data, heldout, ("test",), int(cfg.phase.get("eval_batch_size", 512)), device)
        print(format_bench(path.stem, metrics, sets))
        results[path.stem] = metrics
    last = results[paths[-1].stem]
    print("bde " + " ".join(f"mae_{s}={last.get(f'{s}/mae', float('nan')):.3f}"
                            for s in ("test", "commercial", "pfas", "exp")))
    return results
