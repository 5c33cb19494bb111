"""The decode-time repair prototype: with every repair off it decodes exactly as the model does, and
the dictionary repairs move span bounds only to training values of the span's own attribute."""
from __future__ import annotations

from collections import Counter

import pytest
import torch

from benchmarks.recall_repairs import (Decoded, Dump, Repairs, Row, dump_decoder_inputs, extend_to_known,
                                       known_values, load_dump, repaired_spans, save_dump, score_spans,
                                       span_probability)
from dram.data.tagging import split_words
from dram.nn.model import DecodedSpan
from dram.nn.value_lookup import ValueLookup
from tests.tiny_model import tiny_model, train_listings
from training.loop import predict, prepare, score

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXT = "wool jacket navy blue with navy belt"
ATTRIBUTES = ["colour", "material", "article_type"]


def dump_of(text: str, lookup: dict[tuple[str, ...], Counter]) -> tuple[Dump, Row]:
    words = split_words(text)
    row = Row(0, text, words, None, torch.zeros(len(words), 1 + 2 * len(ATTRIBUTES)), torch.ones(len(ATTRIBUTES)))
    return Dump(ATTRIBUTES, False, 0.5, {}, [row], [], lookup), row


def test_known_values_finds_every_occurrence_of_the_attributes_values_overlaps_included() -> None:
    lookup = {("navy",): Counter(colour=3), ("navy", "blue"): Counter(colour=2), ("wool",): Counter(material=1, colour=4)}
    dump, row = dump_of(TEXT, lookup)
    assert known_values(dump, row.words, "colour", 0.5) == [(0, 1), (2, 3), (2, 4), (5, 6)]
    assert known_values(dump, row.words, "material", 0.5) == []  # "wool" is a colour 4 times in 5
    assert known_values(dump, row.words, "material", 0.2) == [(0, 1)]


@pytest.mark.parametrize("span, attribute, grown", [
    ((2, 3), "colour", (2, 4)),  # "navy" inside the known colour "navy blue"
    ((5, 6), "colour", (5, 6)),  # "navy" in "navy belt": no known colour is written around it
    ((2, 3), "material", (2, 3)),  # "navy blue" is a colour, not a material
    ((2, 4), "colour", (2, 4)),  # already a known value
])
def test_extension_grows_a_span_only_to_a_longer_training_value_of_its_attribute(span, attribute, grown) -> None:
    dump, row = dump_of(TEXT, {("navy", "blue"): Counter(colour=2), ("blue", "with"): Counter(colour=1)})
    decoded = Decoded([DecodedSpan(0, attribute, *span, 0.9)], torch.zeros(7, 3), torch.zeros(7, 3))
    [out] = extend_to_known(dump, row, decoded, Repairs(extend=True))
    assert (out.first_word, out.end_word) == grown and out.confidence == 0.9


def test_a_span_that_is_a_training_value_itself_is_kept() -> None:
    """"navy" is a colour of its own: only a span that is no training value is taken as cut short."""
    dump, row = dump_of(TEXT, {("navy",): Counter(colour=3), ("navy", "blue"): Counter(colour=2)})
    decoded = Decoded([DecodedSpan(0, "colour", 2, 3, 0.9)], torch.zeros(7, 3), torch.zeros(7, 3))
    [out] = extend_to_known(dump, row, decoded, Repairs(extend=True))
    assert (out.first_word, out.end_word) == (2, 3)


def test_extension_takes_the_longest_training_value_around_the_span() -> None:
    dump, row = dump_of(TEXT, {("navy", "blue"): Counter(colour=2), ("jacket", "navy", "blue"): Counter(colour=1)})
    decoded = Decoded([DecodedSpan(0, "colour", 3, 4, 0.9)], torch.zeros(7, 3), torch.zeros(7, 3))
    [out] = extend_to_known(dump, row, decoded, Repairs(extend=True))
    assert (out.first_word, out.end_word) == (1, 4)


def test_span_probability_reads_b_then_i_then_not_i() -> None:
    begin, inside = torch.zeros(4, 1), torch.zeros(4, 1)
    begin[1, 0], inside[2, 0], inside[3, 0] = 0.8, 0.5, 0.25
    decoded = Decoded([], begin, inside)
    assert span_probability(decoded, 0, 1, 3) == pytest.approx(0.8 * 0.5 * 0.75)
    assert span_probability(decoded, 0, 1, 4) == pytest.approx(0.8 * 0.5 * 0.25)


@pytest.mark.parametrize("use_arm", [False, True])
def test_with_no_repair_the_prototype_decodes_as_the_model_does(tiny_encoder_dir, tmp_path, use_arm: bool) -> None:
    model, tokenizer = tiny_model(tiny_encoder_dir, "text-only", use_arm=use_arm, tau_r=0.3)
    listings = train_listings()
    model.value_lookup = ValueLookup.from_listings(listings)
    model.eval()
    saved = tmp_path / "dump.pt"
    save_dump(dump_decoder_inputs(model, tokenizer, listings, None), saved)
    dump = load_dump(saved)
    ours = repaired_spans(dump, Repairs())
    data = prepare(model, tokenizer, listings, None)
    theirs = predict(model, tokenizer, data)
    assert sum(len(spans) for spans in ours) >= 5, "the untrained model decoded too little to compare"
    assert ours == [spans for spans, _ in theirs]
    assert [[s.confidence for s in spans] for spans in ours] == [[s.confidence for s in spans] for spans, _ in theirs]
    expected = score(model, data, theirs)
    assert score_spans(dump, ours)["value"]["f1"] == expected["value"]["f1"]
    assert score_spans(dump, ours)["tag_f1"] == expected["tag_f1"]
