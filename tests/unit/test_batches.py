"""The epoch plan of mixed training: observed records and transfer molecules."""

from __future__ import annotations

import numpy as np

from nextims.training.batches import _plan, epoch_batch_count


def test_records_alone_keep_the_seeded_order_and_every_record_once() -> None:
    records = np.arange(10, 30)
    plan = _plan(records, 6, seed=3, epoch=2)
    assert [s for s, _ in plan] == ["records"] * 4 and len(plan) == epoch_batch_count(20, 6)
    expected = np.random.default_rng(3 * 100003 + 2).permutation(records)
    assert np.array_equal(np.concatenate([idx for _, idx in plan]), expected)


def test_transfer_epochs_cycle_through_every_molecule_in_their_own_batch_size() -> None:
    seen = []
    for epoch in range(3):
        plan = _plan(np.arange(5), 2, seed=0, epoch=epoch, transfer_size=9, per_epoch=6, transfer_batch_size=4)
        assert len(plan) == epoch_batch_count(5, 2, 9, 6, 4) == 3 + 2
        transfer = [idx for s, idx in plan if s == "transfer"]
        assert sorted(len(idx) for idx in transfer) == [2, 4]
        seen.append(np.concatenate(transfer))
    # 18 draws over 9 molecules: each exactly twice, in the order of one fixed permutation
    assert np.bincount(np.concatenate(seen), minlength=9).tolist() == [2] * 9
