"""NEIMS (Wei et al., ACS Cent. Sci. 2019): an MLP over count ECFP with a bidirectional head."""

from __future__ import annotations

import torch
from torch import nn

from nextims.models.heads import BidirectionalSpectrumHead


class ResidualBlock(nn.Module):
    """Bottleneck residual block: x + W2(drop(relu(W1(relu(norm(x))))))."""

    def __init__(self, dim: int, bottleneck: float, dropout: float) -> None:
        super().__init__()
        inner = max(1, int(dim * bottleneck))
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.ReLU(), nn.Linear(dim, inner), nn.ReLU(),
                                 nn.Dropout(dropout), nn.Linear(inner, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        return x + self.net(x)


class NEIMS(nn.Module):
    """Count ECFP -> dense -> residual blocks -> gated forward/reverse spectrum head."""

    needs_graph = False

    def __init__(self, input_dim: int = 4096, num_bins: int = 500, hidden_dim: int = 1024, num_blocks: int = 3,
                 bottleneck: float = 0.5, dropout: float = 0.25, reverse_margin: int = 2) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(input_dim, hidden_dim), nn.ReLU(), nn.Dropout(dropout))
        self.blocks = nn.Sequential(*[ResidualBlock(hidden_dim, bottleneck, dropout) for _ in range(num_blocks)])
        self.norm = nn.LayerNorm(hidden_dim)
        self.head = BidirectionalSpectrumHead(hidden_dim, num_bins, reverse_margin)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Square-root intensities for a batch with `fp` (log1p-scaled counts are computed here) and `mass`."""
        h = self.blocks(self.embed(torch.log1p(batch["fp"])))
        return self.head(torch.relu(self.norm(h)), batch["mass"])
