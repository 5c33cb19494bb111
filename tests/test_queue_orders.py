"""The text-only queue orders (benchmarks/queue_orders.py) on hand-made pools whose answer is worked out by hand."""
from __future__ import annotations

from benchmarks.queue_orders import coverage_order, diversity_order, similarity, words


def test_words_are_lower_cased_word_sets() -> None:
    assert words("Gold ring, GOLD band") == {"gold", "ring", "band"}


def test_similarity_is_the_cosine_of_word_sets() -> None:
    assert similarity(words("a b"), words("b c")) == 0.5
    assert similarity(words(""), words("a")) == 0.0


def test_coverage_prefers_the_pool_s_common_unseen_words_and_counts_each_pick_as_seen() -> None:
    pool = [(1, "silver ring"), (2, "gold ring"), (3, "gold chain"), (4, "gold band")]
    # gold: in 3 listings, ring: 2. Listing 2 teaches 3 + 2; after it, 1 teaches "silver" (1),
    # 3 "chain" (1), 4 "band" (1): the tie goes to the earlier candidate.
    assert coverage_order(pool, [], 2) == [2, 1]
    # With "gold ring" reviewed, 2 teaches nothing and goes last.
    assert coverage_order(pool, ["gold ring"], 4)[-1] == 2


def test_diversity_picks_the_listing_least_like_anything_reviewed() -> None:
    pool = [(1, "gold ring size 7"), (2, "crystal vase"), (3, "gold ring size 8")]
    assert diversity_order(pool, ["gold ring size 6"], 1) == [2]
    # After the vase, the next pick is one of the rings; their nearest (the reviewed ring) is as close to both.
    assert diversity_order(pool, ["gold ring size 6"], 3) == [2, 1, 3]


def test_orders_stop_at_the_pool_size() -> None:
    pool = [(5, "a"), (6, "b")]
    assert sorted(coverage_order(pool, [], 10)) == [5, 6]
    assert sorted(diversity_order(pool, [], 10)) == [5, 6]
