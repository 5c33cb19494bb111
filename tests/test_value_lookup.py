"""The dictionary of training values: the lookup baseline and the model's prior feature."""
from __future__ import annotations

from pathlib import Path

import pytest

from dram.data.listings import Listing
from dram.data.tagging import split_words
from dram.nn.value_lookup import ValueLookup, cross_fitted, prior_features


def _listing(lid: str, values: dict[str, list[str]]) -> Listing:
    return Listing(id=lid, text="x", meta={"target_values": values})


def test_value_seen_under_several_attributes_goes_to_the_most_frequent_with_its_share() -> None:
    lookup = ValueLookup.from_listings([_listing("1", {"colour": ["Black"]}), _listing("2", {"colour": ["black"]}),
                                        _listing("3", {"material": ["Black"]}), _listing("4", {"material": []})])
    words = split_words("Black steel")
    [match] = lookup.match(words)
    assert (match.attribute, match.first_word, match.end_word) == ("colour", 0, 1)
    assert match.confidence == pytest.approx(2 / 3)


def test_longest_value_first_and_no_overlaps() -> None:
    lookup = ValueLookup.from_listings([_listing("1", {"product": ["file cart", "cart"], "material": ["steel wire"]}),
                                        _listing("2", {"material": ["wire"]})])
    words = split_words("Steel Wire File Cart with wire")
    assert [(m.first_word, m.end_word, m.attribute) for m in lookup.match(words)] == [
        (0, 2, "material"), (2, 4, "product"), (5, 6, "material")]


def test_prior_features_mark_first_and_later_words_with_the_confidence() -> None:
    lookup = ValueLookup.from_listings([_listing("1", {"colour": ["navy blue"]})])
    features = prior_features(lookup, split_words("a navy blue shirt"), ["brand", "colour"])
    assert features.shape == (4, 4)
    assert features[1].tolist() == [0, 0, 1, 0] and features[2].tolist() == [0, 0, 0, 1]
    assert features[0].abs().sum() == 0 and features[3].abs().sum() == 0


def test_cross_fitted_lookup_never_contains_the_listings_own_values() -> None:
    listings = [_listing(str(i), {"code": [f"v{i}"]}) for i in range(20)]
    for listing, lookup in zip(listings, cross_fitted(listings, folds=5, seed=13)):
        own = listing.meta["target_values"]["code"][0]
        assert (own,) not in lookup.entries and len(lookup) == 16


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    lookup = ValueLookup.from_listings([_listing("1", {"colour": ["Navy Blue"], "size": ["XL"]})])
    lookup.save(tmp_path / "lookup.json")
    again = ValueLookup.load(tmp_path / "lookup.json")
    assert again.entries == lookup.entries and again.longest == 2


def test_learned_adds_the_corrections_values_and_keeps_the_rest_exactly() -> None:
    lookup = ValueLookup.from_listings([_listing("1", {"colour": ["black", "navy blue"]}),
                                        _listing("2", {"material": ["black"]}), _listing("3", {"colour": ["black"]})])
    learned = lookup.learned([_listing("c1", {"metal type": ["Sterling Silver"]}),
                              _listing("c2", {"material": ["black"]}), _listing("c3", {"material": ["black"]})])
    assert learned.entries[("sterling", "silver")] == ("metal type", 1.0)
    assert learned.entries[("black",)] == ("material", 3 / 5)  # 2 colour + 3 material labels now
    assert learned.entries[("navy", "blue")] == lookup.entries[("navy", "blue")]
    assert lookup.entries[("black",)] == ("colour", 2 / 3)  # the original is not changed
    assert ("sterling", "silver") not in lookup.entries


def test_a_lookup_saved_before_counts_were_kept_loads_as_it_was_and_can_learn(tmp_path: Path) -> None:
    (tmp_path / "old.json").write_text('{"entries": [[["black"], "colour", 0.75], [["xl"], "size", 1.0]]}')
    old = ValueLookup.load(tmp_path / "old.json")
    assert old.entries == {("black",): ("colour", 0.75), ("xl",): ("size", 1.0)}
    learned = old.learned([_listing("c", {"gemstone": ["ruby"]})])
    assert learned.entries == {**old.entries, ("ruby",): ("gemstone", 1.0)}
    learned.save(tmp_path / "new.json")
    assert ValueLookup.load(tmp_path / "new.json").counts == learned.counts


def test_cross_fitted_on_a_base_keeps_the_base_and_leaves_out_the_listings_own_values() -> None:
    base = ValueLookup.from_listings([_listing("t", {"colour": ["red"]})])
    listings = [_listing(str(i), {"code": [f"v{i}"]}) for i in range(10)]
    for listing, lookup in zip(listings, cross_fitted(listings, folds=5, seed=13, base=base)):
        assert ("red",) in lookup.entries
        assert (listing.meta["target_values"]["code"][0],) not in lookup.entries and len(lookup) == 1 + 8


@pytest.mark.parametrize("span, attribute, grown", [
    ((7, 8), "colour", (7, 9)),  # "navy" inside the known colour "navy blue"
    ((2, 3), "colour", (1, 4)),  # "navy": the longest known colour around it, "jacket navy blue"
    ((3, 4), "colour", (1, 4)),  # "blue": likewise
    ((7, 8), "material", None),  # "navy blue" is a colour (2 of 3 labels), not a material
    ((7, 9), "colour", None),  # already a known value
    ((11, 12), "colour", None),  # "navy" in "navy belt": no known colour is written around it
])
def test_longest_holding_is_a_longer_training_value_of_the_attribute_around_the_words(span, attribute, grown) -> None:
    lookup = ValueLookup.from_listings([_listing("1", {"colour": ["navy blue", "jacket navy blue"]}),
                                        _listing("2", {"colour": ["navy blue"]}), _listing("3", {"material": ["navy blue"]})])
    words = split_words("wool jacket navy blue, with a navy blue and a navy belt")
    assert [w.text for w in words[7:9]] == ["navy", "blue"] and words[11].text == "navy"
    assert lookup.longest_holding(words, *span, attribute) == grown


def test_a_span_that_is_a_training_value_itself_is_not_grown() -> None:
    lookup = ValueLookup.from_listings([_listing("1", {"colour": ["navy", "navy blue"]})])
    assert lookup.longest_holding(split_words("navy blue coat"), 0, 1, "colour") is None
