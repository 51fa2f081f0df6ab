"""A deep ensemble: train `ensemble_size` members of one spectrum model from consecutive seeds, save their mean."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from nextims.config import build
from nextims.models.ensemble import SpectrumEnsemble
from nextims.models.weights import load_model
from nextims.phases import spectrum
from nextims.phases.common import load_context, output_dir, tracked_run
from nextims.training.distributed import is_main
from nextims.training.runtime import select_device, set_threads

ENSEMBLE_TARGET = "nextims.models.ensemble.SpectrumEnsemble"


def member_config(cfg: DictConfig, index: int) -> DictConfig:
    """The config of member `index`: the same run with seed + index, in the folder member<index>, not exported.

    Apart from its folder, it equals the single-model command with that seed, so an earlier such run is resumed.
    """
    sub = cfg.copy()
    with open_dict(sub):
        sub.seed = int(cfg.seed) + index
        sub.ensemble_size = 1
        sub.export_name = None
        sub.paths.output_dir = str(output_dir(cfg) / f"member{index}")
    return sub


def ensemble_model_config(member: DictConfig, size: int) -> dict[str, Any]:
    """The model config of an ensemble of `size` members built from `member`."""
    return {"_target_": ENSEMBLE_TARGET, "_recursive_": False, "name": f"{member.name}_ensemble",
            "member": OmegaConf.to_container(member, resolve=True), "size": size}


def run_ensemble(cfg: DictConfig) -> dict[str, Any]:
    """Train (or resume) every member, then evaluate and save their ensemble like a single model."""
    size = int(cfg.ensemble_size)
    member_metrics = [spectrum.run(member_config(cfg, i)) for i in range(size)]
    if not is_main():
        return {}
    set_threads(cfg.trainer.num_threads)
    ensemble_cfg = cfg.copy()
    with open_dict(ensemble_cfg):
        ensemble_cfg.model = ensemble_model_config(cfg.model, size)
    model: SpectrumEnsemble = build(ensemble_cfg.model)
    for i, member in enumerate(model.members):
        trained, _ = load_model(Path(member_config(cfg, i).paths.output_dir) / "model.safetensors")
        member.load_state_dict(trained.state_dict())
    device = select_device(cfg.trainer.device)
    model.to(device).eval()
    ctx = load_context(cfg)
    batches = spectrum.SpectrumBatches.for_model(model, ctx.data, ctx.features, device)
    members = [{"seed": int(cfg.seed) + i, **{k: v for k, v in m.items() if k.endswith(("recall@1", "recall@10"))}}
               for i, m in enumerate(member_metrics)]
    with tracked_run(ensemble_cfg, {"ensemble_size": size}) as tracker:
        spectrum.log_dataset(ctx, tracker)
        tracker.log_metrics({f"member{i}/{k}": v for i, m in enumerate(members) for k, v in m.items() if k != "seed"})
        predict = lambda idx: spectrum.predict_intensities(model, batches, idx)  # noqa: E731
        return spectrum.finish_run(ensemble_cfg, ctx, model, predict, tracker, {"members": members})
