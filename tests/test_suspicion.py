"""Corrections checked before they teach: the flag rule on hand-made beliefs, the store plumbing with a
stand-in model, the gate's 'what moved', and the issue's probe end to end on the default model."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from benchmarks.bench_suspicion import PROBE_SIZE, probe_corrections, save_corrections
from dram.data.listings import Listing
from dram.data.spans import Span
from dram.nn.value_lookup import ValueLookup
from review.suspicion import Suspicion, check_corrections, contradicted_spans, flagged_for
from store import open_store
from tests.tiny_model import listing
from training import finetune as finetune_module
from training.finetune import FinetuneSettings, finetune, flagged_failures
from training.loop import TrainSettings
from training.moved_values import moved_summary, moved_values

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ATTRIBUTES = ["brand", "colour", "article_type"]
TEXT = "Nike Black Shoes"


def lookup(black_as_colour: int = 643, black_as_brand: int = 0) -> ValueLookup:
    """The training data's counts: 'black' labelled colour (and brand) in that many listings."""
    rows = ([listing("Nike Black Shoes", [("Black", "colour")], f"c{i}") for i in range(black_as_colour)] +
            [listing("Black Shoes", [("Black", "brand")], f"b{i}") for i in range(black_as_brand)])
    return ValueLookup.from_listings(rows)


def said(attribute: str, confidence: float) -> list[Span]:
    """The model's spans on TEXT: 'Black' as `attribute` at `confidence`."""
    return [Span(0, 4, "brand", "Nike", 0.99), Span(5, 10, attribute, "Black", confidence)]


def flagged(corrected_attribute: str, predicted: list[Span], counts: ValueLookup,
            attributes: list[str] = ATTRIBUTES) -> list[str]:
    corrected = [Span(0, 4, "brand"), Span(5, 10, corrected_attribute)]
    return [span.attribute for span, _, _ in contradicted_spans(TEXT, corrected, predicted, counts, attributes)]


def test_a_correction_against_a_sure_model_and_a_clear_data_convention_is_flagged() -> None:
    assert flagged("brand", said("colour", 0.99), lookup()) == ["brand"]
    assert flagged("colour", said("colour", 0.99), lookup()) == []  # agrees


@pytest.mark.parametrize("predicted, counts, why", [
    (said("colour", 0.80), lookup(), "the model is unsure"),
    (said("colour", 0.99), lookup(black_as_colour=3), "too few training listings"),
    (said("colour", 0.99), lookup(black_as_colour=80, black_as_brand=20), "the data reads it two ways"),
    (said("article_type", 0.99), lookup(), "the model and the data disagree with each other"),
    ([Span(0, 4, "brand", "Nike", 0.99)], lookup(), "the model tags nothing there"),
])
def test_a_flag_needs_both_the_model_and_the_data_to_agree_strongly(predicted: list[Span], counts: ValueLookup,
                                                                    why: str) -> None:
    assert flagged("brand", predicted, counts) == [], why


def test_an_attribute_the_model_does_not_know_is_no_contradiction() -> None:
    assert flagged("Metal Type", said("colour", 0.99), lookup(), ATTRIBUTES) == []


@dataclass
class StandIn:
    """What `check_corrections` reads of an `Extractor`: its attributes, lookup and extractions."""

    spans: dict[str, list[Span]]
    attributes: list[str] = field(default_factory=lambda: list(ATTRIBUTES))
    model: object = None

    def __post_init__(self) -> None:
        self.model = type("Model", (), {"value_lookup": lookup()})()

    def extract_batch(self, items, batch_size: int = 32):
        return [type("Extraction", (), {"spans": self.spans[text]})() for text, _ in items]


def test_the_store_s_current_corrections_are_checked_and_named(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'store.sqlite'}") as store:
        wrong = store.add_listing(TEXT, external_id="w")
        store.save_correction(wrong, "alice", [Span(0, 4, "brand"), Span(5, 10, "colour")])
        fixed_later = store.save_correction(wrong, "bob", [Span(0, 4, "brand"), Span(5, 10, "brand")])
        right = store.add_listing("Puma Black Shoes")
        store.save_correction(right, "alice", [Span(0, 4, "brand"), Span(5, 10, "colour")])
        model = StandIn({TEXT: said("colour", 0.99), "Puma Black Shoes": said("colour", 0.99)})

        flags = check_corrections(store, model)
        assert flagged_for(store, model, wrong) == flags
        assert flagged_for(store, model, right) == []
    assert flags == [Suspicion(wrong, "w", fixed_later, 5, 10, "Black", "brand", "colour", 0.99, 643, 1.0)]
    assert "643 training listings" in flags[0].describe()


def test_what_moved_counts_values_whose_attribute_changed() -> None:
    old = [[Span(5, 10, "colour"), Span(0, 4, "brand")], [Span(0, 3, "colour")], [Span(0, 3, "colour")]]
    new = [[Span(5, 10, "brand"), Span(0, 4, "brand")], [Span(0, 3, "brand")], [Span(0, 3, "colour"), Span(0, 3, "brand")]]
    moved = moved_values(old, new)
    assert moved == Counter({("colour", "brand"): 2})  # the third still says colour: it did not move
    assert moved_summary(moved) == "2 values moved colour -> brand"
    assert moved_summary(Counter()) == "nothing moved"


def flag(text: str = "Black", agreed: str = "colour", corrected: str = "brand", listing_id: int = 1) -> Suspicion:
    return Suspicion(listing_id, None, listing_id, 0, len(text), text, corrected, agreed, 0.99, 643, 1.0)


def test_the_gate_refuses_only_values_moved_the_way_the_flags_ask() -> None:
    flags = [flag(listing_id=i) for i in range(1, 5)]
    (reason,) = flagged_failures(flags, Counter({("colour", "brand"): 3}))
    assert reason.startswith("3 values moved colour -> brand on the 4 flagged listings") and "'Black'" in reason
    assert flagged_failures(flags, Counter({("colour", "brand"): 2})) == []  # one or two: a second look
    assert flagged_failures(flags, Counter({("brand", "colour"): 9})) == []  # not what the flags ask
    assert flagged_failures([], Counter({("colour", "brand"): 9})) == []


def test_a_fine_tune_that_learned_flagged_corrections_is_not_promoted(tmp_path: Path, tiny_encoder_dir: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate's wiring with the tiny model: its beliefs are random, so the check and what moved are given."""
    from dram.checkpoint import save_checkpoint
    from tests.test_finetune import _figures, data
    from tests.tiny_model import tiny_model

    model, tokenizer = tiny_model(tiny_encoder_dir, "text-only")
    source = save_checkpoint(model, tokenizer, tmp_path / "v0", {})
    db_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    with open_store(db_url) as store:
        for item in data("corr"):
            store.save_correction(store.add_listing(item.text, external_id=item.id), "alice", item.spans)
    flags = [replace(flag(listing_id=i), external_id=f"corr-{i - 1}") for i in (1, 2, 3)]
    monkeypatch.setattr(finetune_module, "check_corrections", lambda *_args: flags)
    monkeypatch.setattr(finetune_module, "moved_values", lambda *_args: Counter({("colour", "brand"): 3}))
    _figures(monkeypatch, old={"heldout": 0.9, "corrections": 0.9}, new={"heldout": 0.9, "corrections": 0.95})
    settings = TrainSettings(epochs=1, batch_size=4, seed=13, cache_dir=tmp_path / "features")

    def run(out: str, **options):
        with open_store(db_url) as store:
            return finetune(source, store, tmp_path / out, data("replay"), data("heldout"), settings,
                            FinetuneSettings(0.34, 4, **options), progress=False)

    refused = run("v1")
    assert refused.active is False and refused.metrics["promotion"]["promoted"] is False
    assert refused.metrics["promotion"]["failed"][0].startswith("3 values moved colour -> brand on the 3 flagged")
    assert refused.metrics["suspicion"]["moved_on_flagged"] == "3 values moved colour -> brand"
    assert len(json.loads((tmp_path / "v1" / "metrics.json").read_text())["suspicion"]["flagged"]) == 3
    _figures(monkeypatch, old={"heldout": 0.9, "corrections": 0.9}, new={"heldout": 0.9, "corrections": 0.95})
    forced = run("v2", promote=True)
    assert forced.active and forced.metrics["promotion"]["forced"]


def test_the_probe_is_flagged_and_not_promoted(app_checkpoint: Path, tmp_path: Path) -> None:
    """Issue 21's probe on the default model: 30 Myntra listings with every colour relabelled brand,
    fine-tuned with the defaults (the bundled replay and replay test)."""
    db_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    probe = probe_corrections()
    assert len(probe) == PROBE_SIZE and all("colour" not in {s.attribute for s in l.spans} for l in probe)
    with open_store(db_url) as store:
        save_corrections(store, probe)
        result = finetune(app_checkpoint, store, tmp_path / "v1", *bundled(), TrainSettings(seed=13, epochs=4,
                          cache_dir=tmp_path / "features"), progress=False)
    suspicion, promotion = result.metrics["suspicion"], result.metrics["promotion"]
    assert len({f["listing_id"] for f in suspicion["flagged"]}) >= 27
    assert promotion["promoted"] is False and not result.active
    assert any("values moved colour -> brand" in reason for reason in promotion["failed"])


def bundled() -> tuple[list[Listing], list[Listing]]:
    """The fine-tune's default replay data and replay test: the bundled Myntra train and test splits."""
    from dram.data.readers import read_listings
    from dram.paths import BUNDLE

    return read_listings(BUNDLE / "train.jsonl")[0], read_listings(BUNDLE / "test.jsonl")[0]
