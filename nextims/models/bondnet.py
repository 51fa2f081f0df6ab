"""BonDNet-style bond-dissociation model: gated graph convolutions over atoms, bonds and a global state.

Wen et al., Chem. Sci. 2021 (BonDNet), here in plain PyTorch: atom, bond and global embeddings, then
layers that update bonds from their atoms, atoms from their gated neighbours, and the global state from
both; a per-bond readout gives the BDE and BDFE (kcal/mol) of every bond, X-H bonds included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nextims.data.bde_graphs import N_BOND_TYPES, N_ELEMENTS, PackedGraphs, featurizer_signature
from nextims.models.weights import load_model, read_card

Batch = dict[str, Any]


def segment_mean(values: torch.Tensor, segment: torch.Tensor, n: int) -> torch.Tensor:
    """Mean of the rows of values per segment id (0 for empty segments)."""
    total = values.new_zeros((n, values.shape[1])).index_add_(0, segment, values)
    count = values.new_zeros(n).index_add_(0, segment, values.new_ones(len(segment)))
    return total / count.clamp(min=1).unsqueeze(1)


class GatedGraphConv(nn.Module):
    """One residual layer updating bonds, atoms (gated mean over neighbours) and the global state."""

    def __init__(self, dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.bond = nn.Linear(3 * dim, dim)
        self.atom = nn.Linear(dim, 2 * dim)
        self.atom_global = nn.Linear(dim, dim, bias=False)
        self.glob = nn.Linear(3 * dim, dim)
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(3))
        self.act = nn.SiLU()
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, e: torch.Tensor, u: torch.Tensor,
                g: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Updated (atoms, bonds, global)."""
        src, dst = g["bond_atoms"][:, 0], g["bond_atoms"][:, 1]
        e_new = self.bond(torch.cat([e, h[src] + h[dst], u[g["bond_mol"]]], dim=1))
        gate = torch.sigmoid(e_new)
        self_part, message = self.atom(h).chunk(2, dim=1)
        num = torch.zeros_like(h).index_add_(0, dst, gate * message[src]).index_add_(0, src, gate * message[dst])
        den = torch.zeros_like(h).index_add_(0, dst, gate).index_add_(0, src, gate)
        h_new = self_part + num / (den + 1e-6) + self.atom_global(u)[g["atom_mol"]]
        n = g["num_mols"]
        pooled = [segment_mean(h_new, g["atom_mol"], n), segment_mean(e_new, g["bond_mol"], n)]
        u_new = self.glob(torch.cat([u, *pooled], dim=1))
        h = h + self.dropout(self.act(self.norms[0](h_new)))
        e = e + self.dropout(self.act(self.norms[1](e_new)))
        u = u + self.dropout(self.act(self.norms[2](u_new)))
        return h, e, u


class BondNet(nn.Module):
    """Per-bond BDE and BDFE (kcal/mol) of molecules with explicit hydrogens (see nextims.data.bde_graphs).

    Targets are standardised internally with `target_mean`/`target_std` buffers, and the elements and
    bond types seen in training are buffers too, so saved weights are self-contained. Bonds whose type
    (element pair, order, ring, charged atoms) or atoms' elements were never seen in training are `flagged`.
    """

    needs_graph = True

    def __init__(self, atom_dim: int, bond_dim: int, hidden_dim: int = 128, num_layers: int = 4,
                 readout_dim: int = 128, dropout: float = 0.0) -> None:
        super().__init__()
        self.atom_dim, self.bond_dim = atom_dim, bond_dim
        self.atom_in = nn.Sequential(nn.Linear(atom_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, hidden_dim))
        self.bond_in = nn.Sequential(nn.Linear(bond_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, hidden_dim))
        self.global_in = nn.Sequential(nn.Linear(atom_dim + 1, hidden_dim), nn.SiLU(),
                                       nn.Linear(hidden_dim, hidden_dim))
        self.layers = nn.ModuleList(GatedGraphConv(hidden_dim, dropout) for _ in range(num_layers))
        self.readout = nn.Sequential(nn.Linear(4 * hidden_dim, readout_dim), nn.SiLU(),
                                     nn.Linear(readout_dim, readout_dim // 2), nn.SiLU(),
                                     nn.Linear(readout_dim // 2, 2))
        self.register_buffer("target_mean", torch.zeros(2))
        self.register_buffer("target_std", torch.ones(2))
        self.register_buffer("known_elements", torch.zeros(N_ELEMENTS, dtype=torch.bool))
        self.register_buffer("known_bond_types", torch.zeros(N_BOND_TYPES, dtype=torch.bool))

    def set_normalisation(self, targets: np.ndarray) -> None:
        """Standardisation from training targets (bonds x 2, NaN = none), rounded to float16-exact values."""
        mean = torch.tensor(np.nanmean(targets, axis=0), dtype=torch.float32)
        std = torch.tensor(np.nanstd(targets, axis=0), dtype=torch.float32).clamp(min=1e-3)
        self.target_mean.copy_(torch.nan_to_num(mean).half().float())
        self.target_std.copy_(torch.nan_to_num(std, nan=1.0).half().float())

    def set_domain(self, elements: np.ndarray, bond_types: np.ndarray) -> None:
        """Record the element indices and bond-type codes of the training molecules' bonds with a target."""
        self.known_elements.zero_()
        self.known_bond_types.zero_()
        self.known_elements[torch.as_tensor(np.unique(elements), dtype=torch.long)] = True
        self.known_bond_types[torch.as_tensor(np.unique(bond_types), dtype=torch.long)] = True

    def raw(self, g: Batch) -> torch.Tensor:
        """Standardised (bde, bdfe) per bond, (bonds, 2)."""
        n = g["num_mols"]
        ones = torch.ones(len(g["atom_mol"]), device=g["x"].device)
        counts = torch.zeros(n, device=g["x"].device).index_add_(0, g["atom_mol"], ones)
        u = self.global_in(torch.cat([segment_mean(g["x"], g["atom_mol"], n), torch.log1p(counts).unsqueeze(1)], 1))
        h, e = self.atom_in(g["x"]), self.bond_in(g["bond_attr"])
        for layer in self.layers:
            h, e, u = layer(h, e, u, g)
        hu, hv = h[g["bond_atoms"][:, 0]], h[g["bond_atoms"][:, 1]]
        return self.readout(torch.cat([e, hu + hv, (hu - hv).abs(), u[g["bond_mol"]]], dim=1))

    def standardise(self, values: torch.Tensor) -> torch.Tensor:
        """kcal/mol to the model's standardised units."""
        return (values - self.target_mean) / self.target_std

    def forward(self, g: Batch) -> torch.Tensor:
        """(bde, bdfe) in kcal/mol per bond, (bonds, 2), in float32 (also under autocast)."""
        return self.raw(g).float() * self.target_std + self.target_mean

    def flagged(self, g: Batch) -> torch.Tensor:
        """Per bond: True when an atom's element or the bond type was never seen in training."""
        unknown_atom = ~self.known_elements[g["elements"]]
        return (~self.known_bond_types[g["bond_type"]] | unknown_atom[g["bond_atoms"][:, 0]]
                | unknown_atom[g["bond_atoms"][:, 1]])


@torch.no_grad()
def predict_bonds(model: BondNet, graphs: PackedGraphs, mol_idx: np.ndarray, batch_size: int = 512,
                  device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(bde, bdfe) float32 (bonds, 2) and flagged (bonds,) for the bonds of the given molecules, in order."""
    was_training = model.training
    model.eval()
    values, flags = [], []
    mol_idx = np.asarray(mol_idx, dtype=np.int64)
    for s in range(0, len(mol_idx), batch_size):
        batch = graphs.batch(mol_idx[s:s + batch_size], device)
        values.append(model(batch).float().cpu().numpy())
        flags.append(model.flagged(batch).cpu().numpy())
    model.train(was_training)
    if not values:
        return np.zeros((0, 2), np.float32), np.zeros(0, bool)
    return np.concatenate(values), np.concatenate(flags)


def load_bondnet(path: str | Path, device: torch.device | str = "cpu") -> tuple[BondNet, dict[str, Any]]:
    """A saved BDE model and its card; ValueError when it is not one or its features differ from this version's."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no BDE model weights at {path}; train them with "
                                "`python -m nextims.train experiment=bondnet_bde_db2` or pass ckpt_path=...")
    card = read_card(path)
    if card.get("task") != "bde":
        raise ValueError(f"{path} is not a BDE model (task {card.get('task')!r})")
    ours, theirs = featurizer_signature(), card.get("featurizer", {})
    if (theirs.get("feature_version"), theirs.get("graph")) != (ours["feature_version"], ours["graph"]):
        raise ValueError(f"{path} was trained on features {theirs}, this version makes {ours}: retrain it")
    model, card = load_model(path, device)
    return model, card
