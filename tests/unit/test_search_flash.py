"""ms_entropy's Flash entropy search, as the search benchmark compares with it."""

from __future__ import annotations

import pytest

pytest.importorskip("ms_entropy")

from nextims.search.flash import build_flash, flash_peaks, flash_top_k  # noqa: E402

LIBRARY = [(10, 100.0, flash_peaks([41, 55, 100], [10, 100, 50])),
           (11, 120.0, flash_peaks([41, 55, 77, 120], [100, 30, 20, 5])),
           (12, 103.0, flash_peaks([41, 55, 99], [10, 100, 50]))]


def test_open_search_ranks_the_same_spectrum_first_and_keeps_the_molecular_ion() -> None:
    library = build_flash(LIBRARY)
    assert sorted(library.rows.tolist()) == [10, 11, 12] and library.build_s >= 0
    rows, scores = flash_top_k(library, 100.0, flash_peaks([41, 55, 100], [10, 100, 50]), 3)
    assert rows.tolist() == [10, 12, 11]
    assert scores[0] == pytest.approx(1.0, abs=1e-5) and scores[0] > scores[1] > scores[2]


def test_identity_search_scores_only_entries_within_the_mass_window() -> None:
    library = build_flash(LIBRARY)
    rows, scores = flash_top_k(library, 100.0, flash_peaks([41, 55, 77, 120], [100, 30, 20, 5]), 3, mass_window=5)
    by_row = dict(zip(rows.tolist(), scores.tolist()))
    assert by_row[11] == 0.0  # 120 is outside 100 +- 5, however alike its peaks
    assert by_row[10] > 0 and by_row[12] > 0
