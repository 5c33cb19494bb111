"""Training copies of photo-less listings with labelled values swapped for other training values of the
same attribute ("Roaring Spring Notebook" -> "Mead Notebook"), so the tagger sees more value strings,
lengths and word shapes in each context instead of learning the few it was given by heart.

A listing with a photo gets no copy: the photo would show the old value (a navy shirt described as red).
Each copy reads the value lookup its source reads (`cross_fitted`), so a copy never learns from a
dictionary that holds its source's own labels. The copies fit inside the step budget (`rows_within_budget`),
so training takes as many optimizer steps as without them: where `min_epochs` already sets the
budget (a large catalogue), fewer listings are copied, or none.
"""
from __future__ import annotations

import copy
import random
from collections import defaultdict

from dram.data.listings import Listing
from dram.data.spans import Span
from dram.nn.value_lookup import ValueLookup


def value_pool(listings: list[Listing]) -> dict[str, list[str]]:
    """Each attribute's distinct labelled values (one line each), in a fixed order."""
    pool: dict[str, set[str]] = defaultdict(set)
    for listing in listings:
        for span in listing.spans:
            value = listing.span_text(span)
            if value.strip() and "\n" not in value:
                pool[span.attribute].add(value)
    return {attribute: sorted(values) for attribute, values in pool.items()}


def swapped(listing: Listing, pool: dict[str, list[str]], rng: random.Random, chance: float) -> Listing | None:
    """A copy of the listing with each labelled value swapped with probability `chance` for another of its
    attribute's values, every mention of it alike ("Xerox ... Xerox" stays one brand); a value that
    overlaps another label is left as it is. None when nothing was swapped."""
    spans = sorted(listing.spans, key=lambda s: (s.start, s.end))
    lone = [s for s in spans if all(o is s or o.end <= s.start or o.start >= s.end for o in spans)]
    new_value: dict[tuple[str, str], str] = {}
    for span in lone:
        key = (span.attribute, listing.span_text(span))
        if key not in new_value:
            others = [v for v in pool.get(span.attribute, ()) if v != key[1]]
            new_value[key] = rng.choice(others) if others and rng.random() < chance else key[1]
    edits = {(s.start, s.end): new_value[(s.attribute, listing.span_text(s))] for s in lone  # in reading order
             if new_value[(s.attribute, listing.span_text(s))] != listing.span_text(s)}
    if not edits:
        return None

    def moved(position: int) -> int:
        return position + sum(len(value) - (end - start) for (start, end), value in edits.items() if end <= position)

    pieces, cursor = [], 0
    for (start, end), value in edits.items():
        pieces += [listing.text[cursor:start], value]
        cursor = end
    text = "".join(pieces) + listing.text[cursor:]
    spans_out = []
    for span in spans:
        start = moved(span.start)
        value = edits.get((span.start, span.end))
        spans_out.append(Span(start, start + len(value) if value is not None else moved(span.end), span.attribute))
    meta = copy.deepcopy(listing.meta)
    if listing.states_slots():  # the labelled slots follow the new values; n/a slots stay n/a
        for attribute in {s.attribute for s in spans_out}:
            meta["target_values"][attribute] = sorted({text[s.start:s.end] for s in spans_out if s.attribute == attribute})
    return Listing(f"{listing.id}~swapped", text, None, spans_out, meta)


def with_swapped_copies(listings: list[Listing], lookups: list[ValueLookup] | None, chance: float, seed: int,
                        room: int) -> tuple[list[Listing], list[ValueLookup] | None]:
    """The listings followed by at most `room` swapped copies of photo-less ones (each listing's copy
    reading its lookup), drawn with `seed`."""
    if chance <= 0 or room <= 0:
        return listings, lookups
    rng = random.Random(seed)
    pool = value_pool(listings)
    candidates = [i for i, listing in enumerate(listings) if listing.image is None and listing.spans]
    if len(candidates) > room:
        candidates = sorted(rng.sample(candidates, room))
    copies, sources = [], []
    for i in candidates:
        made = swapped(listings[i], pool, rng, chance)
        if made is not None:
            copies.append(made)
            sources.append(i)
    return listings + copies, None if lookups is None else lookups + [lookups[i] for i in sources]
