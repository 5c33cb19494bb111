"""The training budget follows the data: step budget, epoch bounds, early stop, validation split."""
from __future__ import annotations

import pytest

from dram.data.listings import Listing
from training.common import split_validation
from training.loop import TrainSettings, length_bucketed, patience_epochs, planned_epochs


@pytest.mark.parametrize("n_train, expected", [
    (200, 40),  # 7 steps an epoch: capped at max_epochs
    (1000, 32),  # 32 steps an epoch: ceil(1000 / 32)
    (4000, 8),
    (30000, 3),  # large sets still see every listing min_epochs times
])
def test_planned_epochs_aim_at_a_step_budget_within_bounds(n_train: int, expected: int) -> None:
    settings = TrainSettings(target_steps=1000, min_epochs=3, max_epochs=40, batch_size=32)
    assert planned_epochs(n_train, settings) == expected


def test_the_default_budget_gives_a_few_hundred_listings_the_whole_step_target() -> None:
    settings = TrainSettings()
    assert planned_epochs(190, settings) * 12 >= settings.target_steps  # 12 steps an epoch at batch 16
    assert planned_epochs(960, settings) == 17


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
    assert split_validation(listings[:15], seed=3)[1] == []


def test_early_stop_waits_for_half_the_budget_then_keeps_the_best_epoch(monkeypatch) -> None:
    """A fluke on epoch 1 and zeros while the tagger learns to tag must not end training."""
    import torch

    import training.loop as loop

    scores = iter([0.01, 0.0, 0.0, 0.0, 0.0, 0.3, 0.5, 0.4, 0.4, 0.4, 0.6, 0.6])
    # Value F1 moves the other way: the epoch is chosen on TAG-F1.
    monkeypatch.setattr(loop, "evaluate", lambda *a, **k: (lambda f: {"tag_f1": f, "cls_f1": 0.0,
                                                                     "value": {"f1": 1 - f}})(next(scores)))

    class Data:
        texts = [type("T", (), {"input_ids": [1, 2]})()] * 4

        def __len__(self) -> int:
            return 4

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        device = torch.device("cpu")
        precision = "fp32"

        def encode(self, batch):
            return batch

        def loss(self, encoded, batch):
            return (self.w ** 2).sum() + 1, {"bce": 0.0}

    monkeypatch.setattr(loop, "make_batch", lambda *a, **k: type("B", (), {"to": lambda self, d: self})())
    tokenizer = type("Tok", (), {"pad_token_id": 0})()
    result = loop.fit(Model(), tokenizer, Data(), Data(), TrainSettings(epochs=12, patience=3, batch_size=4,
                                                                          cache_dir=None), progress=False)
    # Epochs 2-5 score 0 (4 epochs without improvement) and training goes on: no stop before half of
    # 12 epochs. After it, 3 epochs without beating epoch 7's 0.5 end training at epoch 10.
    assert [r["epoch"] for r in result["history"]] == list(range(1, 11))
    assert result["best_epoch"] == 7 and result["best_valid_tag_f1"] == 0.5


@pytest.mark.parametrize("planned, patience, expected", [(12, 3, 3), (40, 3, 10), (17, 3, 4), (40, 0, 0)])
def test_patience_grows_to_a_quarter_of_a_long_budget(planned: int, patience: int, expected: int) -> None:
    """200 listings get 40 short, noisy epochs: 3 without a gain is no plateau there."""
    assert patience_epochs(planned, TrainSettings(patience=patience)) == expected

