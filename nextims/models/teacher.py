"""The v2.1 teacher: a message-passing GNN plus count ECFP, with a spectrum head and a per-bond BDE head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch_geometric.nn import GATv2Conv, GINEConv, global_add_pool, global_mean_pool

from nextims.models.heads import (HYDROGEN_SHIFTS, BidirectionalSpectrumHead, BondCleavageHead, FragmentPieceHead,
                                  spread_isotopes)
from nextims.models.neims import ResidualBlock


def _conv(kind: str, dim: int) -> nn.Module:
    if kind == "gine":
        return GINEConv(nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim)), edge_dim=dim)
    if kind == "gatv2":
        return GATv2Conv(dim, dim // 4, heads=4, edge_dim=dim)
    raise ValueError(f"unknown model.conv {kind!r} (gine or gatv2)")


class TeacherGNN(nn.Module):
    """Graph layers -> pooled embedding joined with the count ECFP -> spectrum; bond embeddings -> BDE.

    The BDE head predicts one value per bond of the graph (edges 2b and 2b+1 are bond b), in kcal/mol. With
    `cleavage_head`, a BondCleavageHead adds the ions of single-bond cleavages to the spectrum head's output; with
    `cleavage_bde` as well, it scores each cleavage from the bond's BDE too, as the BDE head predicts it (detached:
    only the BDE task trains the BDE head, so what the cleavage head reads stays a bond strength).
    With `fragment_head`, a FragmentPieceHead adds the ions of two-bond cleavages (the batch's `pieces`) as well.
    With `isotope_envelope`, the heads predict monoisotopic ions and each spreads over its isotope pattern (the
    batch's `envelope`, nextims.data.envelopes, of `envelope_width` offsets), so clusters run past M + margin.
    """

    needs_graph = True

    def __init__(self, atom_dim: int, bond_dim: int, fp_dim: int = 4096, num_bins: int = 500, hidden_dim: int = 256,
                 num_layers: int = 4, conv: str = "gine", fp_hidden: int = 512, joint_dim: int = 1024,
                 num_blocks: int = 2, dropout: float = 0.2, reverse_margin: int = 2,
                 bde_mean: float = 95.0, bde_std: float = 15.0, cleavage_head: bool = False,
                 cleavage_shifts: Sequence[int] | None = None, isotope_envelope: bool = False,
                 envelope_width: int = 13, cleavage_bde: bool = False, fragment_head: bool = False) -> None:
        super().__init__()
        # the envelope width the batches must carry; 0: none
        self.needs_envelope = int(envelope_width) if isotope_envelope else 0
        self.needs_pieces = bool(fragment_head)
        self.atom_encoder = nn.Linear(atom_dim, hidden_dim)
        self.bond_encoder = nn.Linear(bond_dim, hidden_dim)
        self.convs = nn.ModuleList([_conv(conv, hidden_dim) for _ in range(num_layers)])
        self.norms = nn.ModuleList([nn.LayerNorm(hidden_dim) for _ in range(num_layers)])
        self.dropout = nn.Dropout(dropout)
        # fp_hidden 0: the log counts enter the joint layer directly (as in NEIMS's first layer)
        self.fp_encoder = (nn.Sequential(nn.Linear(fp_dim, fp_hidden), nn.ReLU(), nn.Dropout(dropout)) if fp_hidden
                           else nn.Identity())
        self.joint = nn.Sequential(nn.Linear(2 * hidden_dim + (fp_hidden or fp_dim), joint_dim), nn.ReLU(), nn.Dropout(dropout),
                                   *[ResidualBlock(joint_dim, 0.5, dropout) for _ in range(num_blocks)],
                                   nn.LayerNorm(joint_dim), nn.ReLU())
        self.spectrum_head = BidirectionalSpectrumHead(joint_dim, num_bins, reverse_margin)
        if cleavage_bde and not cleavage_head:
            raise ValueError("cleavage_bde=true feeds BDEs to the cleavage head: it needs cleavage_head=true")
        self.cleavage_head = (BondCleavageHead(hidden_dim, joint_dim, num_bins, cleavage_shifts or HYDROGEN_SHIFTS,
                                               bde_input=cleavage_bde) if cleavage_head else None)
        self.fragment_head = (FragmentPieceHead(hidden_dim, joint_dim, num_bins, cleavage_shifts or HYDROGEN_SHIFTS)
                              if fragment_head else None)
        self.bde_head = nn.Sequential(nn.Linear(3 * hidden_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 1))
        self.register_buffer("bde_mean", torch.tensor(float(bde_mean)))
        self.register_buffer("bde_std", torch.tensor(float(bde_std)))

    def encode(self, graph) -> tuple[torch.Tensor, torch.Tensor]:
        """Atom and (directed) edge embeddings after the message-passing layers."""
        h = self.atom_encoder(graph.x)
        e = self.bond_encoder(graph.edge_attr)
        for conv, norm in zip(self.convs, self.norms):
            h = h + self.dropout(torch.relu(norm(conv(h, graph.edge_index, e))))
        return h, e

    def forward(self, batch: dict, with_bde: bool = False):
        """Square-root intensities; with_bde also returns the BDE (kcal/mol) of every bond, in edge-pair order."""
        graph = batch["graph"]
        h, e = self.encode(graph)
        pooled = torch.cat([global_add_pool(h, graph.batch, size=graph.num_graphs) / 10.0,
                            global_mean_pool(h, graph.batch, size=graph.num_graphs)], dim=1)
        joint = self.joint(torch.cat([pooled, self.fp_encoder(torch.log1p(batch["fp"]))], dim=1))
        uses_bde = self.cleavage_head is not None and self.cleavage_head.bde_input
        standard_bde = self._standard_bde(h, e, graph) if with_bde or uses_bde else None
        ions = None
        if self.cleavage_head is not None:
            # edges 2b and 2b+1 are the two directions of bond b
            edge_bde = standard_bde.detach().repeat_interleave(2) if uses_bde else None
            ions = self.cleavage_head(h, e, graph, joint, edge_bde)
        if self.fragment_head is not None:
            if "pieces" not in batch:
                raise ValueError("this teacher scores two-cut fragments: its batches need `pieces` "
                                 "(SpectrumBatches.for_model and SpectrumPredictor add them)")
            pieces = self.fragment_head(h, e, graph, joint, batch["pieces"])
            ions = pieces if ions is None else ions + pieces
        spectrum = self.spectrum_head(joint, batch["mass"], ions)
        if self.needs_envelope:
            if "envelope" not in batch:
                raise ValueError("this teacher spreads ions over isotope envelopes: its batches need `envelope` "
                                 "(SpectrumBatches.for_model and SpectrumPredictor add it)")
            spectrum = spread_isotopes(spectrum, batch["envelope"])
        if not with_bde:
            return spectrum
        return spectrum, standard_bde * self.bde_std + self.bde_mean

    def _standard_bde(self, h: torch.Tensor, e: torch.Tensor, graph) -> torch.Tensor:
        """The BDE head's output for every bond (edge pairs), in units of bde_std about bde_mean."""
        src, dst = graph.edge_index[:, 0::2]
        bond = torch.cat([h[src] + h[dst], (h[src] - h[dst]).abs(), e[0::2]], dim=1)
        return self.bde_head(bond).squeeze(1)
