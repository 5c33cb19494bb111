"""A dictionary of the attribute values seen in training, matched as whole words in new text.

Two uses: the lookup baseline a learned model has to beat (the simplest thing a merchandiser
could build from their labelled listings), and a prior the model reads as a feature (which
words are a known value of which attribute, and how sure the dictionary is).
"""
from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from dram.data.listings import Listing
from dram.data.tagging import Word, split_words


@dataclass(frozen=True)
class LookupMatch:
    first_word: int
    end_word: int
    attribute: str
    confidence: float  # the share of this value's training labels that named this attribute


def _key(words: Iterable[Word]) -> tuple[str, ...]:
    return tuple(w.text.lower() for w in words)


class ValueLookup:
    """Every (attribute, value) pair of the training labels. A value seen under several attributes
    goes to the one it was seen with most often, with that share as its confidence.

    The counts are kept (and saved) so that a fine-tune can teach the lookup the values of its
    corrections (`learned`) without the original training data.
    """

    def __init__(self, counts: dict[tuple[str, ...], Counter]):
        self.counts: dict[tuple[str, ...], Counter] = {key: Counter(c) for key, c in counts.items()}
        self.entries: dict[tuple[str, ...], tuple[str, float]] = {key: _entry(c) for key, c in self.counts.items()}
        self.longest = max((len(k) for k in self.entries), default=0)

    @classmethod
    def from_listings(cls, listings: Iterable[Listing]) -> "ValueLookup":
        return cls(_value_counts(listings))

    def learned(self, listings: Iterable[Listing]) -> "ValueLookup":
        """This lookup plus the labelled values of `listings` (a fine-tune's corrections): new values
        and new attributes join; a value now seen under another attribute goes to the one counted most.
        Values the listings do not mention keep their entry exactly."""
        grown = ValueLookup({})
        grown.counts = dict(self.counts)
        grown.entries = dict(self.entries)
        for key, by_attribute in _value_counts(listings).items():
            grown.counts[key] = self.counts.get(key, Counter()) + by_attribute
            grown.entries[key] = _entry(grown.counts[key])
        grown.longest = max((len(k) for k in grown.entries), default=0)
        return grown

    def __len__(self) -> int:
        return len(self.entries)

    def match(self, words: list[Word]) -> list[LookupMatch]:
        """Known values in `words`, longest first, none overlapping one already taken; reading order."""
        keys = [w.text.lower() for w in words]
        candidates = []
        for first in range(len(words)):
            for n in range(min(self.longest, len(words) - first), 0, -1):
                hit = self.entries.get(tuple(keys[first:first + n]))
                if hit is not None:
                    candidates.append((n, first, hit))
        taken = [False] * len(words)
        matches = []
        for n, first, (attribute, share) in sorted(candidates, key=lambda c: (-c[0], c[1])):
            if not any(taken[first:first + n]):
                taken[first:first + n] = [True] * n
                matches.append(LookupMatch(first, first + n, attribute, share))
        return sorted(matches, key=lambda m: m.first_word)

    def longest_holding(self, words: list[Word], first: int, end: int, attribute: str,
                        share: float = 0.5) -> tuple[int, int] | None:
        """The longest training value of `attribute` written in `words` that holds words first..end-1
        and is more than them (the first of equal length), as (first, end); None when words first..end-1
        are themselves one, or nothing holds them. A value counts as the attribute's when at least
        `share` of its training labels named it (a majority by default)."""
        low, high = max(0, end - self.longest), min(len(words), first + self.longest)
        keys = [w.text.lower() for w in words[low:high]]
        best = None
        for start in range(low, first + 1):
            for stop in range(end, min(high, start + self.longest) + 1):
                counts = self.counts.get(tuple(keys[start - low:stop - low]))
                if counts and counts[attribute] / sum(counts.values()) >= share:
                    if (start, stop) == (first, end):
                        return None
                    if best is None or stop - start > best[1] - best[0]:
                        best = (start, stop)
        return best

    def to_dict(self) -> dict:
        return {"entries": [[list(key), attribute, share] for key, (attribute, share) in sorted(self.entries.items())],
                "counts": [[list(key), dict(sorted(c.items()))] for key, c in sorted(self.counts.items())]}

    @classmethod
    def from_dict(cls, data: dict) -> "ValueLookup":
        """Lookups saved before the counts were kept load with their entries as they were; each entry
        then counts as one listing of its attribute should a fine-tune teach it more values."""
        lookup = cls({})
        lookup.entries = {tuple(key): (attribute, float(share)) for key, attribute, share in data["entries"]}
        if "counts" in data:
            lookup.counts = {tuple(key): Counter(c) for key, c in data["counts"]}
        else:
            lookup.counts = {key: Counter({attribute: 1}) for key, (attribute, _) in lookup.entries.items()}
        lookup.longest = max((len(k) for k in lookup.entries), default=0)
        return lookup

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> "ValueLookup":
        return cls.from_dict(json.loads(path.read_text()))


def _entry(by_attribute: Counter) -> tuple[str, float]:
    """The attribute a value was labelled with most often (ties: by name) and that share."""
    attribute, n = min(by_attribute.items(), key=lambda kv: (-kv[1], kv[0]))
    return attribute, n / sum(by_attribute.values())


def _value_counts(listings: Iterable[Listing]) -> dict[tuple[str, ...], Counter]:
    """value words -> how many listings labelled it with each attribute."""
    counts: dict[tuple[str, ...], Counter] = defaultdict(Counter)
    for listing in listings:
        for attribute, values in listing.target_values().items():
            for value in {v.strip().lower() for v in values}:
                key = _key(split_words(value))
                if key:
                    counts[key][attribute] += 1
    return counts


def prior_features(lookup: ValueLookup, words: list[Word], attributes: list[str]) -> torch.Tensor:
    """(W, 2N): for each word inside a known value of attribute a, the lookup's confidence at
    2a (the value's first word) or 2a + 1 (a later word); zeros elsewhere."""
    index = {a: i for i, a in enumerate(attributes)}
    features = np.zeros((len(words), 2 * len(attributes)), dtype=np.float32)  # numpy: a write is no torch call
    for match in lookup.match(words):
        a = index.get(match.attribute)
        if a is None:
            continue
        features[match.first_word, 2 * a] = match.confidence
        features[match.first_word + 1:match.end_word, 2 * a + 1] = match.confidence
    return torch.from_numpy(features)


def cross_fitted(listings: list[Listing], folds: int = 5, *, seed: int,
                 base: ValueLookup | None = None) -> list[ValueLookup]:
    """For each listing, a lookup built without it (from the other folds, on top of `base` when
    given: a fine-tune's corrections on the checkpoint's lookup). Trained on lookups that contain
    its own labels, the model would learn that the dictionary is always right. `seed` (the job's)
    deals the listings into folds."""
    order = list(range(len(listings)))
    random.Random(seed).shuffle(order)
    fold_of = {i: n % folds for n, i in enumerate(order)}
    base = base or ValueLookup({})
    lookups = [base.learned(l for i, l in enumerate(listings) if fold_of[i] != k) for k in range(folds)]
    return [lookups[fold_of[i]] for i in range(len(listings))]
