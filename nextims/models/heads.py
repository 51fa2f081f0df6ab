"""The mass-anchored spectrum head shared by the spectrum models (NEIMS, teacher, student)."""

from __future__ import annotations

import torch
from torch import nn


class BidirectionalSpectrumHead(nn.Module):
    """Forward and reverse (anchored at the molecular mass) predictions mixed by a sigmoid gate.

    Outputs non-negative square-root intensities over m/z bins 0..num_bins; bins above
    mass + reverse_margin are zero.
    """

    def __init__(self, in_dim: int, num_bins: int, reverse_margin: int = 2) -> None:
        super().__init__()
        self.size = num_bins + 1
        self.reverse_margin = reverse_margin
        self.forward_head = nn.Linear(in_dim, self.size)
        self.reverse_head = nn.Linear(in_dim, self.size)
        self.gate = nn.Linear(in_dim, self.size)

    def forward(self, h: torch.Tensor, mass: torch.Tensor) -> torch.Tensor:
        """Square-root intensities (batch, num_bins + 1) from embeddings h and nominal masses."""
        bins = torch.arange(self.size, device=h.device)
        anchor = mass.long().unsqueeze(1) + self.reverse_margin
        offset = anchor - bins.unsqueeze(0)
        inside = (offset >= 0) & (offset < self.size)
        reverse = torch.gather(self.reverse_head(h), 1, offset.clamp(0, self.size - 1)) * inside
        gate = torch.sigmoid(self.gate(h))
        out = gate * self.forward_head(h) + (1 - gate) * reverse
        return torch.relu(out) * (bins.unsqueeze(0) <= anchor)
