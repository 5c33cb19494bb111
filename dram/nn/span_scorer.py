"""Candidate spans scored per attribute beside the joint CRF, and the vote between the two.

The CRF tags one label per word from per-word emissions, so a value's two ends are decided apart;
its misses on WDC-PAVE are mostly values cut short or run long, or put under a neighbouring
attribute (BENCHMARKS.md, "Where the recall goes"). The scorer reads the whole candidate at once:
every span of up to `max_width` words, from the decoder's BiLSTM states at its first and last
word, their mean over its words and its width, scored against each attribute and "no value" (a
softmax over N + 1). Both are trained together on the shared BiLSTM, and at decoding a span's
support is the CRF's confidence in it plus the scorer's probability (`vote`).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as nnf
from torch import nn

from dram.nn.arm import grown_linear

# A span is reported when the CRF's confidence in it plus the scorer's probability is above this:
# a span both half-believe, or one either is sure of. Chosen on validation (BENCHMARKS.md, "A span
# scorer beside the CRF"); 0.5 to 0.8 scored alike there, and the lowest keeps the most recall.
VOTE_THRESHOLD = 0.5
# Per row and attribute, the scorer's most probable spans that take part in the vote.
CANDIDATES = 3
CANDIDATE_FLOOR = 0.02


class Vote(NamedTuple):
    """A span in the vote: its row, attribute index, words first..end-1 and support (CRF + scorer)."""

    row: int
    attribute: int
    first_word: int
    end_word: int
    support: float


class SpanScorer(nn.Module):
    def __init__(self, input_size: int, n_attributes: int, max_width: int = 10, size: int = 150):
        super().__init__()
        self.max_width = max_width
        self.start = nn.Linear(input_size, size)
        self.end = nn.Linear(input_size, size, bias=False)
        self.width = nn.Embedding(max_width, size)
        self.inside = nn.Linear(input_size, size, bias=False)  # the mean of the span's words
        self.hidden = nn.Linear(size, size)
        self.out = nn.Linear(size, n_attributes + 1)  # class 0: no value
        with torch.no_grad():  # almost every span is no value: start there, not at a loss of N + 1 classes' chance
            self.out.bias.zero_()
            self.out.bias[0] = 4.0

    def forward(self, states: torch.Tensor, mask: torch.Tensor,
                allowed: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, W, K, 1 + N) logits of the span from word i of width k + 1 (attributes a row's category
        does not allow, `allowed` (B, N) bool, never chosen) and (B, W, K) which spans lie in the text."""
        n_words = states.shape[1]
        width = min(self.max_width, n_words)
        ends = at_span_ends(self.end(states), width)
        spans = torch.relu(self.start(states)[:, :, None] + ends + span_means(self.inside(states), width)
                           + self.width.weight[:width])
        logits = self.out(torch.relu(self.hidden(spans)))
        last = torch.arange(n_words, device=states.device)[:, None] + torch.arange(width, device=states.device)
        exists = last[None] < mask.sum(1)[:, None, None]
        if allowed is not None:
            keep = torch.cat([allowed.new_ones((allowed.shape[0], 1)), allowed], dim=1)
            logits = logits.masked_fill(~keep[:, None, None, :], -1e4)
        return logits, exists

    def loss(self, logits: torch.Tensor, exists: torch.Tensor, gold_tags: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of every span in the text, summed per listing (as the CRF's NLL sums its words),
        averaged over the batch; the gold spans read from the joint tags (B-a = 1 + 2a, I-a = 2 + 2a)."""
        target = gold_span_classes(gold_tags, exists.shape[2]).to(logits.device)
        return nnf.cross_entropy(logits[exists], target[exists], reduction="sum") / logits.shape[0]

    @torch.no_grad()
    def candidates(self, logits: torch.Tensor, exists: torch.Tensor) -> list[Vote]:
        """Per row and attribute, its `CANDIDATES` most probable spans above `CANDIDATE_FLOOR`."""
        probs = logits.softmax(-1).masked_fill(~exists[..., None], 0.0)[..., 1:]
        batch, n_words, width, n_attr = probs.shape
        flat = probs.permute(0, 3, 1, 2).reshape(batch, n_attr, n_words * width)
        values, index = flat.topk(min(CANDIDATES, flat.shape[-1]), dim=-1)
        out = []
        for b, a, r in (values > CANDIDATE_FLOOR).nonzero().tolist():
            first, k = divmod(int(index[b, a, r]), width)
            out.append(Vote(b, a, first, first + k + 1, float(values[b, a, r])))
        return out

    def grow(self, n_new: int, silent_logit: float) -> None:
        """Scores for `n_new` more attributes, silent (`silent_logit`) until `switch_on`."""
        self.out = grown_linear(self.out, n_new, silent_logit)

    def switch_on(self, attributes: list[int]) -> None:
        with torch.no_grad():
            self.out.bias[[1 + a for a in attributes]] = 0.0


def at_span_ends(values: torch.Tensor, width: int) -> torch.Tensor:
    """(B, W, width, D): `values` (B, W, D) of word i + k, the last word of the span from word i of
    width k + 1 (zeros past the last word; those spans do not exist). One padded copy of `values`,
    read through views."""
    return nnf.pad(values, (0, 0, 0, width - 1)).unfold(1, width, 1).permute(0, 1, 3, 2)


def span_means(values: torch.Tensor, width: int) -> torch.Tensor:
    """(B, W, width, D): the mean of `values` (B, W, D) over words i..i+k, from running sums (spans
    past the last word get what the zero padding gives; they do not exist)."""
    running = values.cumsum(1)
    through = at_span_ends(running, width)  # sums over 0..i+k
    before = nnf.pad(running, (0, 0, 1, 0))[:, : values.shape[1], None]  # sums over 0..i-1
    return (through - before) / torch.arange(1, width + 1, device=values.device, dtype=values.dtype)[:, None]


def gold_span_classes(gold_tags: torch.Tensor, width: int) -> torch.Tensor:
    """(B, W, width) class of each span under the joint tags (B, W): 1 + a for a span tagged B-a I-a...
    ending where the I's end, 0 (no value) for every other; a value longer than `width` words has none."""
    tags = gold_tags.cpu()
    target = torch.zeros((*tags.shape, width), dtype=torch.long)
    begins = (tags > 0) & (tags % 2 == 1)
    for b, i in begins.nonzero().tolist():
        inside = int(tags[b, i]) + 1
        end = i + 1
        while end < tags.shape[1] and int(tags[b, end]) == inside:
            end += 1
        if end - i <= width:
            target[b, i, end - i - 1] = (int(tags[b, i]) - 1) // 2 + 1
    return target


def vote(tagged: list[Vote], scored: list[Vote], threshold: float = VOTE_THRESHOLD) -> list[Vote]:
    """The spans to report: each span's support is the CRF's confidence in it (if it tagged it) plus the
    scorer's probability (if a candidate); those above `threshold`, the best first, none overlapping
    a better one (one label per word, as the CRF's own paths have). Support is returned halved, a
    confidence in 0..1."""
    support: dict[tuple[int, int, int, int], float] = {}
    for span in (*tagged, *scored):
        key = span[:4]
        support[key] = support.get(key, 0.0) + span.support
    kept: list[Vote] = []
    taken: dict[int, list[tuple[int, int]]] = {}
    for key, total in sorted(support.items(), key=lambda item: (-item[1], item[0])):
        if total <= threshold:
            break
        row, _, first, end = key
        if any(first < e and f < end for f, e in taken.get(row, [])):
            continue
        taken.setdefault(row, []).append((first, end))
        kept.append(Vote(*key, total / 2))
    return sorted(kept, key=lambda v: (v.row, v.first_word))
