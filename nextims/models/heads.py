"""The mass-anchored spectrum head shared by the spectrum models (NEIMS, teacher, student)."""

from __future__ import annotations

from collections.abc import Sequence

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

    def forward(self, h: torch.Tensor, mass: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """Square-root intensities (batch, num_bins + 1) from embeddings h and nominal masses; `extra`
        (batch, num_bins + 1), e.g. cleavage-ion scores, is added before the rectification."""
        bins = torch.arange(self.size, device=h.device)
        anchor = mass.long().unsqueeze(1) + self.reverse_margin
        offset = anchor - bins.unsqueeze(0)
        inside = (offset >= 0) & (offset < self.size)
        reverse = torch.gather(self.reverse_head(h), 1, offset.clamp(0, self.size - 1)) * inside
        gate = torch.sigmoid(self.gate(h))
        out = gate * self.forward_head(h) + (1 - gate) * reverse
        if extra is not None:
            out = out + extra
        return torch.relu(out) * (bins.unsqueeze(0) <= anchor)


def spread_isotopes(sqrt_intensity: torch.Tensor, envelope: torch.Tensor) -> torch.Tensor:
    """Spread each bin's intensity over its isotope pattern: square-root intensities (batch, bins) of the
    monoisotopic ions and envelopes (batch, bins, width), each row summing to 1, give the square-root intensities
    (batch, bins) of the observed clusters; whatever falls above the last bin is dropped."""
    if envelope.shape[:2] != sqrt_intensity.shape:
        raise ValueError(f"isotope envelopes of shape {tuple(envelope.shape)} do not fit spectra of shape "
                         f"{tuple(sqrt_intensity.shape)} (expected (batch, bins, width))")
    size = sqrt_intensity.shape[1]
    spread = sqrt_intensity.square().unsqueeze(2) * envelope
    out = spread[:, :, 0]
    for k in range(1, min(envelope.shape[2], size)):
        out = out + nn.functional.pad(spread[:, :size - k, k], (k, 0))
    tiny = torch.finfo(out.dtype).tiny
    return torch.where(out > tiny, out.clamp_min(tiny).sqrt(), torch.zeros_like(out))


# m/z offsets from a fragment's nominal mass: hydrogen transfers
HYDROGEN_SHIFTS = (-2, -1, 0, 1, 2)


def place_ions(scores: torch.Tensor, frag_mass: torch.Tensor, owner: torch.Tensor, shifts: torch.Tensor,
               num_molecules: int, size: int) -> torch.Tensor:
    """Sum per-site ion scores (sites, len(shifts)) into spectra (num_molecules, size): site i's score j lands at
    m/z frag_mass[i] + shifts[j] of molecule owner[i]; sites with frag_mass 0 (ring bonds) and m/z outside
    1..size-1 are left out."""
    mz = frag_mass.long().unsqueeze(1) + shifts
    valid = (frag_mass > 0).unsqueeze(1) & (mz >= 1) & (mz < size)
    flat = (owner.unsqueeze(1) * size + mz.clamp(0, size - 1)).reshape(-1)
    out = scores.new_zeros(num_molecules * size)
    out.index_add_(0, flat, (scores * valid).reshape(-1))
    return out.view(num_molecules, size)


class BondCleavageHead(nn.Module):
    """Ions of single-bond cleavages: each directed edge over a non-ring bond scores the ion on its far side at
    that part's nominal mass (the graph's `frag_mass`) plus each of `shifts` (m/z offsets), from its atoms' and its own
    embeddings and its molecule's joint embedding. With `bde_input`, the scorer also reads each edge's bond
    dissociation energy (standardised). Returns non-negative scores over m/z bins 0..num_bins."""

    def __init__(self, hidden_dim: int, joint_dim: int, num_bins: int,
                 shifts: Sequence[int] = HYDROGEN_SHIFTS, bde_input: bool = False) -> None:
        super().__init__()
        self.size = num_bins + 1
        self.bde_input = bool(bde_input)
        self.register_buffer("shifts", torch.tensor([int(s) for s in shifts]), persistent=False)
        self.joint = nn.Linear(joint_dim, hidden_dim)
        self.score = nn.Sequential(nn.Linear(4 * hidden_dim + self.bde_input, hidden_dim), nn.ReLU(),
                                   nn.Linear(hidden_dim, len(shifts)))
        nn.init.constant_(self.score[-1].bias, -3.0)  # starts near zero: the spectrum head leads at first

    def forward(self, h: torch.Tensor, e: torch.Tensor, graph, joint: torch.Tensor,
                bde: torch.Tensor | None = None) -> torch.Tensor:
        """Scores (graphs, num_bins + 1) from atom embeddings h, edge embeddings e, per-graph joint embeddings and,
        with `bde_input`, bde: one standardised BDE per directed edge."""
        frag_mass = getattr(graph, "frag_mass", None)
        if frag_mass is None:
            raise ValueError("the cleavage head needs each graph's frag_mass (MolGraphFeaturizer adds it; a features "
                             "cache from an older version is rebuilt when the run starts)")
        src, dst = graph.edge_index
        owner = graph.batch[src]
        parts = [h[src], h[dst], e, self.joint(joint)[owner]]
        if self.bde_input:
            if bde is None or bde.shape != (src.shape[0],):
                raise ValueError(f"this cleavage head reads one BDE per directed edge ({src.shape[0]}), got "
                                 f"{None if bde is None else tuple(bde.shape)}")
            parts.append(bde.unsqueeze(1))
        scores = nn.functional.softplus(self.score(torch.cat(parts, dim=1)))
        return place_ions(scores, frag_mass, owner, self.shifts, joint.shape[0], self.size)


class FragmentPieceHead(nn.Module):
    """Ions of two-bond cleavages: each two-cut piece (the batch's `pieces`, nextims.data.pieces) scores the ion
    at its nominal mass plus each of `shifts`, from the mean embedding of its atoms, the embeddings of its two cut
    bonds (both directions summed), its size and its molecule's joint embedding. Returns non-negative scores over
    m/z bins 0..num_bins."""

    def __init__(self, hidden_dim: int, joint_dim: int, num_bins: int,
                 shifts: Sequence[int] = HYDROGEN_SHIFTS) -> None:
        super().__init__()
        self.size = num_bins + 1
        self.register_buffer("shifts", torch.tensor([int(s) for s in shifts]), persistent=False)
        self.joint = nn.Linear(joint_dim, hidden_dim)
        self.score = nn.Sequential(nn.Linear(3 * hidden_dim + 1, hidden_dim), nn.ReLU(),
                                   nn.Linear(hidden_dim, len(shifts)))
        nn.init.constant_(self.score[-1].bias, -3.0)  # starts near zero, as the cleavage head

    def forward(self, h: torch.Tensor, e: torch.Tensor, graph, joint: torch.Tensor,
                pieces: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scores (graphs, num_bins + 1) from atom embeddings h, directed-edge embeddings e (edges 2b, 2b+1 are
        bond b), per-graph joint embeddings and the batch's two-cut pieces (local atom and bond indices)."""
        owner = pieces["owner"]
        n = owner.shape[0]
        if n == 0:
            return joint.new_zeros(joint.shape[0], self.size)
        atom_start = graph.ptr[:-1]
        edge_start = torch.cat([graph.ptr.new_zeros(1),
                                torch.bincount(graph.batch[graph.edge_index[0]], minlength=joint.shape[0]).cumsum(0)])
        member = pieces["atom"] + atom_start[owner[pieces["atom_piece"]]]
        incidence = torch.sparse_coo_tensor(torch.stack([pieces["atom_piece"], member]),
                                            h.new_ones(member.shape[0]), (n, h.shape[0]), check_invariants=False)
        size = torch.bincount(pieces["atom_piece"], minlength=n).clamp_min(1).to(h.dtype).unsqueeze(1)
        atoms = torch.sparse.mm(incidence, h) / size
        edge = edge_start[owner].unsqueeze(1) + 2 * pieces["cuts"]
        bonds = e[edge] + e[edge + 1]
        parts = [atoms, bonds.sum(dim=1), self.joint(joint)[owner], torch.log(size)]
        scores = nn.functional.softplus(self.score(torch.cat(parts, dim=1)))
        return place_ions(scores, pieces["mass"], owner, self.shifts, joint.shape[0], self.size)
