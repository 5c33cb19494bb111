"""From listings to tensors: words, sub-word tokens, gold tags, and padding into a batch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from dram.data.listings import Listing
from dram.data.tagging import Word, bio_tags, split_words, word_range
from dram.nn.config import DramConfig


@dataclass
class TextWindow:
    """One window of a listing's text, as the encoder reads it."""

    text: str  # the whole text; word offsets index it
    words: list[Word]  # this window's tagging units
    input_ids: list[int]
    word_first_token: list[int]  # index of each word's first sub-word ([CLS] is 0)
    # Words [owned[0], owned[1]) are this window's to report; the rest is context it shares with a
    # neighbouring window, which reports spans starting there. None: every word.
    owned: tuple[int, int] | None = None
    prior: torch.Tensor | None = None  # (W, 2N) value-lookup features (dram.nn.value_lookup.prior_features)
    allowed: torch.Tensor | None = None  # (N,) bool: the attributes its listing's category has (None: all)

    def owns(self, word: int) -> bool:
        return self.owned is None or self.owned[0] <= word < self.owned[1]


def _unit_tokens(text: str, ids: list[int], offsets: list[tuple[int, int]]
                 ) -> tuple[list[Word], list[int], list[int], list[int], list[int]]:
    """Map each tagging unit of the text to the first sub-word of the tokenised text that covers it.

    The encoder reads "C930H2MG" as it was pretrained to, not as five separate words, while the
    decoder still tags its units. Units the tokenizer drops (control characters) are left out.
    Returns (units, first token of each unit, content token ids, prefix ids, suffix ids).
    """
    content = [i for i, (a, b) in enumerate(offsets) if b > a]
    if not content:
        return [], [], [], ids, []
    prefix, suffix = ids[: content[0]], ids[content[-1] + 1:]
    token_start = np.array([offsets[i][0] for i in content])
    token_end = np.array([offsets[i][1] for i in content])
    words = split_words(text)
    # A unit's token: the first whose end lies past the unit's start (the running maximum of the
    # ends makes that one search for every unit); the unit is read if that token starts before it ends.
    first = np.searchsorted(np.maximum.accumulate(token_end), [w.start for w in words], side="right")
    covered = first < len(content)
    covered[covered] = token_start[first[covered]] < np.array([w.end for w in words])[covered]
    kept = covered.nonzero()[0].tolist()
    return [words[k] for k in kept], first[kept].tolist(), [ids[i] for i in content], prefix, suffix


def encode_texts(tokenizer, texts: Sequence[str], max_tokens: int) -> list[list[TextWindow]]:
    """Each text in windows of at most `max_tokens` sub-words, the texts tokenised in one call.

    Consecutive windows share a quarter of their units, and each reports only spans that start in
    its own part (up to the middle of the shared units), so a value is found with context on both
    sides and reported once.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("DRAM needs a fast (Rust) tokenizer for character offsets; the text encoder's "
                         "folder should hold tokenizer.json or vocab.txt.")
    encoded = tokenizer(list(texts), return_offsets_mapping=True)
    return [_windows(text, _unit_tokens(text, ids, offsets), max_tokens)
            for text, ids, offsets in zip(texts, encoded["input_ids"], encoded["offset_mapping"])]


def _windows(text: str, tokens: tuple[list[Word], list[int], list[int], list[int], list[int]],
             max_tokens: int) -> list[TextWindow]:
    """One text's windows from its units and tokens (`_unit_tokens`)."""
    units, first, content, prefix, suffix = tokens
    if not units:
        return [TextWindow(text, [], prefix + suffix, [], None)]
    budget = max(1, max_tokens - len(prefix) - len(suffix))

    def tokens_of(start: int, end: int) -> tuple[int, int]:
        return first[start], first[end] if end < len(units) else len(content)

    def window(start: int, end: int, owned: tuple[int, int] | None) -> TextWindow:
        a, b = tokens_of(start, end)
        b = min(b, a + budget)  # one unit longer than a window: its first sub-words only
        kept = [u for u in range(start, end) if first[u] < b]
        return TextWindow(text, [units[u] for u in kept], prefix + content[a:b] + suffix,
                           [len(prefix) + first[u] - a for u in kept], owned)

    if len(content) <= budget:
        return [window(0, len(units), None)]
    ranges: list[tuple[int, int]] = []
    start = 0
    while True:
        end = start + 1
        while end < len(units) and tokens_of(start, end + 1)[1] - first[start] <= budget:
            end += 1
        ranges.append((start, end))
        if end >= len(units):
            break
        start = max(start + 1, end - max(1, (end - start) // 4))
    windows = []
    for k, (start, end) in enumerate(ranges):
        own_from = 0 if k == 0 else (start + ranges[k - 1][1]) // 2 - start
        own_to = end - start if k == len(ranges) - 1 else (ranges[k + 1][0] + end) // 2 - start
        windows.append(window(start, end, (own_from, own_to)))
    return windows


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T) bool
    word_index: torch.Tensor  # (B, W) position of each word's first sub-word
    word_mask: torch.Tensor  # (B, W) bool, contiguous from 0
    has_image: torch.Tensor  # (B,) bool
    regions: torch.Tensor | None = None  # (B, R, C) cached region features
    pixels: torch.Tensor | None = None  # (B, 3, S, S) when the image encoder runs
    gold_attributes: torch.Tensor | None = None  # (B, N) float 0/1
    gold_tags: torch.Tensor | None = None  # (B, N, W) per attribute (ARM) or (B, W) joint
    prior: torch.Tensor | None = None  # (B, W, 2N) value-lookup features
    lower_states: torch.Tensor | None = None  # (B, T, H) cached output of frozen lower layers
    allowed: torch.Tensor | None = None  # (B, N) bool: the attributes each row's category has (dram.nn.category_schema)

    def to(self, device: torch.device | str) -> "Batch":
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in vars(self).items()}
        return Batch(**moved)


def gold_targets(config: DramConfig, encoded: TextWindow, listing: Listing) -> tuple[torch.Tensor, torch.Tensor]:
    """Gold attribute presence (N,) and tags: (N, W) per attribute with ARM, (W,) joint without."""
    index = {a: i for i, a in enumerate(config.attributes)}
    n_words = len(encoded.words)
    ranges: dict[str, list[tuple[int, int]]] = {a: [] for a in config.attributes}
    for span in listing.spans:
        if span.attribute not in index:
            continue
        covered = word_range(encoded.words, span.start, span.end)
        if covered is not None:
            ranges[span.attribute].append(covered)
    present = torch.tensor([1.0 if ranges[a] else 0.0 for a in config.attributes])
    tag_id = {t: i for i, t in enumerate(config.tags)}
    if config.use_arm:
        tags = torch.tensor([[tag_id[t] for t in bio_tags(n_words, ranges[a])] for a in config.attributes],
                            dtype=torch.long).reshape(len(config.attributes), n_words)
    else:
        joint = ["O"] * n_words
        for a in config.attributes:
            for i, t in enumerate(bio_tags(n_words, ranges[a], a)):
                if t != "O" and joint[i] == "O":
                    joint[i] = t
        tags = torch.tensor([tag_id[t] for t in joint], dtype=torch.long)
    return present, tags


def collate(encoded: list[TextWindow], has_image: list[bool], regions: torch.Tensor | None = None,
            pixels: torch.Tensor | None = None, gold: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
            pad_id: int = 0, lower_states: list[torch.Tensor] | None = None) -> Batch:
    batch = len(encoded)
    t_max = max(len(e.input_ids) for e in encoded)
    w_max = max(max(len(e.words) for e in encoded), 1)
    tokens = np.array([len(e.input_ids) for e in encoded])
    words = np.array([len(e.words) for e in encoded])
    input_ids = np.full((batch, t_max), pad_id, dtype=np.int64)  # filled in numpy: no torch call per row
    word_index = np.zeros((batch, w_max), dtype=np.int64)
    for b, e in enumerate(encoded):
        input_ids[b, : tokens[b]] = e.input_ids
        word_index[b, : words[b]] = e.word_first_token
    result = Batch(torch.from_numpy(input_ids), torch.from_numpy(np.arange(t_max) < tokens[:, None]),
                   torch.from_numpy(word_index), torch.from_numpy(np.arange(w_max) < words[:, None]),
                   torch.tensor(has_image, dtype=torch.bool), regions=regions, pixels=pixels)
    if lower_states is not None:
        result.lower_states = torch.zeros((batch, t_max, lower_states[0].shape[-1]), dtype=lower_states[0].dtype)
        for b, states in enumerate(lower_states):
            result.lower_states[b, : states.shape[0]] = states
    if encoded[0].prior is not None:
        result.prior = torch.zeros((batch, w_max, encoded[0].prior.shape[-1]))
        for b, e in enumerate(encoded):
            result.prior[b, : len(e.words)] = e.prior
    if any(e.allowed is not None for e in encoded):
        n = next(e.allowed for e in encoded if e.allowed is not None).shape[0]
        result.allowed = torch.stack([e.allowed if e.allowed is not None else torch.ones(n, dtype=torch.bool)
                                      for e in encoded])
    if gold is not None:
        result.gold_attributes = torch.stack([g[0] for g in gold])
        per_attribute = gold[0][1].dim() == 2
        shape = (batch, gold[0][1].shape[0], w_max) if per_attribute else (batch, w_max)
        tags = torch.zeros(shape, dtype=torch.long)
        for b, (_, t) in enumerate(gold):
            tags[b, ..., : t.shape[-1]] = t
        result.gold_tags = tags
    return result
