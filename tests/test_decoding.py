"""One decode path (`dram.decoding`): the app and `training.predict` give the same spans and scores,
with the default model the app ships with, on real listings of the bundled test file (photos included)
and a listing long enough for several windows; and the growth of a cut-short span to a training value
of its attribute."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from dram.data.listings import Listing, write_jsonl
from dram.data.spans import char_spans
from dram.data.tagging import split_words
from dram.decoding import _extended
from dram.inference import Extractor
from dram.nn.batching import TextWindow
from dram.nn.model import DecodedSpan
from dram.nn.value_lookup import ValueLookup
from dram.paths import BUNDLE
from store.records import check_spans
from tests.tiny_model import tiny_model
from training.common import load_data
from training.loop import listing_batches, prepare
from training.predictions import predict_listings, prediction_record

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def extractor(app_checkpoint: Path) -> Extractor:
    # The torch engine: ONNX Runtime picks its kernels by batch shape, and the app and predict batch the
    # photos differently, which moves a confidence's 4th place. How close the ONNX engine stays to torch
    # is tests/test_onnx_engine.py's question; this file's is whether both jobs decode alike.
    return Extractor.load(app_checkpoint, device="cpu", engine="torch")


@pytest.fixture(scope="module")
def listing_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve listings of the bundled test file with their photos, and one of several windows in the
    middle: its text is the titles of 120 listings, and it keeps the first listing's photo."""
    listings = load_data(BUNDLE / "test.jsonl", "test")
    long = Listing(id="long", text="\n".join(l.text for l in listings[:120]), image=listings[0].image, spans=[])
    path = tmp_path_factory.mktemp("decoding") / "listings.jsonl"
    write_jsonl(path, [*listings[:6], long, *listings[6:12]])
    return path


def test_the_app_and_training_predict_give_identical_spans_and_scores(extractor: Extractor, listing_file: Path) -> None:
    listings = load_data(listing_file, "input")
    rows = prepare(extractor.model, extractor.tokenizer, listings, cache_dir=None, use_images=False).listing_of
    assert rows.count(6) >= 2 and all(l.image is not None for l in listings)
    # One model call on each side: how rows are batched moves the last bits of the encoders' sums
    # (the BLAS blocks follow the padded shapes), and a confidence can then round to another 4th place.
    app = extractor.extract_batch([(l.text, l.image) for l in listings], batch_size=len(listings))
    predicted = predict_listings(extractor.model, extractor.tokenizer, listings, batch_size=len(rows),
                                 cache_dir=None)
    from_app = [{"id": l.id, "spans": [s.to_dict() for s in e.spans], "attribute_scores": e.attribute_scores}
                for l, e in zip(listings, app)]
    assert from_app == [prediction_record(l.id, p) for l, p in zip(listings, predicted)]
    long = from_app[6]["spans"]
    assert len(long) >= 100 and max(s["end"] for s in long) > len(listings[6].text) - 40  # read to its end
    assert len({(s["start"], s["attribute"]) for s in long}) == len(long)  # each value reported once


def test_prediction_batches_hold_whole_listings_in_order(extractor: Extractor, listing_file: Path) -> None:
    data = prepare(extractor.model, extractor.tokenizer, load_data(listing_file, "input"), cache_dir=None,
                   use_images=False)
    long_rows = [row for row, owner in enumerate(data.listing_of) if owner == 6]
    batches = listing_batches(data, 2)
    assert [row for batch in batches for row in batch] == list(range(len(data.texts)))
    for batch in batches:
        owners = [data.listing_of[row] for row in batch]
        assert all(data.listing_of.count(k) == owners.count(k) for k in set(owners))  # no listing cut
        assert len(batch) <= 2 or batch == long_rows  # a listing of more windows is a batch of its own
    assert long_rows in batches and len(long_rows) > 2


def test_a_span_inside_a_longer_training_value_of_its_attribute_grows_to_it(extractor: Extractor) -> None:
    """`DramConfig.extend_to_known_values`: with a dictionary in which "black casual" is a colour and
    "black" is not, the decoder's colour span "Black" becomes "Black Casual"; switched off, it stays
    as the model tagged it. (The listing is encoded with the model's own dictionary, in which "black"
    is a colour of its own and so is never grown.)"""
    model = extractor.model
    encoded = extractor.encode("Timberland Men Black Casual Shoes")
    kept = model.value_lookup
    taught = ValueLookup({("black", "casual"): Counter(colour=1)})
    try:
        model.value_lookup = taught
        grown = extractor.decode(encoded).spans
        model.config.extend_to_known_values = False
        as_tagged = extractor.decode(encoded).spans
    finally:
        model.value_lookup, model.config.extend_to_known_values = kept, True
    assert ("colour", "Black") in [(s.attribute, s.text) for s in as_tagged]
    assert ("colour", "Black Casual") in [(s.attribute, s.text) for s in grown]
    assert [s.text for s in grown if s.attribute != "colour"] == [s.text for s in as_tagged if s.attribute != "colour"]


TWO_COLOURS = "wool jacket navy blue with belt"


@pytest.mark.parametrize("spans, owned, expected", [
    # "navy" and "blue" tagged apart inside the known colour "navy blue": one span, the first's confidence
    ([(2, 3, 0.9), (3, 4, 0.8)], None, [(2, 4, 0.9)]),
    ([(3, 4, 0.8), (2, 3, 0.9)], None, [(2, 4, 0.8)]),
    # "blue with" would be crossed in part: "navy" stays as tagged
    ([(2, 3, 0.9), (3, 5, 0.8)], None, [(2, 3, 0.9), (3, 5, 0.8)]),
    # "blue" is the next window's to report: "navy" does not grow into it
    ([(2, 3, 0.9)], (0, 3), [(2, 3, 0.9)]),
])
def test_a_grown_span_takes_in_its_attributes_spans_and_never_crosses_one(
        tiny_encoder_dir: str, spans: list, owned: tuple | None, expected: list) -> None:
    """The loop's crash of 2026-12-06: a grown Product Type overlapped another the model had tagged
    inside it, and the store refused the prediction. Grown spans are ones the store takes."""
    model, _ = tiny_model(tiny_encoder_dir, "text-only", attributes=["colour"])
    model.value_lookup = ValueLookup({("navy", "blue"): Counter(colour=2)})
    words = split_words(TWO_COLOURS)
    window = TextWindow(TWO_COLOURS, words, [], [], owned)
    grown = _extended(model, window, [DecodedSpan(0, "colour", first, end, p) for first, end, p in spans])
    assert [(s.first_word, s.end_word, s.confidence) for s in grown] == expected
    check_spans(TWO_COLOURS, char_spans(TWO_COLOURS, words, grown), None, what="the prediction")
