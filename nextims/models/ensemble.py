"""A deep ensemble of spectrum models: members of one architecture trained from different seeds."""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from nextims.config import build


class SpectrumEnsemble(nn.Module):
    """The mean of its members' spectra, each scaled to a base peak of 1 (square-root intensities out, as the members).

    With a BDE head on every member, `with_bde=True` also returns the members' mean BDE per bond.
    """

    def __init__(self, member: dict[str, Any] | DictConfig, size: int) -> None:
        super().__init__()
        if int(size) < 1:
            raise ValueError(f"an ensemble needs at least one member, got size={size}")
        self.members = nn.ModuleList(build(member) for _ in range(int(size)))
        self.needs_graph = any(getattr(m, "needs_graph", False) for m in self.members)
        self.needs_sites = any(getattr(m, "needs_sites", False) for m in self.members)
        self.needs_pieces = any(getattr(m, "needs_pieces", False) for m in self.members)
        self.needs_envelope = max(int(getattr(m, "needs_envelope", 0)) for m in self.members)

    def forward(self, batch: dict, with_bde: bool = False):
        """Square-root intensities (batch, bins); with_bde also the mean BDE of every bond."""
        outputs = [m(batch, with_bde=True) if with_bde else m(batch) for m in self.members]
        spectra = [o[0] if with_bde else o for o in outputs]
        intensities = torch.stack([s.float().pow(2) for s in spectra])
        base_peak = intensities.amax(dim=2, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
        spectrum = (intensities / base_peak).mean(dim=0).sqrt()
        if not with_bde:
            return spectrum
        return spectrum, torch.stack([o[1] for o in outputs]).mean(dim=0)
