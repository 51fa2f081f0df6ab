"""Spectrum losses on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from nextims.losses import SPECTRUM_LOSSES, spectrum_loss


def test_registry_knows_losses_and_rejects_unknown() -> None:
    assert {"sqrt_mse", "cosine"} <= set(SPECTRUM_LOSSES)
    with pytest.raises(ValueError, match="unknown spectrum loss"):
        spectrum_loss("nope")


def test_sqrt_mse_hand_computed() -> None:
    # bins 0..2, weights (j/2)^1 = 0, 0.5, 1; target sqrt = 0, 0.5, 1
    pred = torch.tensor([[1.0, 0.0, 1.0]])
    target = torch.tensor([[0.0, 0.25, 1.0]])
    loss = spectrum_loss("sqrt_mse", mass_power=1.0)(pred, target)
    assert loss.item() == pytest.approx((0 * 1 + 0.5 * 0.25 + 1 * 0) / 1.5)


def test_cosine_loss_zero_for_proportional_and_one_for_disjoint() -> None:
    fn = spectrum_loss("cosine", mass_power=1.0)
    target = torch.tensor([[0.0, 0.25, 1.0, 0.0]])
    assert fn(2 * target.sqrt(), target).item() == pytest.approx(0.0, abs=1e-6)
    assert fn(torch.tensor([[0.0, 0.0, 0.0, 1.0]]), target).item() == pytest.approx(1.0, abs=1e-6)
    half = fn(torch.tensor([[0.0, 1.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 1.0, 0.0]])).item()
    # weights 1/3 and 2/3 on bins 1 and 2: cos = (1/3) / sqrt(1/9 + 4/9)
    assert half == pytest.approx(1 - (1 / 3) / math.sqrt(5 / 9), abs=1e-6)


def test_losses_backpropagate() -> None:
    pred = torch.rand(4, 10, requires_grad=True)
    for name in SPECTRUM_LOSSES:
        spectrum_loss(name)(pred, torch.rand(4, 10)).backward()
        assert pred.grad is not None and torch.isfinite(pred.grad).all()
        pred.grad = None
