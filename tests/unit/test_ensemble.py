"""SpectrumEnsemble: the mean of its members' base-peak-scaled spectra, and their mean BDE."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nextims.models.ensemble import SpectrumEnsemble

MEMBER = {"_target_": "tests.unit.test_ensemble.ScaledSpectrum", "bins": 4}


class ScaledSpectrum(nn.Module):
    """A member whose square-root spectrum is its `scale` times the batch's `sqrt_spectrum`, plus `shift` per bond."""

    def __init__(self, bins: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(bins))
        self.shift = nn.Parameter(torch.zeros(()))

    def forward(self, batch: dict, with_bde: bool = False):
        spectrum = batch["sqrt_spectrum"] * self.scale
        return (spectrum, batch["bonds"] + self.shift) if with_bde else spectrum


def test_ensemble_averages_base_peak_scaled_intensities() -> None:
    ensemble = SpectrumEnsemble(MEMBER, size=2)
    with torch.no_grad():
        ensemble.members[0].scale.copy_(torch.tensor([1.0, 2.0, 0.0, 1.0]))
        ensemble.members[1].scale.copy_(torch.tensor([3.0, 0.0, 3.0, 0.0]))
    batch = {"sqrt_spectrum": torch.ones(1, 4)}
    # intensities: member 0 [1, 4, 0, 1] / 4, member 1 [9, 0, 9, 0] / 9; mean [0.625, 0.5, 0.5, 0.125]
    expected = torch.tensor([[0.625, 0.5, 0.5, 0.125]]).sqrt()
    torch.testing.assert_close(ensemble(batch), expected)


def test_ensemble_of_one_keeps_the_shape_of_the_spectrum() -> None:
    ensemble = SpectrumEnsemble(MEMBER, size=1)
    batch = {"sqrt_spectrum": torch.tensor([[1.0, 2.0, 0.0, 4.0], [0.0, 0.0, 0.0, 0.0]])}
    torch.testing.assert_close(ensemble(batch), torch.tensor([[0.25, 0.5, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]))


def test_ensemble_bde_is_the_members_mean() -> None:
    ensemble = SpectrumEnsemble(MEMBER, size=3)
    with torch.no_grad():
        for member, shift in zip(ensemble.members, (1.0, 2.0, 6.0)):
            member.shift.fill_(shift)
    spectrum, bde = ensemble({"sqrt_spectrum": torch.ones(2, 4), "bonds": torch.tensor([10.0, 20.0])},
                             with_bde=True)
    assert spectrum.shape == (2, 4)
    torch.testing.assert_close(bde, torch.tensor([13.0, 23.0]))


def test_ensemble_members_are_independent_modules() -> None:
    ensemble = SpectrumEnsemble(MEMBER, size=2)
    assert ensemble.members[0].scale is not ensemble.members[1].scale
    assert set(ensemble.state_dict()) == {"members.0.scale", "members.0.shift", "members.1.scale", "members.1.shift"}
    assert ensemble.needs_graph is False


def test_ensemble_needs_a_member() -> None:
    with pytest.raises(ValueError, match="at least one member"):
        SpectrumEnsemble(MEMBER, size=0)
