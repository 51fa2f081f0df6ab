"""NEIMS, its mass-anchored head, and the k-NN baseline."""

from __future__ import annotations

import numpy as np
import torch

from nextims.models.heads import BidirectionalSpectrumHead
from nextims.models.knn import TanimotoKNN
from nextims.models.neims import NEIMS


def test_head_zeroes_bins_above_mass_and_anchors_reverse_at_mass() -> None:
    torch.manual_seed(0)
    head = BidirectionalSpectrumHead(8, num_bins=50, reverse_margin=2)
    with torch.no_grad():
        head.gate.weight.zero_()
        head.gate.bias.fill_(-50.0)  # gate ~ 0: reverse head only
        head.reverse_head.weight.zero_()
        head.reverse_head.bias.zero_()
        head.reverse_head.bias[2] = 1.0  # offset 2 from the anchor (mass + 2) = the molecular ion
    out = head(torch.randn(2, 8), torch.tensor([30, 12]))
    assert out.shape == (2, 51)
    assert out[0, 33:].abs().sum() == 0 and out[1, 15:].abs().sum() == 0
    assert out[0, 30] > 0.99 and out[1, 12] > 0.99
    assert out[0, :30].abs().max() < 1e-6


def test_neims_forward_nonnegative_and_gradients() -> None:
    model = NEIMS(input_dim=64, num_bins=100, hidden_dim=32, num_blocks=2)
    batch = {"fp": torch.randint(0, 3, (5, 64)).float(), "mass": torch.tensor([50, 60, 70, 80, 99])}
    out = model(batch)
    assert out.shape == (5, 101) and (out >= 0).all()
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_knn_returns_spectrum_of_most_similar_compound() -> None:
    fps = np.array([[1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 1, 0]], dtype=np.float32)
    spectra = np.eye(3, 5, dtype=np.float32)
    knn = TanimotoKNN(k=1).fit(fps, spectra)
    pred = knn.predict(np.array([[2, 1, 0, 0], [0, 0, 0, 5]], dtype=np.float32))
    np.testing.assert_array_equal(pred, spectra[[0, 1]])
