"""BDE errors (kcal/mol): MAE and RMSE over distinct BDEs, overall and per bond type."""

from __future__ import annotations

import numpy as np
import torch

from nextims.data.bde_dataset import BDEDataset
from nextims.data.bde_graphs import bond_type_label
from nextims.models.bondnet import BondNet, predict_bonds


def bond_labels(codes: np.ndarray) -> np.ndarray:
    """BDE-db2 bond-type labels ('C-H') of bond-type codes."""
    unique, inverse = np.unique(np.asarray(codes), return_inverse=True)
    return np.array([bond_type_label(int(c)) for c in unique], dtype=object)[inverse.reshape(-1)]


def error_metrics(predicted: np.ndarray, target: np.ndarray, labels: np.ndarray | None, prefix: str,
                  flagged: np.ndarray | None = None) -> dict[str, float]:
    """`<prefix>/mae`, `/rmse`, `/n`, `/bdfe_mae` and, with labels, `/mae/<bond type>` over rows with a BDE;
    with flagged, also `/n_flagged` and `/mae_in_domain` (the rows not flagged out of domain).

    predicted and target are (n, 2) arrays of (bde, bdfe); NaN targets are left out.
    """
    has = np.isfinite(target[:, 0])
    out: dict[str, float] = {f"{prefix}/n": float(np.count_nonzero(has))}
    if not has.any():
        return out
    err = predicted[has, 0] - target[has, 0]
    out[f"{prefix}/mae"] = float(np.mean(np.abs(err)))
    out[f"{prefix}/rmse"] = float(np.sqrt(np.mean(err ** 2)))
    if flagged is not None:
        inside = ~flagged[has]
        out[f"{prefix}/n_flagged"] = float(np.count_nonzero(~inside))
        if inside.any():
            out[f"{prefix}/mae_in_domain"] = float(np.mean(np.abs(err[inside])))
    has_free = np.isfinite(target[:, 1])
    if has_free.any():
        out[f"{prefix}/bdfe_mae"] = float(np.mean(np.abs(predicted[has_free, 1] - target[has_free, 1])))
    if labels is not None:
        kinds = labels[has]
        for kind in sorted(set(kinds.tolist())):
            out[f"{prefix}/mae/{kind}"] = float(np.mean(np.abs(err[kinds == kind])))
    return out


def evaluate_molecules(model: BondNet, data: BDEDataset, mol_idx: np.ndarray, prefix: str,
                       by_type: bool = True, batch_size: int = 512,
                       device: torch.device | str = "cpu") -> dict[str, float]:
    """Errors of the model on the distinct BDEs (one bond per symmetry class) of the given molecules."""
    predicted, flagged = predict_bonds(model, data.graphs, mol_idx, batch_size, device)
    rows = data.graphs.bond_rows(mol_idx)
    keep = data.unique_bonds()[rows]
    labels = bond_labels(data.graphs.bond_type[rows][keep]) if by_type else None
    return error_metrics(predicted[keep], data.targets[rows][keep], labels, prefix, flagged[keep])
