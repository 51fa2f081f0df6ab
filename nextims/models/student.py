"""The v2.1 student: a Mixture-of-Experts residual MLP over count ECFP, distilled from the teacher."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nextims.data.sites import NUM_BOND_KINDS
from nextims.models.heads import HYDROGEN_SHIFTS, BidirectionalSpectrumHead, place_ions


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


class SiteCleavageHead(nn.Module):
    """Ions of single-bond cleavages without message passing: each cleavage site (a directed non-ring bond, see
    nextims.data.sites) is scored from the Morgan environments of its near and far atoms, its bond kind and its
    molecule's embedding; its scores land at the far part's nominal mass plus each of `shifts`."""

    def __init__(self, fp_dim: int, joint_dim: int, num_bins: int, dim: int = 64,
                 shifts: Sequence[int] = HYDROGEN_SHIFTS) -> None:
        super().__init__()
        self.size, self.fp_dim = num_bins + 1, fp_dim
        self.register_buffer("shifts", torch.tensor([int(s) for s in shifts]), persistent=False)
        self.environment = nn.EmbeddingBag(fp_dim + 1, dim, mode="sum", padding_idx=fp_dim)
        self.kind = nn.Embedding(NUM_BOND_KINDS, dim)
        self.joint = nn.Linear(joint_dim, dim)
        self.score = nn.Sequential(nn.ReLU(), nn.Linear(4 * dim, dim), nn.ReLU(), nn.Linear(dim, len(shifts)))
        nn.init.constant_(self.score[-1].bias, -3.0)  # starts near zero: the spectrum head leads at first

    def _env(self, bits: torch.Tensor) -> torch.Tensor:
        return self.environment(torch.where(bits < 0, torch.full_like(bits, self.fp_dim), bits))

    def forward(self, sites: dict[str, torch.Tensor], joint: torch.Tensor) -> torch.Tensor:
        """Scores (molecules, num_bins + 1) from the sites' inputs and the molecules' embeddings."""
        owner = sites["owner"]
        features = torch.cat([self._env(sites["near"]), self._env(sites["far"]), self.kind(sites["kind"]),
                              self.joint(joint)[owner]], dim=1)
        scores = nn.functional.softplus(self.score(features))
        return place_ions(scores, sites["mass"], owner, self.shifts, joint.shape[0], self.size)


class FragmentMassEmbedding(nn.Module):
    """A linear map of each molecule's bag of cleavage-ion masses (every site's far-part nominal mass) into the
    trunk's width: tells the trunk where single-bond cleavages can put ions."""

    def __init__(self, num_bins: int, out_dim: int) -> None:
        super().__init__()
        self.size = num_bins + 1
        self.bag = nn.EmbeddingBag(self.size, out_dim, mode="sum")
        nn.init.normal_(self.bag.weight, std=0.02)

    def forward(self, sites: dict[str, torch.Tensor], num_molecules: int) -> torch.Tensor:
        """(molecules, out_dim); a molecule without sites gets zeros."""
        owner = sites["owner"]
        offsets = torch.searchsorted(owner, torch.arange(num_molecules, device=owner.device))
        return self.bag(sites["mass"].clamp(0, self.size - 1), offsets)


class StudentMoE(nn.Module):
    """Count ECFP -> sparse embedding -> MoE residual blocks -> the mass-anchored forward/reverse head.

    With `cleavage_head`, the student also reads each molecule's cleavage sites (nextims.data.sites): their ion
    masses join the embedding (FragmentMassEmbedding) and a SiteCleavageHead adds the single-bond cleavage ions
    to the head's output, as the teacher's cleavage head does, with no message passing.
    `balance_loss` (after a forward) is the mean of the blocks' load-balancing terms.
    """

    needs_graph = False

    def __init__(self, fp_dim: int = 4096, num_bins: int = 500, hidden_dim: int = 1024, num_blocks: int = 3,
                 num_experts: int = 4, top_k: int = 2, bottleneck: float = 0.5, dropout: float = 0.25,
                 reverse_margin: int = 2, cleavage_head: bool = False, site_dim: int = 64,
                 cleavage_shifts: Sequence[int] | None = None) -> None:
        super().__init__()
        self.needs_sites = bool(cleavage_head)
        self.embed = SparseFingerprintEmbedding(fp_dim, hidden_dim)
        self.fragments = FragmentMassEmbedding(num_bins, hidden_dim) if cleavage_head else None
        self.cleavage_head = (SiteCleavageHead(fp_dim, hidden_dim, num_bins, site_dim,
                                               cleavage_shifts or HYDROGEN_SHIFTS) if cleavage_head else None)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([MoEResidualBlock(hidden_dim, num_experts, top_k, bottleneck,
                                                      dropout) for _ in range(num_blocks)])
        self.norm = nn.LayerNorm(hidden_dim)
        self.head = BidirectionalSpectrumHead(hidden_dim, num_bins, reverse_margin)

    @property
    def balance_loss(self) -> torch.Tensor:
        """Mean load-balancing term of the last forward pass."""
        return torch.stack([b.balance_loss for b in self.blocks]).mean()

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Square-root intensities for a batch with `fp` (raw counts), `mass` and, with the cleavage head,
        `sites` (CleavageSites.take)."""
        h = self.embed(batch["fp"])
        if self.fragments is not None:
            h = h + self.fragments(batch["sites"], h.shape[0])
        h = self.dropout(torch.relu(h))
        for block in self.blocks:
            h = block(h)
        joint = torch.relu(self.norm(h))
        ions = self.cleavage_head(batch["sites"], joint) if self.cleavage_head is not None else None
        return self.head(joint, batch["mass"], ions)
