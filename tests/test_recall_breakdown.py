"""The recall breakdown's cause rules on hand-made listings and predictions (no model)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from benchmarks.recall_breakdown import OTHER, RARE_SLOTS, Evidence, breakdown_table, cause_of, missed_slots
from dram.data.photo_sources import PhotoFolder
from dram.data.listings import Listing, LoadReport, listing_from_record
from dram.data.spans import Span

TEXT = "Acme toner cartridge, COLOR: BlackALTERNATE matte 13w x 4d"
TRAINED = ["Brand", "Color", "Product Type", "Material", "Width", "Rarely Seen", "Never Started"]


def listing(values: dict[str, list[str]], text: str = TEXT) -> Listing:
    made = listing_from_record({"id": "1", "text": text, "values": values}, where="test", photos=PhotoFolder(Path(".")),
                               report=LoadReport())
    assert made is not None
    return made


def span(text: str, attribute: str, confidence: float = 0.9, within: str = TEXT) -> Span:
    start = within.index(text)
    return Span(start, start + len(text), attribute, text, confidence)


EVIDENCE = Evidence(
    trained_attributes=frozenset(TRAINED), one_tag_per_word=True,
    training_values={"Brand": {"acme"}, "Color": {"black"}, "Product Type": {"toner cartridge"}, "Width": {"13"},
                     "Rarely Seen": {"matte"}, "Never Started": {"matte"}},
    training_slots=Counter({a: 100 for a in TRAINED} | {"Rarely Seen": RARE_SLOTS - 1}),
    started=frozenset(TRAINED) - {"Never Started"})


@pytest.mark.parametrize("values, attribute, predicted, cause", [
    ({"Color": ["Blue"]}, "Color", [], "not in text"),
    ({"Finish": ["matte"]}, "Finish", [], "attribute not trained"),
    ({"Color": ["Black"]}, "Color", [span("Black", "Color", 0.4), span("toner", "Color", 0.8)],
     "ranked below another value"),
    ({"Product Type": ["toner"]}, "Product Type", [span("Acme toner", "Product Type")], "boundary: too long"),
    ({"Product Type": ["toner cartridge"]}, "Product Type", [span("toner", "Product Type")], "boundary: too short"),
    ({"Product Type": ["toner cartridge"]}, "Product Type", [span("Acme toner", "Product Type")], "boundary: crossing"),
    ({"Brand": ["Acme"], "Manufacturer": ["Acme"]}, "Brand", [], "words shared with another attribute"),
    ({"Material": ["matte"]}, "Material", [span("matte", "Color")], "wrong attribute"),
    ({"Width": ["13"]}, "Width", [], "glued to codes or units"),
    ({"Never Started": ["matte"]}, "Never Started", [], "attribute never started"),
    ({"Rarely Seen": ["matte"]}, "Rarely Seen", [], f"few examples (< {RARE_SLOTS} training listings)"),
    ({"Material": ["matte"]}, "Material", [], "value never seen in training"),
    ({"Product Type": ["toner cartridge"]}, "Product Type", [span("Acme", "Product Type")], "distractor"),
    ({"Brand": ["Acme"]}, "Brand", [], OTHER),
])
def test_each_rule_names_its_cause(values: dict, attribute: str, predicted: list[Span], cause: str) -> None:
    [miss] = [m for m in missed_slots(listing(values), predicted) if m.attribute == attribute]
    assert cause_of(miss, EVIDENCE) == cause


def test_the_first_rule_that_holds_wins() -> None:
    """A glued value extracted under another attribute is a wrong attribute, the earlier rule."""
    [miss] = missed_slots(listing({"Color": ["Black"]}), [span("Black", "Material")])
    assert cause_of(miss, EVIDENCE) == "wrong attribute"


def test_only_valued_slots_answered_wrongly_or_not_at_all_are_misses() -> None:
    labelled = listing({"Brand": ["Acme"], "Color": ["Black"], "Material": [], "Product Type": ["toner cartridge"]})
    predicted = [span("Acme", "Brand"), span("cartridge", "Product Type"), span("matte", "Material")]
    assert [(m.attribute, m.answer) for m in missed_slots(labelled, predicted)] == [
        ("Color", None), ("Product Type", "cartridge")]  # Brand right, Material n/a (a precision matter)


def test_evidence_counts_training_listings_with_a_value() -> None:
    training = [listing({"Color": ["Black"], "Material": []}), listing({"Color": ["black "]})]
    evidence = Evidence.gather(["Color", "Material"], True, training, [[span("Acme", "Brand")], []])
    assert evidence.training_slots == Counter({"Color": 2}) and evidence.training_values == {"Color": {"black"}}
    assert evidence.started == frozenset({"Brand"})


def test_table_shares_add_up() -> None:
    table = breakdown_table(["boundary: too long", "boundary: too long", OTHER, "distractor"], n_valued_slots=40)
    assert "| boundary: too long | 2 | 50.0% | 5.00 |" in table and "| all misses | 4 | 100% | 10.00 |" in table
