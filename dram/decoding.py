"""The one way between a listing's text and what the model says about it, shared by the app, the
batch audit and every training job (predict, evaluate, the tau_R sweep, Ray), so a change to how
windows are read or merged is made once.

`listing_windows`: the text as the encoder's windows, with the value-lookup features.
`decode_listings`: the encoders' output for some listings' windows -> per listing its character
spans, ARM scores (each attribute's highest over the windows), words and TEM attention.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from dram.data.spans import Span, char_spans
from dram.data.tagging import Word
from dram.nn.batching import TextWindow, encode_windows
from dram.nn.config import DramConfig
from dram.nn.model import DecodedSpan, DramModel, EncoderOutput
from dram.nn.value_lookup import ValueLookup, prior_features


def listing_windows(tokenizer, config: DramConfig, text: str, lookup: ValueLookup | None) -> list[TextWindow]:
    """The whole text in the encoder's windows (`encode_windows`), each with its words' value-lookup
    features from `lookup` when the model reads them; [] when the text has no word the model can read."""
    windows = encode_windows(tokenizer, text, config.max_tokens)
    if not windows[0].words:
        return []
    if config.value_prior and lookup is not None:
        for window in windows:
            window.prior = prior_features(lookup, window.words, config.attributes)
    return windows


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
    out, first = [], 0
    for k, listing in enumerate(windows):
        spans: list[Span] = []
        for row, window in enumerate(listing, start=first):
            spans += char_spans(window.text, window.words, [d for d in by_row[row] if window.owns(d.first_word)])
        best = rows[first] if len(listing) == 1 else [max(column) for column in zip(*rows[first:first + len(listing)])]
        words = _owned_words(listing)
        attention = (_attention(model, listing, encoded, first, len(words))
                     if photos is not None and photos[k] and encoded.cross_attention is not None else None)
        out.append(DecodedListing(sorted(spans, key=lambda s: (s.start, s.attribute)),
                                  dict(zip(model.config.attributes, best)), words, attention))
        first += len(listing)
    return out


def _owned_words(windows: Sequence[TextWindow]) -> list[Word]:
    if len(windows) == 1 and windows[0].owned is None:
        return list(windows[0].words)
    return [w.words[j] for w in windows for j in range(len(w.words)) if w.owns(j)]


def _attention(model: DramModel, windows: Sequence[TextWindow], encoded: EncoderOutput, first: int,
               n_words: int) -> np.ndarray:
    """(n_words, grid, grid): each owned word's attention at its first sub-word, from the window that owns it."""
    parts = []
    for row, window in enumerate(windows, start=first):
        tokens = [window.word_first_token[j] for j in range(len(window.words)) if window.owns(j)]
        parts.append(encoded.cross_attention[row, tokens])  # (W, R)
    rows = torch.cat(parts)
    if not model.config.tem_softmax:
        rows = rows.softmax(-1)
    grid = int(round(rows.shape[-1] ** 0.5))
    return rows.reshape(n_words, grid, grid).float().cpu().numpy()
