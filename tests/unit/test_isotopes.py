"""Isotope patterns from formulas (hand-computed) and the molecular-ion check of the dataset filters."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem

from nextims.data.isotopes import element_counts, heaviest_isotopologue_offset, isotope_pattern
from nextims.data.spectra import filter_record
from nextims.errors import RecordError
from tests.unit.test_spectrum_and_filters import FILTERS, spec

CHECK = {**FILTERS, "max_above_molecular_ion": 0.1, "isotope_min_abundance": 0.05, "protonation_margin": 1}


def pattern(counts: dict[str, int]) -> np.ndarray:
    low, p = isotope_pattern(counts)
    assert low == 0
    return p


@pytest.mark.parametrize("counts, expected", [
    ({"Cl": 2}, [1.0, 0.0, 2 * 0.2424 / 0.7576, 0.0, (0.2424 / 0.7576) ** 2]),            # 9 : 6 : 1
    ({"Br": 2}, [0.5069 / 0.4931 / 2, 0.0, 1.0, 0.0, 0.4931 / 0.5069 / 2]),                # 1 : 2 : 1
    ({"Cl": 1, "Br": 1}, [0.7576 * 0.5069, 0.0, 0.7576 * 0.4931 + 0.2424 * 0.5069, 0.0, 0.2424 * 0.4931]),
    ({"S": 1}, [1.0, 0.0075 / 0.9499, 0.0425 / 0.9499, 0.0, 0.0001 / 0.9499]),
    ({"Si": 1}, [1.0, 0.04685 / 0.92223, 0.03092 / 0.92223]),
])
def test_hand_computed_patterns(counts: dict[str, int], expected: list[float]) -> None:
    expected = np.array(expected) / max(expected)
    assert pattern(counts) == pytest.approx(expected, abs=1e-9)


def test_tetrachloroethylene_cluster_runs_m_to_m8() -> None:
    counts = element_counts(Chem.MolFromSmiles("ClC(Cl)=C(Cl)Cl"))
    assert counts == {"C": 2, "Cl": 4}
    p = pattern(counts)
    # the binomial Cl4 cluster (M+2 the most abundant), with 13C shoulders at odd offsets
    cl = [(0.7576 ** (4 - k)) * (0.2424 ** k) * [1, 4, 6, 4, 1][k] for k in range(5)]
    assert p[0::2][:5] / p[2] == pytest.approx(np.array(cl) / cl[1], rel=0.03)
    assert p[1] / p[0] == pytest.approx(2 * 0.0107 / 0.9893, rel=0.02)
    assert heaviest_isotopologue_offset(counts, 0.05) == 6 and heaviest_isotopologue_offset(counts, 0.005) == 8


def test_boron_sits_below_the_nominal_mass_and_monoisotopic_elements_are_one_peak() -> None:
    low, p = isotope_pattern({"B": 1})
    assert low == -1 and p == pytest.approx([0.199 / 0.801, 1.0])
    assert isotope_pattern({"F": 3, "I": 1, "P": 1}) == (0, pytest.approx([1.0]))
    with pytest.raises(ValueError, match="negative"):
        isotope_pattern({"C": -1})


def test_molecular_ion_check_drops_impossible_spectra_and_keeps_isotope_clusters() -> None:
    # ethanol (M 46): a 50% peak at m/z 60 cannot be ethanol
    with pytest.raises(RecordError) as err:
        filter_record(spec(peaks=((31.0, 100.0), (46.0, 20.0), (60.0, 50.0))), CHECK, 500)
    assert err.value.reason == "peak_above_molecular_ion" and "m/z 60" in err.value.detail
    # [M+H]+ (m/z 47) and a small peak above are allowed; so is the whole Cl4 cluster of tetrachloroethylene
    filter_record(spec(peaks=((31.0, 100.0), (47.0, 30.0), (60.0, 5.0))), CHECK, 500)
    cluster = ((164.0, 77.0), (166.0, 100.0), (168.0, 48.0), (170.0, 10.0), (129.0, 60.0))
    filter_record(spec("ClC(Cl)=C(Cl)Cl", cluster), CHECK, 500)
    with pytest.raises(RecordError):
        filter_record(spec("ClC(Cl)=C(Cl)Cl", cluster + ((176.0, 20.0),)), CHECK, 500)
    # off when the threshold is null
    filter_record(spec(peaks=((31.0, 100.0), (60.0, 50.0))), {**CHECK, "max_above_molecular_ion": None}, 500)
