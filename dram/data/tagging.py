"""Words as tagging units, and the B-I-O scheme between character spans and word tags.

A tagging unit is a run of letters, a run of digits, a single CJK character, or a single other
symbol; a run of letters also breaks where a lower-case letter meets an upper-case one. English
titles tag per word and Chinese text per character, as MEPAVE is annotated, and values glued to
their neighbours in scraped descriptions ("13w x 4d", "COLOR: BlackALTERNATE ITEM") can still be
tagged on their own.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD = re.compile(rf"[{_CJK}]|\d+|[^\W\d_{_CJK}]+|[^\w\s]|_")
_CASE_BREAK = re.compile(r"(?<=[a-z])(?=[A-Z])")


@dataclass(frozen=True)
class Word:
    start: int
    end: int
    text: str


def split_words(text: str) -> list[Word]:
    words = []
    for match in _WORD.finditer(text):
        start = match.start()
        for piece in _CASE_BREAK.split(match.group()):
            words.append(Word(start, start + len(piece), piece))
            start += len(piece)
    return words


def word_range(words: list[Word], start: int, end: int) -> tuple[int, int] | None:
    """Words covering the character span [start, end): (first, last+1), or None if it covers none."""
    inside = [i for i, w in enumerate(words) if w.start < end and w.end > start]
    if not inside:
        return None
    return inside[0], inside[-1] + 1


def bio_tags(n_words: int, ranges: list[tuple[int, int]], label: str = "") -> list[str]:
    """B-I-O tags for word ranges; `label` suffixes the tags ("B-colour") for a joint tag set."""
    suffix = f"-{label}" if label else ""
    tags = ["O"] * n_words
    for first, last in ranges:
        tags[first] = "B" + suffix
        for i in range(first + 1, last):
            tags[i] = "I" + suffix
    return tags


def bio_ranges(tags: list[str]) -> list[tuple[int, int, str]]:
    """Decode B-I-O tags into (first, last+1, label) word ranges; a stray I opens a span."""
    ranges: list[tuple[int, int, str]] = []
    first, label = None, ""
    for i, tag in enumerate(tags + ["O"]):
        prefix, _, name = tag.partition("-")
        continues = prefix == "I" and first is not None and name == label
        if first is not None and not continues:
            ranges.append((first, i, label))
            first = None
        if prefix == "B" or (prefix == "I" and not continues):
            first, label = i, name
    return ranges
