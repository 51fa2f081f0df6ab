"""Spectrum losses, registered by name so `conf/loss` selects them."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

SPECTRUM_LOSSES: dict[str, type[nn.Module]] = {}


def register(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator adding a spectrum loss to the registry."""

    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        SPECTRUM_LOSSES[name] = cls
        return cls

    return wrap


class _MassWeighted(nn.Module):
    def __init__(self, mass_power: float = 1.0) -> None:
        super().__init__()
        self.mass_power = mass_power

    def weights(self, size: int, device: torch.device) -> torch.Tensor:
        bins = torch.arange(size, device=device, dtype=torch.float32)
        return (bins / max(size - 1, 1)) ** self.mass_power


@register("sqrt_mse")
class SqrtMSELoss(_MassWeighted):
    """m/z-weighted MSE between predicted and observed square-root intensities (max-normalised)."""

    def forward(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean over spectra of sum_j w_j (p_j - sqrt(t_j))^2 / sum_j w_j."""
        w = self.weights(target.shape[1], target.device)
        err = (predicted - target.clamp_min(0).sqrt()) ** 2
        return ((err * w).sum(1) / w.sum()).mean()


@register("cosine")
class CosineLoss(_MassWeighted):
    """1 - cosine between m/z-weighted square-root spectra (the NEIMS matching similarity)."""

    def forward(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean of 1 - cos(w * p, w * sqrt(t))."""
        w = self.weights(target.shape[1], target.device)
        cos = nn.functional.cosine_similarity(predicted * w, target.clamp_min(0).sqrt() * w, dim=1, eps=1e-8)
        return (1 - cos).mean()


def spectrum_loss(name: str, **kwargs: float) -> nn.Module:
    """Build a registered spectrum loss."""
    if name not in SPECTRUM_LOSSES:
        raise ValueError(f"unknown spectrum loss {name!r}; known: {sorted(SPECTRUM_LOSSES)}")
    return SPECTRUM_LOSSES[name](**kwargs)


class MultitaskTeacherLoss(nn.Module):
    """lambda_spectrum * spectrum loss + lambda_bde * masked MSE of bond BDEs (in units of bde_scale kcal/mol).

    Call: `total_loss, loss_dict = loss_fn(predicted_spectrum=..., target_spectrum=..., predicted_bde=...,
    target_bde=..., bde_mask=None)`. Bonds whose target is NaN, or where bde_mask is False, do not count.
    """

    def __init__(self, lambda_spectrum: float = 1.0, lambda_bde: float = 0.1, spectrum: nn.Module | None = None,
                 bde_scale: float = 10.0) -> None:
        super().__init__()
        self.lambda_spectrum = lambda_spectrum
        self.lambda_bde = lambda_bde
        self.spectrum = spectrum if spectrum is not None else CosineLoss()
        self.bde_scale = bde_scale

    def forward(self, predicted_spectrum: torch.Tensor, target_spectrum: torch.Tensor,
                predicted_bde: torch.Tensor | None = None, target_bde: torch.Tensor | None = None,
                bde_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """The weighted total and its parts (floats, for logging)."""
        spectrum_loss = self.spectrum(predicted_spectrum, target_spectrum)
        bde_loss = predicted_spectrum.new_zeros(())
        n_bonds = 0
        if predicted_bde is not None and target_bde is not None:
            valid = torch.isfinite(target_bde)
            if bde_mask is not None:
                valid &= bde_mask.bool()
            n_bonds = int(valid.sum())
            if n_bonds:
                err = (predicted_bde[valid] - target_bde[valid]) / self.bde_scale
                bde_loss = (err ** 2).mean()
            else:
                bde_loss = predicted_bde.sum() * 0.0
        total = self.lambda_spectrum * spectrum_loss + self.lambda_bde * bde_loss
        return total, {"loss": total.item(), "spectrum": spectrum_loss.item(), "bde": bde_loss.item(),
                       "bde_bonds": float(n_bonds)}


class DistillationLoss(nn.Module):
    """lambda_spectrum * hard loss (observed) + lambda_soft * soft loss (teacher) + lambda_balance * load balance.

    Call: `total_loss, loss_dict = loss_fn(predicted_spectrum=..., target_spectrum=..., teacher_spectrum=...,
    balance_loss=None)`; both targets are intensities, scored with the same spectrum loss; a batch without
    observed spectra (target_spectrum None, e.g. transfer-set molecules) has only the soft term.
    """

    def __init__(self, lambda_spectrum: float = 1.0, lambda_soft: float = 1.0, lambda_balance: float = 0.01,
                 spectrum: nn.Module | None = None) -> None:
        super().__init__()
        self.lambda_spectrum = lambda_spectrum
        self.lambda_soft = lambda_soft
        self.lambda_balance = lambda_balance
        self.spectrum = spectrum if spectrum is not None else CosineLoss()

    def forward(self, predicted_spectrum: torch.Tensor, target_spectrum: torch.Tensor | None,
                teacher_spectrum: torch.Tensor | None = None,
                balance_loss: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """The weighted total and its parts (floats, for logging)."""
        zero = predicted_spectrum.new_zeros(())
        hard = self.spectrum(predicted_spectrum, target_spectrum) if target_spectrum is not None else zero
        soft = self.spectrum(predicted_spectrum, teacher_spectrum) if teacher_spectrum is not None else zero
        balance = balance_loss if balance_loss is not None else zero
        total = self.lambda_spectrum * hard + self.lambda_soft * soft + self.lambda_balance * balance
        return total, {"loss": total.item(), "spectrum": hard.item(), "soft": soft.item(), "balance": balance.item()}
