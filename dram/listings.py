"""Canonical listing format: one JSON object per line.

`{"id", "text", "image": optional path relative to the file, "spans": [{"start", "end", "attribute"}]}`
or, instead of spans, `"values": {"Attribute": ["value", ...]}` located in the text by the loader.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

log = logging.getLogger(__name__)


from dram.errors import DramInputError


class ListingError(DramInputError):
    """A listing that cannot be used as given; the message says which and why."""


@dataclass(frozen=True, order=True)
class Span:
    start: int
    end: int
    attribute: str

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "attribute": self.attribute}


@dataclass
class Listing:
    id: str
    text: str
    image: Path | None = None
    spans: list[Span] = field(default_factory=list)

    def span_text(self, span: Span) -> str:
        return self.text[span.start:span.end]

    def attributes(self) -> set[str]:
        return {s.attribute for s in self.spans}
