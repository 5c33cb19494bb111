"""Two queue orders the loop benchmark compares with the app's (uncertainty) and with random: they
read only the texts, so they see a category and attributes the model does not know.

A model that never saw a category is not usefully unsure about it: it has no score at all for the
attributes it lacks. These orders ask nothing of the model; they choose the listings that teach the
most words, or the most different listings, not yet seen in anything reviewed. Both are greedy:
every pick counts as reviewed for the next one, and ties go to the earlier candidate. Neither beat
the uncertainty order at 50 corrections (BENCHMARKS.md), so the app's queue does not offer them.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from typing import Sequence

WORD = re.compile(r"\w+")


def words(text: str) -> frozenset[str]:
    return frozenset(WORD.findall(text.lower()))


def coverage_order(candidates: Sequence[tuple[int, str]], reviewed: Sequence[str], count: int) -> list[int]:
    """Ids of `count` candidates, each the one whose still-unseen words are the most common among the
    candidates (document frequency, over the square root of its distinct words so long texts do not
    win by length alone)."""
    vocab = {key: words(text) for key, text in candidates}
    frequency = Counter(w for ws in vocab.values() for w in ws)
    seen: set[str] = set().union(*(words(t) for t in reviewed)) if reviewed else set()
    chosen: list[int] = []
    while vocab and len(chosen) < count:
        def gain(key: int) -> float:
            return sum(frequency[w] for w in vocab[key] - seen) / math.sqrt(max(1, len(vocab[key])))
        best = max(vocab, key=gain)  # max keeps the first of equals: candidate order breaks ties
        chosen.append(best)
        seen |= vocab.pop(best)
    return chosen


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Cosine of two word sets."""
    return len(a & b) / math.sqrt(len(a) * len(b)) if a and b else 0.0


def diversity_order(candidates: Sequence[tuple[int, str]], reviewed: Sequence[str], count: int) -> list[int]:
    """Ids of `count` candidates, each the one least like its nearest reviewed (or chosen) listing
    (greedy k-center over word sets)."""
    vocab = {key: words(text) for key, text in candidates}
    reviewed_words = [words(t) for t in reviewed]
    nearest = {key: max((similarity(ws, r) for r in reviewed_words), default=0.0) for key, ws in vocab.items()}
    chosen: list[int] = []
    while nearest and len(chosen) < count:
        best = min(nearest, key=nearest.__getitem__)
        chosen.append(best)
        del nearest[best]
        picked = vocab[best]
        for key in nearest:
            nearest[key] = max(nearest[key], similarity(vocab[key], picked))
    return chosen
