"""Phase `teacher_student`: train a teacher, then distil a student from it, so one sweep trial tunes both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from nextims.phases import spectrum
from nextims.phases.common import output_dir


def derived(cfg: DictConfig, phase: dict[str, Any], model: DictConfig, folder: Path, teacher: str | None) -> DictConfig:
    """A copy of cfg for one half of the pair: its phase, model, run folder and (for the student) teacher."""
    sub = cfg.copy()
    with open_dict(sub):
        sub.phase = phase
        sub.model = model
        sub.paths.output_dir = str(folder)
        sub.export_name = None
        sub.teacher = {"checkpoint": teacher}
    return sub


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train the teacher (model `teacher.model`, loss lambdas from `loss`), then the student (`model`) from it."""
    out = output_dir(cfg)
    teacher_phase = {"name": "teacher", "run": "nextims.phases.spectrum.run",
                     "bde_targets": bool(cfg.phase.bde_targets), "bde_weights": cfg.phase.bde_weights}
    teacher_metrics = spectrum.run(derived(cfg, teacher_phase, cfg.teacher.model, out / "teacher", None))
    student_phase = {"name": "student", "run": "nextims.phases.spectrum.run", "distill": True}
    student_cfg = derived(cfg, student_phase, cfg.model, out / "student", str(out / "teacher" / "model.safetensors"))
    metrics = spectrum.run(student_cfg)
    if not metrics:  # not rank 0
        return {}
    return {**metrics, **{f"teacher/{k}": v for k, v in teacher_metrics.items()}}
