"""Canonical listing format: one JSON object per line.

`{"id", "text", "image": optional path relative to the file, "spans": [{"start", "end", "attribute"}]}`
or, instead of (or as well as) spans, `"values": {"Attribute": ["value", ...]}` which the loader
locates in the text: every occurrence, case-insensitive, on word boundaries. An attribute with an
empty list was checked and has no value ("n/a"). The values as given are kept in
`meta["target_values"]`, so the value-level (slot) metric can score them, found in the text or not.

This module is what a listing is and the checks every format's records go through; reading files
(this format, CSV and the public ones) is `dram.data.readers`'. Nothing is dropped silently: a
listing that cannot be used keeps its place with the reason, a span that cannot be used is skipped
with a warning naming the line and the listing id, both counted in a `LoadReport`, so a training
run can tell how much of its file it actually used. Any other keys of a record are kept in
`Listing.meta` and written back, so benchmark flags survive a read/write round trip.
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from dram.data.photo_sources import PhotoNotFound, PhotoSource
from dram.data.spans import Span, SpanError, checked_span, clash
from dram.data.tagging import split_words
from dram.errors import DramInputError

log = logging.getLogger(__name__)

_CORE_KEYS = {"id", "text", "image", "spans", "values"}


class ListingError(DramInputError):
    """A listing that cannot be used as given; the message says which and why."""


@dataclass
class Listing:
    """One listing; its photo is a file or, from the store or an uploaded zip, the photo's bytes
    (both are what `dram.data.images.load_image` reads), so no photo is written out to be read back."""

    id: str
    text: str
    image: Path | bytes | None = None
    spans: list[Span] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def span_text(self, span: Span) -> str:
        return self.text[span.start:span.end]

    def attributes(self) -> set[str]:
        return {s.attribute for s in self.spans}

    def category(self) -> str | None:
        """The listing's category when its file says one (WDC-PAVE's `category`, Myntra's catalogue master category)."""
        catalogue = self.meta.get("catalogue")
        category = self.meta.get("category") or (catalogue.get("masterCategory") if isinstance(catalogue, dict) else None)
        return str(category) if category else None

    def states_slots(self) -> bool:
        """Whether the file says which attributes people checked (a value or n/a each), not only spans."""
        return isinstance(self.meta.get("target_values"), dict)

    def target_values(self) -> dict[str, list[str]]:
        """The labelled slots: attribute -> gold values ([] = checked, no value). Listings labelled
        by spans only have a slot for each attribute they mark."""
        if self.states_slots():
            return self.meta["target_values"]
        slots: dict[str, list[str]] = {}
        for span in self.spans:
            slots.setdefault(span.attribute, []).append(self.span_text(span))
        return slots


@dataclass
class LoadReport:
    """What a loader read, kept and skipped; `problems` holds one readable line per issue."""

    n_read: int = 0
    n_loaded: int = 0
    n_skipped: int = 0
    n_spans_skipped: int = 0
    values_not_found: int = 0
    problems: list[str] = field(default_factory=list)

    def skip_listing(self, where: str, reason: str) -> None:
        self.n_skipped += 1
        self._problem(f"{where}: listing skipped: {reason}")

    def skip_span(self, where: str, reason: str) -> None:
        self.n_spans_skipped += 1
        self._problem(f"{where}: span skipped: {reason}")

    def value_not_found(self, where: str, attribute: str, value: str) -> None:
        self.values_not_found += 1
        self._problem(f"{where}: value {value!r} of {attribute!r} not found in the text")

    def merge(self, other: LoadReport) -> None:
        self.n_read += other.n_read
        self.n_loaded += other.n_loaded
        self.n_skipped += other.n_skipped
        self.n_spans_skipped += other.n_spans_skipped
        self.values_not_found += other.values_not_found
        self.problems.extend(other.problems)

    def summary(self) -> str:
        return (f"{self.n_loaded} of {self.n_read} listings loaded, {self.n_skipped} skipped, "
                f"{self.n_spans_skipped} spans skipped, {self.values_not_found} values not found")

    def _problem(self, message: str) -> None:
        log.warning(message)
        self.problems.append(message)


def value_pattern(value: str) -> re.Pattern[str]:
    """Case-insensitive pattern for `value`, any run of whitespace between its words."""
    words = [re.escape(w) for w in value.split()]
    return re.compile(r"\s+".join(words), re.IGNORECASE)


def locate_values(text: str, values: dict[str, list[str]]) -> tuple[list[Span], list[tuple[str, str]]]:
    """Spans for every occurrence of each value, and the (attribute, value) pairs not found.

    An occurrence must start and end on tagging-unit boundaries (`dram.data.tagging.split_words`):
    "13" is found in "13w x 4d" but not in "2013". When two values of one attribute overlap
    ("Navy Blue" and "Blue"), the longer match wins.
    """
    units = split_words(text)
    starts, ends = {w.start for w in units}, {w.end for w in units}
    found: list[Span] = []
    missing: list[tuple[str, str]] = []
    for attribute, vals in values.items():
        matches: list[Span] = []
        for value in vals:
            if not value.strip():
                continue
            hits = [Span(m.start(), m.end(), attribute) for m in value_pattern(value).finditer(text)
                    if m.start() in starts and m.end() in ends]
            if not hits:
                missing.append((attribute, value))
            matches.extend(hits)
        matches.sort(key=lambda s: (s.start, s.start - s.end))
        for span in matches:
            if clash(span, found) is None:
                found.append(span)
    return sorted(found), missing


class UnusableListing(ValueError):
    """A record that cannot be a listing; the message says why, and the record keeps its place in the file."""


def listing_from_record(record: dict, *, where: str, photos: PhotoSource, report: LoadReport,
                        attributes: Iterable[str] | None = None) -> Listing:
    """Validate one canonical record; raises `UnusableListing` when the listing cannot be used.

    Shared by every format (`dram.data.readers`) so that all get the same checks and messages; a span
    that cannot be used is skipped and counted in `report`, the listing kept. `photos` finds the
    photo the record names.
    """
    allowed = set(attributes) if attributes is not None else None
    raw_id = record.get("id")
    if not isinstance(raw_id, (str, int)) or str(raw_id).strip() == "":
        raise UnusableListing("it has no \"id\"")
    lid = str(raw_id)
    where = f"{where} (listing {lid!r})"
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise UnusableListing("its \"text\" is empty or missing")
    values = record.get("values") or {}
    if not isinstance(values, dict):
        raise UnusableListing("\"values\" must be an object {\"Attribute\": [\"value\", ...]}")
    try:
        image = photos.find(str(record["image"])) if record.get("image") else None
    except PhotoNotFound as err:
        raise UnusableListing(str(err)) from err

    spans: list[Span] = []
    for raw in record.get("spans") or []:
        try:
            span = checked_span(raw, text, allowed).bare()
        except SpanError as err:
            report.skip_span(where, str(err))
            continue
        problem = clash(span, spans)
        if problem is not None:
            report.skip_span(where, problem)
            continue
        spans.append(span)

    wanted: dict[str, list[str]] = {}
    for attribute, vals in values.items():
        vals = [vals] if isinstance(vals, str) else list(vals or [])
        if allowed is not None and attribute not in allowed:
            report.skip_span(where, f"unknown attribute {attribute!r}: not one of {sorted(allowed)}")
            continue
        wanted[attribute] = [str(v) for v in vals]
    located, missing = locate_values(text, wanted)
    for attribute, value in missing:
        report.value_not_found(where, attribute, value)
    for span in located:
        if clash(span, spans) is None:
            spans.append(span)

    meta = {k: v for k, v in record.items() if k not in _CORE_KEYS}
    if wanted:
        meta["target_values"] = wanted
    return Listing(id=lid, text=text, image=image, spans=sorted(spans), meta=meta)


def write_jsonl(path: str | Path, listings: Iterable[Listing]) -> None:
    """Write canonical JSONL; photo paths are made relative to the output file's folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = path.parent.resolve()
    with path.open("w", encoding="utf-8") as out:
        for listing in listings:
            record: dict[str, Any] = {"id": listing.id, "text": listing.text}
            if isinstance(listing.image, bytes):
                raise ListingError(f"Listing {listing.id!r} holds its photo in memory, not in a file; write the "
                                   "photo to a file and set `image` to its path before writing the listing.")
            if listing.image is not None:
                record["image"] = _relative(Path(listing.image).resolve(), folder)
            record["spans"] = [s.to_dict() for s in sorted(listing.spans)]
            record.update({k: v for k, v in listing.meta.items() if k not in _CORE_KEYS})
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def _relative(image: Path, folder: Path) -> str:
    try:
        return Path(os.path.relpath(image, folder)).as_posix()
    except ValueError:  # another drive on Windows: no relative path exists
        return image.as_posix()
