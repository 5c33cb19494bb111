"""Corrections checked before they teach: a corrected span is suspicious when its attribute
contradicts one that the serving model and its training data strongly agree on.

'Black' is colour in 900 training listings and the model tags it colour at 0.99; a correction
that calls it brand is more likely a slip (or a systematic mistake) than news, and fine-tuning on
it would teach the model to unlearn what the rest of the data says (confident learning: a label is
doubted where a confident model and the data's own counts disagree with it). A flag is a question,
not a verdict: the span is shown for a second look (`flagged_for`) and listed by the fine-tune,
whose promotion gate refuses a version that learned the flagged direction.

A span of an attribute the model has no output for (a new category's 'Metal Type' on words the old
data calls Color) is never a contradiction by itself: a new attribute relabels values legitimately.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Collection, Iterable

from dram.data.spans import Span
from dram.data.tagging import split_words
from dram.inference import Extractor
from dram.nn.value_lookup import ValueLookup
from review.edits import ReviewItem
from store.records import CurrentCorrection
from store.repository import Store


@dataclass(frozen=True)
class SuspicionSettings:
    # The decoder's marginal for the span, averaged over its words (with a span scorer, the mean of that
    # and the scorer's probability): at 0.9 the model is sure, below it the model's belief is a guess
    # that a correction is entitled to overrule.
    min_model_confidence: float = 0.9
    # Listings of the checkpoint's training data (and earlier corrections) that gave these words the
    # model's attribute: one or two could themselves be wrong; five make it the data's convention.
    min_training_count: int = 5
    # Share of those words' labels that named the model's attribute: below it the data already reads
    # them two ways ('Rose' as a colour and as a brand) and the correction may be the other reading.
    min_training_share: float = 0.9
    # Listings per model call when the serving model reads the corrected listings.
    batch_size: int = 32


@dataclass(frozen=True)
class Suspicion:
    """One corrected span whose attribute contradicts what the model and the training data agree on."""

    listing_id: int
    external_id: str | None
    correction_id: int
    start: int
    end: int
    text: str  # the span's words
    corrected_attribute: str  # what the correction says
    agreed_attribute: str  # what the model and the training data say
    model_confidence: float
    training_count: int  # training listings that gave these words the agreed attribute
    training_share: float  # that count's share of all the labels these words had

    def describe(self) -> str:
        return _doubt(self.text, self.corrected_attribute, self.agreed_attribute, self.model_confidence,
                      self.training_count, self.training_share)


def _doubt(words: str, corrected: str, agreed: str, confidence: float, count: int, share: float) -> str:
    return (f"'{words}' is marked {corrected}, but the model says {agreed} ({confidence:.2f}) and {count} training "
            f"listings ({share:.0%} of those with these words) call it {agreed}")


def doubts_before_saving(item: ReviewItem, extractor: Extractor,
                         settings: SuspicionSettings = SuspicionSettings()) -> list[str]:
    """The second look the Annotate tab asks for before a save: each of the item's spans that contradicts
    what the model (as it predicted this listing, no new model call) and its training data agree on."""
    predicted = [replace(span, confidence=confidence) for span, confidence in item.confidences]
    found = contradicted_spans(item.text, item.spans, predicted, extractor.model.value_lookup,
                               set(extractor.attributes), settings)
    return [_doubt(item.text[s.start:s.end], s.attribute, belief.attribute, float(belief.confidence or 0.0),
                   counts[belief.attribute], counts[belief.attribute] / sum(counts.values()))
            for s, belief, counts in found]


def training_counts(lookup: ValueLookup | None, words: str) -> Counter:
    """How many training listings labelled exactly these words with each attribute."""
    if lookup is None:
        return Counter()
    return Counter(lookup.counts.get(tuple(w.text.lower() for w in split_words(words)), Counter()))


def model_belief(span: Span, predicted: Iterable[Span]) -> Span | None:
    """The model's most confident span over any of the corrected span's characters, or None."""
    overlapping = [p for p in predicted if p.start < span.end and span.start < p.end]
    return max(overlapping, key=lambda p: p.confidence or 0.0, default=None)


def contradicted_spans(text: str, corrected: Iterable[Span], predicted: list[Span], lookup: ValueLookup | None,
                       model_attributes: Collection[str], settings: SuspicionSettings = SuspicionSettings(),
                       ) -> list[tuple[Span, Span, Counter]]:
    """(corrected span, the model's span, training counts) for each corrected span whose attribute
    contradicts an attribute both the model and the training data hold strongly."""
    found = []
    for span in corrected:
        if span.attribute not in model_attributes:
            continue  # a new attribute: nothing old to contradict
        belief = model_belief(span, predicted)
        if belief is None or belief.attribute == span.attribute:
            continue
        if (belief.confidence or 0.0) < settings.min_model_confidence:
            continue
        counts = training_counts(lookup, text[span.start:span.end])
        agreed = counts[belief.attribute]
        if agreed >= settings.min_training_count and agreed / sum(counts.values()) >= settings.min_training_share:
            found.append((span, belief, counts))
    return found


def check_corrections(store: Store, extractor: Extractor, settings: SuspicionSettings = SuspicionSettings(),
                      listing_ids: Collection[int] | None = None) -> list[Suspicion]:
    """The suspicious spans of the store's current corrections (of `listing_ids` only, when given),
    judged by `extractor`'s model (the serving one, or the checkpoint a fine-tune starts from)."""
    currents = store.current_corrections(listing_ids)
    attributes = set(extractor.attributes)
    lookup = extractor.model.value_lookup
    found = []
    for start in range(0, len(currents), settings.batch_size):
        chunk = currents[start:start + settings.batch_size]
        extractions = extractor.extract_batch([(c.listing.text, c.photo) for c in chunk],
                                              batch_size=settings.batch_size)
        for current, extraction in zip(chunk, extractions):
            if isinstance(extraction, Exception):
                continue  # the model cannot read it, so it holds no belief about it
            found += _suspicions(current, contradicted_spans(current.listing.text, current.spans, extraction.spans,
                                                             lookup, attributes, settings))
    return found


def flagged_for(store: Store, extractor: Extractor, listing_id: int,
                settings: SuspicionSettings = SuspicionSettings()) -> list[Suspicion]:
    """The listing's current correction's suspicious spans (empty: nothing to look at twice); for the
    Annotate tab's "second look" note. One model call."""
    return check_corrections(store, extractor, settings, [listing_id])


def _suspicions(current: CurrentCorrection, spans: list[tuple[Span, Span, Counter]]) -> list[Suspicion]:
    return [Suspicion(current.listing.id, current.listing.external_id, current.correction_id, span.start, span.end,
                      current.listing.text[span.start:span.end], span.attribute, belief.attribute,
                      float(belief.confidence or 0.0), counts[belief.attribute],
                      counts[belief.attribute] / sum(counts.values()))
            for span, belief, counts in spans]


def suspicion_table(flags: list[Suspicion]) -> str:
    """Markdown table of the flagged spans, for the fine-tune's log."""
    rows = ["| listing | correction | words | corrected to | model and data say | model confidence | "
            "training listings |", "|---|---:|---|---|---|---:|---:|"]
    for f in flags:
        name = f"{f.listing_id}" + (f" ({f.external_id})" if f.external_id else "")
        rows.append(f"| {name} | {f.correction_id} | {f.text} | {f.corrected_attribute} | {f.agreed_attribute} | "
                    f"{f.model_confidence:.2f} | {f.training_count} ({f.training_share:.0%}) |")
    return "\n".join(rows)
