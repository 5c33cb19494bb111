"""What the Annotate tab's editor script is given to draw: tagging units, values with their context, keys."""
from __future__ import annotations

from dram.data.spans import Span
from review.edits import ReviewItem
from ui.colours import home_colours
from ui.span_editor import HOTKEYS, UNSURE_BELOW, editor_view

TEXT = "Steel watch, steel strap.\nCase: 8MB-2x4MB/80W steel"


def item(*spans: Span, scores: dict[str, float] | None = None, confidences=()) -> ReviewItem:
    return ReviewItem(7, "sku-7", TEXT, None, None, tuple(spans), tuple(spans), tuple((scores or {}).items()),
                      tuple(confidences))


def test_the_text_is_drawn_as_tagging_units_so_glued_codes_split() -> None:
    view = editor_view(item(), ["colour"], home_colours(["colour"]))
    assert "".join(piece for piece, _ in view["tokens"]) == TEXT  # nothing lost, not even the line break
    units = [piece for piece, unit in view["tokens"] if unit >= 0]
    assert units[units.index("80"):units.index("80") + 2] == ["80", "W"]  # "80W" can be marked alone
    assert [unit for _, unit in view["tokens"] if unit >= 0] == list(range(len(units)))


def test_equal_values_are_told_apart_by_the_words_around_them() -> None:
    first, last = TEXT.index("steel"), TEXT.rindex("steel")
    view = editor_view(item(Span(first, first + 5, "colour"), Span(last, last + 5, "colour")), ["colour"],
                       home_colours(["colour"]))
    (one, two) = view["spans"]
    assert one["value"] == two["value"] == "steel"
    assert one["before"] == "Steel watch, " and one["after"].startswith(" strap.")
    assert two["before"].startswith("…") and two["before"].endswith("80W ") and two["after"] == ""


def test_keys_go_to_the_attributes_the_model_scores_highest_and_unsure_values_are_marked() -> None:
    attributes = [f"a{i}" for i in range(12)]
    scores = {a: i / 20 for i, a in enumerate(attributes[:10])}  # a9 highest; a10, a11 unscored
    span = Span(0, 5, "a3")
    view = editor_view(item(span, scores=scores, confidences=((span, UNSURE_BELOW - 0.01),)), attributes,
                       home_colours(attributes))
    named = [(a["name"], a["key"]) for a in view["attributes"]]
    assert named[:3] == [("a9", "1"), ("a8", "2"), ("a7", "3")]
    assert [k for _, k in named].count(None) == len(attributes) - HOTKEYS and named[-2:] == [("a10", None), ("a11", None)]
    assert view["spans"][0]["unsure"] and view["spans"][0]["confidence"] == round(UNSURE_BELOW - 0.01, 3)
    assert not view["unsaved"] and not view["can_undo"] and view["listing"] == 7


def test_what_the_annotator_should_know_is_shown_over_the_listing() -> None:
    from dataclasses import replace

    noted = replace(item(), notes=("Double review: two annotators check this listing; yours is the second look.",))
    assert editor_view(noted, [], {})["notes"] == list(noted.notes)
    assert editor_view(item(), [], {})["notes"] == []


def test_the_empty_queue_still_shows_the_shortcuts() -> None:
    view = editor_view(None, [], {})
    assert view["listing"] is None and ("S", "save") in view["shortcuts"]
