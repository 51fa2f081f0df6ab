"""The v2.1 student: a Mixture-of-Experts residual MLP over count ECFP, distilled from the teacher."""

from __future__ import annotations

import torch
from torch import nn

from nextims.models.heads import BidirectionalSpectrumHead


class SparseFingerprintEmbedding(nn.Module):
    """A linear layer over log1p(count ECFP) that touches only the set bits (a fingerprint has ~50 of 4096)."""

    def __init__(self, fp_dim: int, out_dim: int) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(fp_dim, out_dim, mode="sum")
        self.bias = nn.Parameter(torch.zeros(out_dim))
        nn.init.uniform_(self.bag.weight, -fp_dim ** -0.5, fp_dim ** -0.5)

    def forward(self, fp: torch.Tensor) -> torch.Tensor:
        """W log1p(fp) + b for dense count fingerprints (batch, fp_dim)."""
        rows, cols = fp.nonzero(as_tuple=True)
        offsets = torch.searchsorted(rows, torch.arange(fp.shape[0], device=fp.device))
        weights = torch.log1p(fp[rows, cols]).to(self.bag.weight.dtype)
        return self.bag(cols, offsets, per_sample_weights=weights) + self.bias


class MoEResidualBlock(nn.Module):
    """x + sum over the top-k experts e of g_e(x) * expert_e(relu(norm(x))), with a Switch-style balance loss.

    Experts are bottleneck MLPs; gate weights are the softmax over experts renormalised over the top k.
    After each forward, `balance_loss` holds num_experts * sum_e f_e * P_e (f_e: share of routed slots that
    went to e, P_e: mean gate probability of e); it is 1 when routing is uniform and grows when it collapses.
    """

    def __init__(self, dim: int, num_experts: int = 4, top_k: int = 2, bottleneck: float = 0.5,
                 dropout: float = 0.25) -> None:
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"model.top_k={top_k} must be between 1 and model.num_experts={num_experts}")
        inner = max(1, int(dim * bottleneck))
        self.num_experts, self.top_k = num_experts, top_k
        self.norm = nn.LayerNorm(dim)
        self.gate = nn.Linear(dim, num_experts)
        self.experts = nn.ModuleList([nn.Sequential(nn.Linear(dim, inner), nn.ReLU(), nn.Dropout(dropout),
                                                    nn.Linear(inner, dim)) for _ in range(num_experts)])
        self.balance_loss = torch.zeros(())

    def route(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Gate probabilities (n, E), the top-k expert indices (n, k) and their renormalised weights (n, k)."""
        probs = torch.softmax(self.gate(h).float(), dim=-1)
        top_p, top_i = probs.topk(self.top_k, dim=-1)
        return probs, top_i, top_p / top_p.sum(-1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block; sets self.balance_loss."""
        h = torch.relu(self.norm(x))
        if self.num_experts == 1:
            self.balance_loss = x.new_ones(())
            return x + self.experts[0](h)
        probs, top_i, top_w = self.route(h)
        out = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            rows, slot = (top_i == e).nonzero(as_tuple=True)
            if len(rows):
                out.index_add_(0, rows, expert(h[rows]) * top_w[rows, slot].unsqueeze(1).to(x.dtype))
        share = torch.bincount(top_i.flatten(), minlength=self.num_experts).float() / top_i.numel()
        self.balance_loss = self.num_experts * (share * probs.mean(0)).sum()
        return x + out


class StudentMoE(nn.Module):
    """Count ECFP -> sparse embedding -> MoE residual blocks -> the mass-anchored forward/reverse head.

    `balance_loss` (after a forward) is the mean of the blocks' load-balancing terms.
    """

    needs_graph = False

    def __init__(self, fp_dim: int = 4096, num_bins: int = 500, hidden_dim: int = 1024, num_blocks: int = 3,
                 num_experts: int = 4, top_k: int = 2, bottleneck: float = 0.5, dropout: float = 0.25,
                 reverse_margin: int = 2) -> None:
        super().__init__()
        self.embed = SparseFingerprintEmbedding(fp_dim, hidden_dim)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([MoEResidualBlock(hidden_dim, num_experts, min(top_k, num_experts), bottleneck,
                                                      dropout) for _ in range(num_blocks)])
        self.norm = nn.LayerNorm(hidden_dim)
        self.head = BidirectionalSpectrumHead(hidden_dim, num_bins, reverse_margin)

    @property
    def balance_loss(self) -> torch.Tensor:
        """Mean load-balancing term of the last forward pass."""
        return torch.stack([b.balance_loss for b in self.blocks]).mean()

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Square-root intensities for a batch with `fp` (raw counts) and `mass`."""
        h = self.dropout(torch.relu(self.embed(batch["fp"])))
        for block in self.blocks:
            h = block(h)
        return self.head(torch.relu(self.norm(h)), batch["mass"])
