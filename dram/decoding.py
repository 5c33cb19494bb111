"""The one way between a listing's text and what the model says about it, shared by the app, the
batch audit and every training job (predict, evaluate, the tau_R sweep, Ray), so a change to how
windows are read or merged is made once.

`listing_windows`: the texts as the encoder's windows, with the value-lookup features.
`decode_listings`: the encoders' output for some listings' windows -> per listing its character
spans (each grown to the longest training value of its attribute that holds it), ARM scores (each
attribute's highest over the windows), words and TEM attention.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch

from dram.data.spans import Span, char_spans
from dram.data.tagging import Word
from dram.nn.batching import TextWindow, encode_texts
from dram.nn.config import DramConfig
from dram.nn.model import DecodedSpan, DramModel, EncoderOutput
from dram.nn.value_lookup import ValueLookup, prior_features


def listing_windows(tokenizer, config: DramConfig, texts: Sequence[str], lookups: Sequence[ValueLookup | None],
                    allowed: Sequence[torch.Tensor | None] | None = None) -> list[list[TextWindow]]:
    """Each text in the encoder's windows (the texts tokenised in one call), each window with its words'
    value-lookup features from the text's lookup when the model reads them, and the attributes its
    listing's category allows (`allowed`, one per text: `CategorySchema.allowed`); [] for a text with
    no word the model can read."""
    out = []
    allowed = allowed if allowed is not None and config.category_schema else [None] * len(texts)
    for windows, lookup, mask in zip(encode_texts(tokenizer, texts, config.max_tokens), lookups, allowed, strict=True):
        if not windows[0].words:
            windows = []
        for window in windows:
            if config.value_prior and lookup is not None:
                window.prior = prior_features(lookup, window.words, config.attributes)
            window.allowed = mask
        out.append(windows)
    return out


@dataclass
class DecodedListing:
    """What the model says about one listing, its windows merged."""

    spans: list[Span]  # in reading order, each reported by the window that owns its first word
    scores: dict[str, float]  # ARM's existence score R per attribute: the highest any window gave
    words: list[Word]  # every word once, from the window that owns it
    # (n_words, grid, grid): each word's TEM attention over the photo's regions; None when not asked
    # for, the model has no TEM or the listing no photo.
    attention: np.ndarray | None = None


@torch.inference_mode()
def decode_listings(model: DramModel, windows: Sequence[Sequence[TextWindow]], encoded: EncoderOutput,
                    tau_r: float | None = None, photos: Sequence[bool] | None = None) -> list[DecodedListing]:
    """ARM and the CRF once for the batch, then one `DecodedListing` per listing.

    `encoded` has one row per window, the listings' windows one after another as in `windows`.
    `photos`: which listings had a photo, to give those their TEM attention (None: no attention).
    """
    scores, decoded = model.decode(encoded, tau_r)
    by_row: dict[int, list[DecodedSpan]] = defaultdict(list)
    for span in decoded:
        by_row[span.listing].append(span)
    rows = scores.tolist()
    wanted = [photos is not None and photos[k] and encoded.cross_attention is not None for k in range(len(windows))]
    attention = _attention(model, windows, encoded, wanted)
    out, first = [], 0
    for k, listing in enumerate(windows):
        spans: list[Span] = []
        for row, window in enumerate(listing, start=first):
            owned = [d for d in by_row[row] if window.owns(d.first_word)]
            spans += char_spans(window.text, window.words, _extended(model, window, owned))
        best = rows[first] if len(listing) == 1 else [max(column) for column in zip(*rows[first:first + len(listing)])]
        out.append(DecodedListing(sorted(spans, key=lambda s: (s.start, s.attribute)),
                                  dict(zip(model.config.attributes, best)), _owned_words(listing), attention[k]))
        first += len(listing)
    return out


def _extended(model: DramModel, window: TextWindow, spans: list[DecodedSpan]) -> list[DecodedSpan]:
    """Each span that lies inside a longer training value of its attribute, grown to the longest
    (`DramConfig.extend_to_known_values`). A grown span takes in the spans of its attribute it now
    covers (an attribute has one value on any word); it stays as tagged where it would cross one only
    in part, or reach words the next window reports."""
    lookup = model.value_lookup
    if not model.config.extend_to_known_values or lookup is None or not lookup.counts:
        return spans
    last = len(window.words) if window.owned is None else window.owned[1]
    out: list[DecodedSpan | None] = list(spans)
    for i, span in enumerate(out):
        if span is None:
            continue
        around = lookup.longest_holding(window.words, span.first_word, span.end_word, span.attribute)
        if around is None or not window.owns(around[0]) or around[1] > last:
            continue
        touched = [j for j, other in enumerate(out) if j != i and other is not None
                   and other.attribute == span.attribute and other.first_word < around[1] and around[0] < other.end_word]
        if all(around[0] <= out[j].first_word and out[j].end_word <= around[1] for j in touched):
            out[i] = replace(span, first_word=around[0], end_word=around[1])
            for j in touched:
                out[j] = None
    return [span for span in out if span is not None]


def _owned_words(windows: Sequence[TextWindow]) -> list[Word]:
    return [word for window in windows for word in _owned(window, window.words)]


def _owned(window: TextWindow, per_word: list) -> list:
    """The entries of `per_word` (one per word of the window) for the words the window owns."""
    return per_word if window.owned is None else per_word[slice(*window.owned)]


def _attention(model: DramModel, windows: Sequence[Sequence[TextWindow]], encoded: EncoderOutput,
               wanted: Sequence[bool]) -> list[np.ndarray | None]:
    """Per listing, (n_words, grid, grid): each owned word's attention at its first sub-word, from the
    window that owns it, where `wanted`; one gather for the whole batch."""
    rows, tokens, places, first = [], [], [], 0
    for listing, want in zip(windows, wanted):
        start = len(tokens)
        if want:
            for row, window in enumerate(listing, start=first):
                mine = _owned(window, window.word_first_token)
                rows += [row] * len(mine)
                tokens += mine
        places.append(slice(start, len(tokens)) if want else None)
        first += len(listing)
    if not any(wanted):
        return [None] * len(windows)
    picked = encoded.cross_attention[rows, tokens]  # (words, R)
    if not model.config.tem_softmax:
        picked = picked.softmax(-1)
    grid = int(round(picked.shape[-1] ** 0.5))
    maps = picked.float().cpu().numpy().reshape(-1, grid, grid)
    return [None if place is None else maps[place] for place in places]
