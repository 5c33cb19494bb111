"""The training budget follows the data: step budget, epoch bounds, early stop, validation split."""
from __future__ import annotations

import pytest

from dram.listings import Listing
from training.common import split_validation
from training.loop import TrainSettings, length_bucketed, planned_epochs


@pytest.mark.parametrize("n_train, expected", [
    (200, 40),  # 7 steps an epoch: capped at max_epochs
    (1000, 32),  # 32 steps an epoch: ceil(1000 / 32)
    (4000, 8),
    (30000, 3),  # large sets still see every listing min_epochs times
])
def test_planned_epochs_aim_at_a_step_budget_within_bounds(n_train: int, expected: int) -> None:
    settings = TrainSettings(target_steps=1000, min_epochs=3, max_epochs=40, batch_size=32)
    assert planned_epochs(n_train, settings) == expected


def test_explicit_epochs_win() -> None:
    assert planned_epochs(200, TrainSettings(epochs=2)) == 2


def test_length_bucketed_batches_cover_every_listing_once_with_similar_lengths() -> None:
    import random

    lengths = [random.Random(1).randint(5, 300) for _ in range(500)]
    batches = length_bucketed(list(range(500)), lengths, 16, random.Random(2))
    assert sorted(i for b in batches for i in b) == list(range(500))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 40  # unsorted batches of 16 from 5..300 spread ~250


def test_split_validation_is_seeded_disjoint_and_skips_tiny_sets() -> None:
    listings = [Listing(id=str(i), text="x") for i in range(200)]
    train, valid = split_validation(listings, fraction=0.1, seed=3)
    assert len(valid) == 20 and len(train) == 180 and not {l.id for l in train} & {l.id for l in valid}
    assert [l.id for l in split_validation(listings, fraction=0.1, seed=3)[1]] == [l.id for l in valid]
    assert split_validation(listings[:15])[1] == []
