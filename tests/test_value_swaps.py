"""Training copies with labelled values swapped (training/value_swaps.py)."""
from __future__ import annotations

import random
from pathlib import Path

from dram.data.listings import Listing
from dram.data.spans import Span
from dram.nn.value_lookup import ValueLookup
from training.loop import TrainSettings, rows_within_budget
from training.value_swaps import swapped, value_pool, with_swapped_copies


def _labelled(lid: str, text: str, values: list[tuple[str, str]], image: Path | None = None) -> Listing:
    spans, cursor = [], 0
    for attribute, value in values:
        start = text.index(value, cursor)
        spans.append(Span(start, start + len(value), attribute))
        cursor = start + 1
    slots = {a: [v for b, v in values if b == a] for a, _ in values} | {"Colour": []}
    return Listing(lid, text, image, spans, {"target_values": slots})


NOTEBOOK = _labelled("1", "Roaring Spring Notebook, 80 Sheets, Roaring Spring",
                     [("Brand", "Roaring Spring"), ("Product Type", "Notebook"), ("Pack Quantity", "80 Sheets"),
                      ("Brand", "Roaring Spring")])
POOL = {"Brand": ["Mead", "Roaring Spring"], "Product Type": ["Composition Book", "Notebook"],
        "Pack Quantity": ["100 Sheets", "80 Sheets"]}


def test_every_value_swapped_keeps_its_label_on_the_new_text_and_every_mention_alike() -> None:
    copy = swapped(NOTEBOOK, POOL, random.Random(0), chance=1.0)
    assert copy.text == "Mead Composition Book, 100 Sheets, Mead"
    assert [(s.attribute, copy.span_text(s)) for s in copy.spans] == [
        ("Brand", "Mead"), ("Product Type", "Composition Book"), ("Pack Quantity", "100 Sheets"), ("Brand", "Mead")]
    assert copy.target_values() == {"Brand": ["Mead"], "Product Type": ["Composition Book"],
                                    "Pack Quantity": ["100 Sheets"], "Colour": []}  # n/a stays n/a
    assert NOTEBOOK.text.startswith("Roaring") and NOTEBOOK.target_values()["Brand"][0] == "Roaring Spring"


def test_values_left_as_they_are_move_with_the_swapped_ones_before_them() -> None:
    rng = random.Random(0)
    copies = [swapped(NOTEBOOK, POOL, rng, chance=0.5) for _ in range(40)]
    assert any(c is None for c in copies) and any(c is not None and "Notebook" in c.text for c in copies)
    for copy in filter(None, copies):
        labelled = [(s.attribute, copy.span_text(s)) for s in copy.spans]
        assert [a for a, _ in labelled] == ["Brand", "Product Type", "Pack Quantity", "Brand"]
        assert all(value in POOL[attribute] for attribute, value in labelled)
        assert labelled[0] == labelled[3]


def test_a_value_overlapping_another_label_is_not_swapped() -> None:
    listing = _labelled("2", "Navy Blue Shirt", [("Colour", "Navy Blue"), ("Colour", "Blue"), ("Type", "Shirt")])
    copy = swapped(listing, {"Colour": ["Navy Blue", "Red"], "Type": ["Shirt", "Tee"]}, random.Random(0), chance=1.0)
    assert copy.text == "Navy Blue Tee"
    assert [(s.attribute, copy.span_text(s)) for s in copy.spans] == [
        ("Colour", "Navy Blue"), ("Colour", "Blue"), ("Type", "Tee")]


def test_only_photo_less_listings_are_copied_within_the_room_and_each_copy_reads_its_sources_lookup() -> None:
    with_photo = _labelled("3", "Mead Notebook", [("Brand", "Mead"), ("Product Type", "Notebook")], image=Path("x.jpg"))
    listings = [NOTEBOOK, with_photo, _labelled("4", "Mead Composition Book", [("Brand", "Mead")])]
    lookups = [ValueLookup({}), ValueLookup({}), ValueLookup({})]
    rows, row_lookups = with_swapped_copies(listings, lookups, chance=1.0, seed=13, room=10)
    assert [r.id for r in rows] == ["1", "3", "4", "1~swapped", "4~swapped"]
    assert row_lookups[3] is lookups[0] and row_lookups[4] is lookups[2]
    assert value_pool(listings)["Brand"] == ["Mead", "Roaring Spring"]
    rows, _ = with_swapped_copies(listings, lookups, chance=1.0, seed=13, room=1)
    assert len(rows) == 4
    assert with_swapped_copies(listings, lookups, chance=0.0, seed=13, room=10)[0] == listings


def test_copies_fit_the_step_budget() -> None:
    # 1,000 steps of 16 in at least 3 passes: up to 5,333 rows keep the budget at 1,000 steps.
    settings = TrainSettings(target_steps=1000, batch_size=16, min_epochs=3)
    assert rows_within_budget(959, settings) == 5333 - 959
    assert rows_within_budget(6000, settings) == 0


def test_training_under_the_step_budget_adds_the_copies_and_keeps_the_steps(tiny_encoder_dir, one_torch_thread) -> None:
    from tests.tiny_model import tiny_config, train_listings
    from training.train import train_model

    listings = train_listings()
    config = tiny_config(tiny_encoder_dir, "text-only", use_arm=False)
    settings = TrainSettings(target_steps=6, min_epochs=1, batch_size=4, cache_dir=None)
    _, _, metrics = train_model(config, listings, None, settings, "cpu", progress=False)
    copies = metrics["train"]["swapped_copies"]
    assert 0 < copies <= len(listings) and metrics["train"]["listings"] == len(listings) + copies
    steps = len(metrics["train"]["history"]) * -(-metrics["train"]["listings"] // 4)
    assert 6 <= steps < 6 + -(-metrics["train"]["listings"] // 4)  # the budget's steps, not one epoch more
    _, _, metrics = train_model(config, listings, None, TrainSettings(epochs=1, batch_size=4, cache_dir=None, value_swap=0.5),
                                "cpu", progress=False)
    assert metrics["train"]["swapped_copies"] == 0  # a fixed number of epochs: copies would add steps
