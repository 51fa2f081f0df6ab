"""The MoE student: sparse fingerprint embedding, top-k gating, load balancing, and the distillation loss."""

from __future__ import annotations

import pytest
import torch

from nextims.losses import DistillationLoss, spectrum_loss
from nextims.models.student import MoEResidualBlock, SparseFingerprintEmbedding, StudentMoE


def _fingerprints(n: int = 6, dim: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    fp = torch.randint(0, 4, (n, dim), generator=g).float() * (torch.rand(n, dim, generator=g) < 0.2)
    fp[2] = 0  # a molecule with no set bit still gets the bias
    return fp


def test_sparse_embedding_equals_dense_linear_of_log_counts() -> None:
    emb = SparseFingerprintEmbedding(64, 8)
    fp = _fingerprints()
    dense = torch.log1p(fp) @ emb.bag.weight + emb.bias
    assert torch.allclose(emb(fp), dense, atol=1e-6)


def test_top_k_routing_uses_k_experts_with_weights_summing_to_one() -> None:
    block = MoEResidualBlock(16, num_experts=6, top_k=2, dropout=0.0)
    h = torch.randn(10, 16)
    probs, top_i, top_w = block.route(h)
    assert top_i.shape == (10, 2) and (top_i[:, 0] != top_i[:, 1]).all()
    assert torch.allclose(top_w.sum(1), torch.ones(10))
    assert torch.equal(top_i[:, 0], probs.argmax(1))


def test_block_output_is_the_gate_weighted_sum_of_the_chosen_experts() -> None:
    torch.manual_seed(0)
    block = MoEResidualBlock(16, num_experts=4, top_k=2, dropout=0.0).eval()
    x = torch.randn(5, 16)
    h = torch.relu(block.norm(x))
    _, top_i, top_w = block.route(h)
    expected = x.clone()
    for r in range(5):
        for s in range(2):
            expected[r] += top_w[r, s] * block.experts[int(top_i[r, s])](h[r:r + 1])[0]
    assert torch.allclose(block(x), expected, atol=1e-5)


def test_balance_loss_is_one_when_uniform_and_num_experts_when_collapsed() -> None:
    block = MoEResidualBlock(8, num_experts=4, top_k=1, dropout=0.0)
    with torch.no_grad():
        block.gate.weight.zero_()
        block.gate.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 0.0]))
    x = torch.randn(400, 8)
    block(x)
    # equal probabilities: top-1 ties go to one expert, but P is uniform: E * (1 * 1/4) = 1
    assert block.balance_loss.item() == pytest.approx(1.0, abs=1e-5)
    with torch.no_grad():
        block.gate.bias.copy_(torch.tensor([20.0, 0.0, 0.0, 0.0]))
    block(x)
    assert block.balance_loss.item() == pytest.approx(4.0, abs=1e-3)


def test_balance_loss_pushes_the_gate_toward_unused_experts() -> None:
    block = MoEResidualBlock(8, num_experts=4, top_k=1, dropout=0.0)
    with torch.no_grad():
        block.gate.bias.copy_(torch.tensor([2.0, 0.0, 0.0, 0.0]))
    block(torch.randn(200, 8))
    block.balance_loss.backward()
    assert block.gate.bias.grad[0] > 0 > block.gate.bias.grad[1:].max()  # descent lowers the favoured expert


def test_student_forward_gradients_and_validation() -> None:
    model = StudentMoE(fp_dim=64, num_bins=40, hidden_dim=16, num_blocks=2, num_experts=4, top_k=2)
    batch = {"fp": _fingerprints(), "mass": torch.tensor([30, 12, 40, 25, 33, 18])}
    out = model(batch)
    assert out.shape == (6, 41) and (out >= 0).all()
    assert (out[1, 15:] == 0).all()  # nothing above the molecular mass + margin
    (out.sum() + model.balance_loss).backward()
    assert all(p.grad is not None for name, p in model.named_parameters() if "experts" not in name)
    assert sum(p.grad.abs().sum() for p in model.parameters() if p.grad is not None) > 0
    single = StudentMoE(fp_dim=64, num_bins=40, hidden_dim=16, num_blocks=1, num_experts=1, top_k=1)
    single(batch)
    assert single.balance_loss.item() == 1.0
    with pytest.raises(ValueError, match="top_k"):
        MoEResidualBlock(8, num_experts=2, top_k=3)


def test_distillation_loss_hand_computed() -> None:
    cosine = spectrum_loss("cosine", mass_power=0.0)
    fn = DistillationLoss(lambda_spectrum=1.0, lambda_soft=0.5, lambda_balance=0.1, spectrum=cosine)
    observed = torch.tensor([[0.0, 1.0, 0.0]])
    teacher = torch.tensor([[0.0, 1.0, 1.0]])
    predicted = torch.tensor([[0.0, 1.0, 0.0]])  # matches observed; cos with teacher's sqrt = 1/sqrt(2)
    total, parts = fn(predicted_spectrum=predicted, target_spectrum=observed, teacher_spectrum=teacher,
                      balance_loss=torch.tensor(1.5))
    soft = 1 - 2 ** -0.5
    assert parts["spectrum"] == pytest.approx(0.0, abs=1e-6) and parts["soft"] == pytest.approx(soft, abs=1e-6)
    assert total.item() == pytest.approx(0.5 * soft + 0.1 * 1.5, abs=1e-6)
    total, parts = fn(predicted_spectrum=predicted, target_spectrum=teacher)
    assert parts["soft"] == 0.0 and parts["balance"] == 0.0 and total.item() == pytest.approx(soft, abs=1e-6)
