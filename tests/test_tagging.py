"""Tagging units (English words, one unit per CJK character) and the B-I-O scheme."""
from __future__ import annotations

import pytest

from dram.data.tagging import Word, bio_ranges, bio_tags, split_words, word_range


def _units(text: str) -> list[tuple[int, int, str]]:
    return [(w.start, w.end, w.text) for w in split_words(text)]


def test_split_words_english_words_punctuation_and_offsets() -> None:
    text = "Red short-sleeve T-shirt, 100% cotton"
    assert _units(text) == [
        (0, 3, "Red"), (4, 9, "short"), (9, 10, "-"), (10, 16, "sleeve"), (17, 18, "T"), (18, 19, "-"),
        (19, 24, "shirt"), (24, 25, ","), (26, 29, "100"), (29, 30, "%"), (31, 37, "cotton"),
    ]


def test_split_words_chinese_one_unit_per_character() -> None:
    text = "红色T恤 纯棉"
    assert _units(text) == [(0, 1, "红"), (1, 2, "色"), (2, 3, "T"), (3, 4, "恤"), (5, 6, "纯"), (6, 7, "棉")]


def test_split_words_mixed_latin_and_cjk_and_offsets_slice_back() -> None:
    text = "  Nike耐克男款 Air-Max 90，黑色 "
    words = split_words(text)
    assert [w.text for w in words] == ["Nike", "耐", "克", "男", "款", "Air", "-", "Max", "90", "，", "黑", "色"]
    assert all(text[w.start:w.end] == w.text for w in words)
    assert split_words("") == [] and split_words("   \n\t") == []


def test_split_words_underscore_is_its_own_unit() -> None:
    assert [w.text for w in split_words("a_b")] == ["a", "_", "b"]


def test_word_range_covers_partial_and_multi_word_spans() -> None:
    words = split_words("navy blue slim jeans")  # navy 0-4, blue 5-9, slim 10-14, jeans 15-20
    assert word_range(words, 0, 9) == (0, 2)
    assert word_range(words, 5, 9) == (1, 2)
    assert word_range(words, 6, 12) == (1, 3)  # partial overlap on both ends still counts
    assert word_range(words, 15, 20) == (3, 4)
    assert word_range(words, 4, 5) is None  # only the space
    assert word_range(words, 20, 25) is None
    assert word_range([], 0, 3) is None


def test_word_range_on_chinese_characters() -> None:
    words = split_words("男士短袖衬衫")
    assert word_range(words, 2, 4) == (2, 4)  # 短袖


def test_bio_tags_plain_and_joint_labels() -> None:
    assert bio_tags(5, [(0, 2), (3, 4)]) == ["B", "I", "O", "B", "O"]
    assert bio_tags(4, [(1, 4)], "colour") == ["O", "B-colour", "I-colour", "I-colour"]
    assert bio_tags(3, []) == ["O", "O", "O"]
    assert bio_tags(0, []) == []


def test_bio_tags_adjacent_spans_start_with_b() -> None:
    assert bio_tags(4, [(0, 1), (1, 3)]) == ["B", "B", "I", "O"]


@pytest.mark.parametrize("n, ranges, label", [
    (6, [(0, 2), (3, 4), (4, 6)], ""),
    (5, [(1, 2)], "colour"),
    (4, [(0, 4)], "article_type"),
    (3, [], "x"),
    (7, [(0, 1), (1, 2), (2, 3), (5, 7)], "size"),
])
def test_bio_round_trip(n: int, ranges: list[tuple[int, int]], label: str) -> None:
    assert bio_ranges(bio_tags(n, ranges, label)) == [(a, b, label) for a, b in ranges]


def test_bio_ranges_joint_labels_from_several_attributes() -> None:
    tags = ["B-colour", "I-colour", "B-material", "O", "B-colour", "I-colour", "I-colour"]
    assert bio_ranges(tags) == [(0, 2, "colour"), (2, 3, "material"), (4, 7, "colour")]


def test_bio_ranges_stray_i_opens_a_span() -> None:
    assert bio_ranges(["O", "I", "I", "O"]) == [(1, 3, "")]
    assert bio_ranges(["I-colour", "I-colour"]) == [(0, 2, "colour")]
    # An I of another label does not continue the open span; it opens its own.
    assert bio_ranges(["B-colour", "I-size", "I-size", "O"]) == [(0, 1, "colour"), (1, 3, "size")]


def test_bio_ranges_span_at_the_end_and_adjacent_bs() -> None:
    assert bio_ranges(["O", "B", "I"]) == [(1, 3, "")]
    assert bio_ranges(["B", "B", "B"]) == [(0, 1, ""), (1, 2, ""), (2, 3, "")]
    assert bio_ranges([]) == [] and bio_ranges(["O", "O"]) == []


def test_word_is_a_value_object() -> None:
    assert split_words("red")[0] == Word(0, 3, "red")


def test_split_words_breaks_digits_from_letters_and_lower_from_upper_case() -> None:
    # Scraped descriptions glue values to their neighbours: "13w x 4d", "COLOR: BlackALTERNATE".
    assert [w.text for w in split_words("13w x 4d BlackALTERNATE SAF5278BL")] == [
        "13", "w", "x", "4", "d", "Black", "ALTERNATE", "SAF", "5278", "BL"]
    text = "iPhone 2.0GHz"
    assert all(text[w.start:w.end] == w.text for w in split_words(text))
