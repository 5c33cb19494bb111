"""What a pytorch-crf CRF says about a batch of sequences, as tensors: the Viterbi paths, each
position's tag marginals, and the B-I-O spans of the paths with their confidences.

pytorch-crf gives the Viterbi path (as Python lists, traced back one position and one sequence at a
time) and the likelihood, but no marginals. Here the paths are traced back for the whole batch at
once, forward-backward in log space gives P(tag_t = k | x), and a span's confidence is the mean
marginal of its path's tags; only the time steps loop in Python, never the sequences or the spans'
words.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator

import numpy as np
import torch
from torchcrf import CRF


@dataclass
class RestrictedCrf:
    """A CRF's parameters over some of its tags: the CRF with every other tag forbidden, as `viterbi`,
    `crf_marginals` and `log_likelihood` read a CRF. A listing's category allows 8-20 of WDC-PAVE's
    51 attributes: its rows then run on 17-41 of the 103 tags, with nothing masked to a huge negative
    (whose exp underflows, which made logsumexp 7x slower on this CPU)."""

    start_transitions: torch.Tensor
    end_transitions: torch.Tensor
    transitions: torch.Tensor

    @classmethod
    def of(cls, crf: CRF, tags: torch.Tensor) -> "RestrictedCrf":
        return cls(crf.start_transitions[tags], crf.end_transitions[tags], crf.transitions[tags][:, tags])


def allowed_groups(allowed: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(rows, tags) for each distinct row of `allowed` (B, K) bool: the rows that may take those tags."""
    patterns, inverse = torch.unique(allowed, dim=0, return_inverse=True)
    for k, pattern in enumerate(patterns):
        yield (inverse == k).nonzero().squeeze(1), pattern.nonzero().squeeze(1)


def log_likelihood(crf: CRF | RestrictedCrf, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) log P(tags | emissions) per sequence, as pytorch-crf's CRF.forward computes it (mask contiguous
    from position 0)."""
    batch, length, _ = emissions.shape
    rows = torch.arange(batch, device=emissions.device)
    lengths = mask.long().sum(1)
    later = torch.arange(1, length, device=emissions.device)
    steps = crf.transitions[tags[:, :-1], tags[:, 1:]] + emissions[rows[:, None], later, tags[:, 1:]]
    score = (crf.start_transitions[tags[:, 0]] + emissions[rows, 0, tags[:, 0]]
             + (steps * mask[:, 1:].to(emissions.dtype)).sum(1) + crf.end_transitions[tags[rows, lengths - 1]])
    return score - _log_partition(crf, _forward(crf, emissions, mask), lengths)


def _forward(crf: CRF | RestrictedCrf, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The forward messages (B, T, K); past a row's end its last one is carried."""
    length = emissions.shape[1]
    shortest = int(mask.long().sum(1).min()) - 1  # up to here every row is real: no masking needed
    alpha = [crf.start_transitions + emissions[:, 0]]
    for t in range(1, length):
        step = torch.logsumexp(alpha[-1].unsqueeze(2) + crf.transitions.unsqueeze(0), dim=1) + emissions[:, t]
        alpha.append(step if t <= shortest else torch.where(mask[:, t : t + 1], step, alpha[-1]))
    return torch.stack(alpha, 1)


def _log_partition(crf: CRF | RestrictedCrf, alpha: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B,) log Z from the stacked forward messages (B, T, K)."""
    return torch.logsumexp(alpha[torch.arange(alpha.shape[0]), lengths - 1] + crf.end_transitions, dim=1)


def viterbi(crf: CRF | RestrictedCrf, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """emissions (B, T, K), mask (B, T) bool, contiguous from position 0 -> best paths (B, T), tag 0
    past each sequence's end. The same arithmetic as `CRF.decode`, so the same paths, ties included."""
    batch, length, _ = emissions.shape
    ends = mask.long().sum(1) - 1
    shortest = int(ends.min())  # up to here every row is real: no masking needed
    score = crf.start_transitions + emissions[:, 0]
    history = []  # history[t][b, k]: the best tag at t given tag k at t + 1
    for t in range(1, length):
        step, best_previous = (score.unsqueeze(2) + crf.transitions + emissions[:, t].unsqueeze(1)).max(dim=1)
        score = step if t <= shortest else torch.where(mask[:, t].unsqueeze(1), step, score)
        history.append(best_previous)
    last = (score + crf.end_transitions).max(dim=1).indices
    tags = torch.where(ends == length - 1, last, 0)
    paths = [tags]
    for t in range(length - 2, -1, -1):
        traced = history[t].gather(1, tags.unsqueeze(1)).squeeze(1)
        tags = traced if t < shortest else torch.where(ends == t, last, torch.where(ends > t, traced, 0))
        paths.append(tags)
    return torch.stack(paths[::-1], 1)


def crf_marginals(crf: CRF | RestrictedCrf, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """emissions (B, T, K), mask (B, T) bool, contiguous from position 0 -> marginals (B, T, K)."""
    batch, length, _ = emissions.shape
    lengths = mask.long().sum(1)
    shortest = int(lengths.min()) - 1  # up to here every row is real: no masking needed
    trans = crf.transitions.unsqueeze(0)  # (1, K, K): from i to j
    alpha_t = _forward(crf, emissions, mask)
    beta = [None] * length
    last = crf.end_transitions.expand(batch, -1)
    beta[length - 1] = last
    for t in range(length - 2, -1, -1):
        step = torch.logsumexp(trans + (emissions[:, t + 1] + beta[t + 1]).unsqueeze(1), dim=2)
        if t < shortest:
            beta[t] = step
            continue
        # At a sequence's last real position the backward message is the end transition.
        is_last = (lengths - 1 == t).unsqueeze(1)
        beta[t] = torch.where(is_last, last, torch.where(mask[:, t + 1 : t + 2], step, beta[t + 1]))
    beta_t = torch.stack(beta, 1)
    log_z = _log_partition(crf, alpha_t, lengths)
    return torch.exp(alpha_t + beta_t - log_z[:, None, None]) * mask.unsqueeze(2)


@dataclass
class TaggedSpans:
    """The spans of a batch's paths, one entry per span in (row, first word) order, as Python lists."""

    row: list[int]
    first_word: list[int]
    end_word: list[int]
    tag: list[int]  # the tag of the span's first word: its B (or a stray I), which names the span's label
    confidence: list[float]  # the mean marginal of the path's tags over the span's words


def tagged_spans(crf: CRF | RestrictedCrf, emissions: torch.Tensor, mask: torch.Tensor, tags: list[str]) -> TaggedSpans:
    """The B-I-O spans of the Viterbi paths, as `dram.data.tagging.bio_ranges` reads tags (a stray I
    opens a span, an I of another label too), each with its confidence.

    `tags`: the tag names by id ("O", "B", "I" or "B-colour", ...). Marginals are computed only for
    the rows whose path tags a span, up to the longest of them. The spans are read off the paths in
    numpy, where each of these small steps costs a fraction of a torch call.
    """
    paths = viterbi(crf, emissions, mask)
    path, lengths = paths.cpu().numpy(), mask.sum(1).cpu().numpy()
    kind_of, label_of = _tag_tables(tuple(tags))
    kind, label = kind_of[path], label_of[path]  # kind: 0 O, 1 B, 2 I
    inside = (kind > 0) & (np.arange(path.shape[1]) < lengths[:, None])
    continues = np.zeros_like(inside)
    continues[:, 1:] = (kind[:, 1:] == 2) & inside[:, :-1] & (label[:, 1:] == label[:, :-1])
    starts = inside & ~continues
    tagging = inside.any(1).nonzero()[0]
    if len(tagging) == 0:
        return TaggedSpans([], [], [], [], [])
    length = int(lengths[tagging].max())
    if len(tagging) < len(path) or length < path.shape[1]:
        rows = torch.from_numpy(tagging).to(emissions.device)
        emissions, mask, paths = emissions[rows, :length], mask[rows, :length], paths[rows, :length]
    on_path = crf_marginals(crf, emissions, mask).gather(2, paths.unsqueeze(2)).squeeze(2).cpu().numpy()  # (R, length)
    words = inside[tagging, :length]
    member = (starts[tagging, :length].cumsum() - 1).reshape(words.shape)[words]  # each word's span
    total = np.zeros(int(starts.sum()), dtype=np.float32)
    np.add.at(total, member, on_path[words])  # word by word in reading order, in float32
    count = np.bincount(member, minlength=len(total))
    row, first = starts.nonzero()
    return TaggedSpans(row.tolist(), first.tolist(), (first + count).tolist(), path[row, first].tolist(),
                       (total / count.astype(np.float32)).tolist())


def merged(parts: list[tuple[torch.Tensor, torch.Tensor, TaggedSpans]]) -> TaggedSpans:
    """One batch's spans from the spans of groups of its rows, each found on some of the tags:
    (rows, tags, spans) with the spans' rows and tags numbered within the group."""
    found = sorted((int(rows[r]), first, end, int(tags[tag]), conf) for rows, tags, spans in parts
                   for r, first, end, tag, conf in zip(spans.row, spans.first_word, spans.end_word, spans.tag,
                                                       spans.confidence))
    return TaggedSpans(*(list(column) for column in zip(*found))) if found else TaggedSpans([], [], [], [], [])


@lru_cache(maxsize=64)
def _tag_tables(tags: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per tag id: its kind (0 O, 1 B, 2 I) and its label's number (tags of one label share it)."""
    names = [tag.partition("-")[2] for tag in tags]
    labels = {name: i for i, name in enumerate(dict.fromkeys(names))}
    kind = np.array([{"O": 0, "B": 1, "I": 2}[tag.partition("-")[0]] for tag in tags])
    return kind, np.array([labels[name] for name in names])
