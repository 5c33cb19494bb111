"""The review package without the UI: span edits, listing intake into a real SQLite store, versions."""
from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from dram.data.spans import Span
from dram.inference import Extractor
from review.edits import (
    ReviewError,
    ReviewItem,
    add_span,
    apply_edit,
    rebound_span,
    relabel_span,
    remove_span,
    status_for,
)
from review.intake import IntakeRow, import_for_review, record_extraction
from review.versions import metrics_over_time, version_choices, version_table
from store import open_store
from tests.tiny_model import ATTRIBUTES, tiny_model, write_text_encoder

TEXT = "Nike Men Navy Blue cotton T-Shirt"  # words: 0 Nike, 1 Men, 2 Navy, 3 Blue, 4 cotton, 5 T, 6 -, 7 Shirt


def sel(part: str) -> tuple[int, int]:
    """The character offsets of `part` in TEXT, as the annotator's selection."""
    return TEXT.index(part), TEXT.index(part) + len(part)


@pytest.fixture
def store(tmp_path: Path):
    with open_store(f"sqlite:///{tmp_path / 'store.sqlite'}") as opened:
        yield opened


@pytest.fixture(scope="module")
def extractor(tmp_path_factory: pytest.TempPathFactory) -> Extractor:
    model, tokenizer = tiny_model(write_text_encoder(tmp_path_factory.mktemp("tiny-bert")), "text-only")
    return Extractor(model, tokenizer)


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "navy").save(buffer, "PNG")
    return buffer.getvalue()


def text_of(spans: list[Span]) -> list[tuple[str, str]]:
    return [(s.attribute, TEXT[s.start:s.end]) for s in spans]


def test_add_relabel_rebound_remove_from_selections() -> None:
    spans = add_span(TEXT, [], *sel("avy Bl"), "colour", ATTRIBUTES)  # half-selected words count whole
    spans = add_span(TEXT, spans, *sel("T-Shirt"), "article_type", ATTRIBUTES)
    assert text_of(spans) == [("colour", "Navy Blue"), ("article_type", "T-Shirt")]
    spans = rebound_span(TEXT, spans, 0, *sel("Blue "))  # a trailing space adds no word
    assert text_of(spans) == [("colour", "Blue"), ("article_type", "T-Shirt")]
    end, start = sel("cotton")
    spans = add_span(TEXT, spans, start, end, "colour", ATTRIBUTES)  # selected right to left
    spans = relabel_span(TEXT, spans, 1, "material", ATTRIBUTES)
    assert text_of(spans) == [("colour", "Blue"), ("material", "cotton"), ("article_type", "T-Shirt")]
    assert text_of(remove_span(spans, 0)) == [("material", "cotton"), ("article_type", "T-Shirt")]


@pytest.mark.parametrize("edit, message", [
    (lambda s: add_span(TEXT, s, *sel("Nike"), "size", ATTRIBUTES), "'size' is not an attribute of this model"),
    (lambda s: add_span(TEXT, s, *sel("Nike"), None, ATTRIBUTES), "press 1-9 or type a few letters"),
    (lambda s: add_span(TEXT, s, 3, 3, "colour", ATTRIBUTES), "Select the value's words first"),
    (lambda s: add_span(TEXT, s, None, None, "colour", ATTRIBUTES), "Select the value's words first"),
    (lambda s: add_span(TEXT, s, 0, 99, "colour", ATTRIBUTES), "outside this listing's text"),
    (lambda s: add_span(TEXT, s, 4, 5, "colour", ATTRIBUTES), "only spaces or punctuation"),
    (lambda s: add_span(TEXT, s, *sel("Blue cotton"), "colour", ATTRIBUTES),
     "'Blue cotton' overlaps the colour value 'Navy Blue'.*click that value to re-bound or remove it"),
    (lambda s: remove_span(s, 5), "Click the value you want to change first"),
    (lambda s: relabel_span(TEXT, s, None, "colour", ATTRIBUTES), "Click the value you want to change first"),
])
def test_bad_edits_say_what_to_do_and_change_nothing(edit, message: str) -> None:
    spans = add_span(TEXT, [], *sel("Navy Blue"), "colour", ATTRIBUTES)
    before = list(spans)
    with pytest.raises(ReviewError, match=message):
        edit(spans)
    assert spans == before


def test_editor_actions_address_tagging_units_and_undo_walks_back() -> None:
    item = ReviewItem(1, None, TEXT, None, None, (Span(0, 4, "brand"),), (Span(0, 4, "brand"),))
    assert not item.unsaved
    item = apply_edit(item, "add", ATTRIBUTES, first=2, last=3, attribute="colour")  # units "Navy", "Blue"
    item = apply_edit(item, "add", ATTRIBUTES, first=5, last=7, attribute="article_type")  # "T", "-", "Shirt"
    assert text_of(list(item.spans)) == [("brand", "Nike"), ("colour", "Navy Blue"), ("article_type", "T-Shirt")]
    item = apply_edit(item, "rebound", ATTRIBUTES, span=1, first=3, last=3)
    item = apply_edit(item, "relabel", ATTRIBUTES, span=0, attribute="material")
    item = apply_edit(item, "remove", ATTRIBUTES, span=2)
    assert text_of(list(item.spans)) == [("material", "Nike"), ("colour", "Blue")]
    assert item.unsaved and item.revision == 5 and item.status == "corrected"
    for _ in range(5):
        item = apply_edit(item, "undo", ATTRIBUTES)
    assert item.spans == item.predicted and not item.unsaved and item.revision == 10
    with pytest.raises(ReviewError, match="Nothing to undo"):
        apply_edit(item, "undo", ATTRIBUTES)
    with pytest.raises(ReviewError, match="outside this listing's 8 words"):
        apply_edit(item, "add", ATTRIBUTES, first=7, last=8, attribute="colour")


def test_status_is_accepted_only_when_the_model_spans_are_kept() -> None:
    predicted = [Span(9, 18, "colour", "Navy Blue", 0.4)]
    assert status_for(add_span(TEXT, [], *sel("Navy Blue"), "colour", ATTRIBUTES), predicted) == "accepted"
    assert status_for([], predicted) == "corrected"


def test_extracted_listing_enters_the_queue_once(store, extractor: Extractor) -> None:
    version = store.version_for_checkpoint(Path("models/x"), {"test": {"tag_f1": 0.5}}).id
    assert store.version_for_checkpoint(Path("models/x"), {}).id == version
    assert store.active_model_version().id == version  # the first version registered is the one in use
    extraction = extractor.extract(TEXT, tau_r=0.0)
    first = record_extraction(store, extraction, None, version)
    again = record_extraction(store, extractor.extract(TEXT, tau_r=0.0), None, version)
    assert first == again
    # the same listing imported under its own id, then tried again in the Extract tab with other spacing
    imported = record_extraction(store, extractor.extract("Puma Men Black Shoes", tau_r=0.0), None, version, "sku-1")
    assert record_extraction(store, extractor.extract("puma  men BLACK shoes", tau_r=0.0), None, version) == imported
    assert record_extraction(store, extractor.extract(TEXT, tau_r=0.0), png_bytes(), version) != first  # another photo
    assert len(store.review_queue(0.5)) == 3
    (item,) = [i for i in store.review_queue(0.5) if i.listing_id == first]
    assert item.listing_id == first and item.model_version_id == version
    assert len(store.predictions_for(first)) == 1  # trying it again changed nothing
    assert version_choices(store) == [("#1 x (active), TAG-F1 0.500", version)]


def test_import_queues_good_rows_and_reports_bad_ones(store, extractor: Extractor, tmp_path: Path) -> None:
    photo = tmp_path / "p.png"
    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), "navy").save(buffer, "PNG")
    photo.write_bytes(buffer.getvalue())
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a photo")
    rows = [IntakeRow("a", TEXT), IntakeRow("b", "Puma Women Black Shoes", photo), IntakeRow("c", "   "),
            IntakeRow("d", "Red shirt", broken)]

    report = import_for_review(store, extractor, rows, None, batch_size=3)

    assert report.added == 2
    assert [p[:2] for p in report.problems] == ["c:", "d:"] and "photo" in report.problems[1]
    assert {i.external_id for i in store.review_queue(0.5)} == {"a", "b"}
    assert import_for_review(store, extractor, rows[:2], None).added == 2  # re-import: same listings, no duplicates
    assert store.progress() == (0, 0, 2)


def test_the_version_table_shows_promoted_and_not_promoted_versions_with_their_figures(store) -> None:
    default = store.register_model_version("default", "models/default", {"test": {"tag_f1": 0.98}})
    figures = lambda replay, corrections: {"heldout": {"tag_f1": replay}, "corrections": {"tag_f1": corrections}}  # noqa: E731
    store.register_model_version("v2", "models/v2", {
        "old": figures(0.9800, 0.9800), "new": figures(0.9822, 0.9923),
        "promotion": {"promoted": True, "forced": False, "failed": []}}, parent_id=default)
    store.register_model_version("v3", "models/v3", {
        "old": figures(0.9822, 0.9923), "new": figures(0.9779, 0.9846),
        "promotion": {"promoted": False, "forced": False,
                      "failed": ["TAG-F1 on the held-out corrections fell from 99.23% to 98.46%"]}},
        parent_id=2, activate=False)

    header, _rule, *rows = version_table(store).splitlines()
    assert "replay" in header and "held-out corrections" in header
    v3, v2, v0 = rows  # newest first
    assert "not promoted" in v3 and "98.22 → 97.79" in v3 and "99.23 → 98.46" in v3 and "fell from 99.23%" in v3
    assert "active" in v2 and "| promoted" in v2 and "98.00 → 98.22" in v2
    assert "default" in v0 and "not promoted" not in v0
    assert [label for label, _ in version_choices(store)][0].startswith("#3 v3 (not promoted)")

    # what the Model tab draws: each version's figures, oldest first
    history = [(r["version"], r["figure"], r["TAG-F1"]) for r in metrics_over_time(store)]
    assert history == [("#1 default", "test split", 98.0),
                       ("#2 v2", "replay test", 98.22), ("#2 v2", "held-out corrections", 99.23),
                       ("#3 v3", "replay test", 97.79), ("#3 v3", "held-out corrections", 98.46)]
    assert all(isinstance(r["created"], datetime) for r in metrics_over_time(store))
