"""What the app's Annotate tab does besides drawing widgets: span edits, listing intake, model versions.

Kept out of app.py so it is testable without a browser. Spans are `dram.spans.Span`s without
text or confidence; the annotator picks bounds by word, the same words the model tags
(`dram.tagging.split_words`), so a corrected span is always one the model can learn.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from dram.errors import DramInputError
from dram.spans import Span, clash, covered_words, reading_order
from dram.tagging import Word, split_words
from store.errors import CorrectionError, StoreBusyError, StoreError
from store.repository import Store

if TYPE_CHECKING:
    from dram.inference import Extraction, Extractor

log = logging.getLogger(__name__)

class ReviewError(CorrectionError):
    """An edit that cannot be made as asked; the message tells the annotator what to pick instead."""


# ---------------------------------------------------------------- span edits


def words_of(text: str) -> list[Word]:
    return split_words(text)


def word_choices(text: str) -> list[tuple[str, int]]:
    """Dropdown choices for span bounds: "index: word", valued by word index."""
    return [(f"{i}: {w.text}", i) for i, w in enumerate(words_of(text))]


def clean_spans(spans: Iterable[Span]) -> list[Span]:
    """Only position and attribute (a prediction's text/confidence are not the annotator's), in reading order."""
    return reading_order(s.bare() for s in spans)


def _check_attribute(attribute: str | None, attributes: Sequence[str]) -> str:
    if not attribute or attribute not in attributes:
        raise ReviewError(f"Pick an attribute from the model's set: {', '.join(attributes)}.")
    return attribute


def _check_index(spans: Sequence[Span], index: int | None) -> int:
    if index is None or not 0 <= int(index) < len(spans):
        raise ReviewError("Pick one of the listing's spans first.")
    return int(index)


def span_from_words(text: str, first: int | None, last: int | None, attribute: str) -> Span:
    """The character span covering words first..last (inclusive)."""
    words = words_of(text)
    if first is None or last is None:
        raise ReviewError("Pick the first and the last word of the value.")
    first, last = int(first), int(last)
    if not 0 <= first < len(words) or not 0 <= last < len(words):
        raise ReviewError(f"Word numbers go from 0 to {len(words) - 1} for this listing.")
    if last < first:
        raise ReviewError(f"The last word ({last}) comes before the first ({first}); swap them.")
    return Span(words[first].start, words[last].end, attribute)


def word_bounds(text: str, span: Span) -> tuple[int, int]:
    """(first, last) word index of a span, to pre-fill the bound dropdowns when it is selected."""
    inside = covered_words(words_of(text), span)
    return (inside[0], inside[-1]) if inside else (0, 0)


def _with(spans: Sequence[Span], new: Span, replacing: int | None = None) -> list[Span]:
    """spans with `new` (instead of spans[replacing]), refusing one the same attribute already overlaps."""
    others = [s for i, s in enumerate(spans) if i != replacing]
    problem = clash(new, others)
    if problem is not None:
        raise ReviewError(f"{new.attribute} already has a value overlapping these words ({problem}); re-bound or "
                          "remove that one instead.")
    return clean_spans([*others, new])


def add_span(text: str, spans: Sequence[Span], first: int | None, last: int | None, attribute: str | None,
             attributes: Sequence[str]) -> list[Span]:
    return _with(spans, span_from_words(text, first, last, _check_attribute(attribute, attributes)))


def remove_span(spans: Sequence[Span], index: int | None) -> list[Span]:
    index = _check_index(spans, index)
    return [s for i, s in enumerate(spans) if i != index]


def relabel_span(spans: Sequence[Span], index: int | None, attribute: str | None,
                 attributes: Sequence[str]) -> list[Span]:
    index = _check_index(spans, index)
    return _with(spans, replace(spans[index], attribute=_check_attribute(attribute, attributes)), replacing=index)


def rebound_span(text: str, spans: Sequence[Span], index: int | None, first: int | None,
                 last: int | None) -> list[Span]:
    index = _check_index(spans, index)
    return _with(spans, span_from_words(text, first, last, spans[index].attribute), replacing=index)


def span_choices(text: str, spans: Sequence[Span]) -> list[tuple[str, int]]:
    """Dropdown choices naming each span by attribute and value, valued by its index."""
    return [(f"{i}: {s.attribute} = {text[s.start:s.end]!r}", i) for i, s in enumerate(spans)]


def status_for(spans: Sequence[Span], predicted: Sequence[Span]) -> str:
    """'accepted' when the annotator kept the model's spans exactly, else 'corrected'."""
    return "accepted" if clean_spans(spans) == clean_spans(predicted) else "corrected"


# ---------------------------------------------------------------- listings into the store


def listing_key(text: str, photo: bytes | None) -> str:
    """A stable external id for a listing seen in the app, so extracting it again does not queue it twice."""
    digest = hashlib.sha256(text.encode("utf-8"))
    digest.update(b"\0" + hashlib.sha256(photo).digest() if photo is not None else b"\0")
    return f"app-{digest.hexdigest()[:20]}"


def record_extraction(store: Store, extraction: Extraction, photo: bytes | None, version_id: int | None,
                      external_id: str | None = None) -> int:
    """Store a listing and the model's output on it, so it enters the review queue; returns the listing id."""
    listing_id = store.add_listing(extraction.text, photo, external_id or listing_key(extraction.text, photo))
    store.add_prediction(listing_id, version_id, extraction.spans, extraction.attribute_scores,
                         extraction.tau_r)
    return listing_id


@dataclass(frozen=True)
class IntakeRow:
    """One listing of an uploaded file: its id (or None), text and photo file (or None)."""

    external_id: str | None
    text: str
    photo: Path | None = None


@dataclass
class IntakeReport:
    added: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"{self.added} listings added to the review queue" + (
            f"; {len(self.problems)} could not be added" if self.problems else "")


def import_for_review(store: Store, extractor: Extractor, rows: Sequence[IntakeRow], version_id: int | None,
                      tau_r: float | None = None, batch_size: int = 16) -> IntakeReport:
    """Run the model on uploaded listings and queue them; a bad row is reported and the rest go on.

    A locked store stops the import with `StoreBusyError`; rows added before it stay (each is its
    own transaction), and importing the file again does not duplicate them.
    """
    report = IntakeReport()
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        results = extractor.extract_batch([(r.text, r.photo) for r in chunk], tau_r=tau_r)
        for row, result in zip(chunk, results):
            name = row.external_id or row.text[:40]
            if isinstance(result, DramInputError):
                report.problems.append(f"{name}: {result}")
                continue
            try:
                photo = row.photo.read_bytes() if row.photo is not None else None
                record_extraction(store, result, photo, version_id, row.external_id)
                report.added += 1
            except StoreBusyError:
                raise
            except (DramInputError, StoreError, OSError) as err:
                report.problems.append(f"{name}: {err}")
    log.info("import for review: %s", report.summary())
    return report


# ---------------------------------------------------------------- model versions


def version_for_checkpoint(store: Store, checkpoint: Path, metrics: Mapping[str, Any]) -> int:
    """The store's version for a checkpoint, registering it (active only when nothing else is) if new."""
    wanted = Path(checkpoint).resolve()
    for version in store.list_model_versions():
        if Path(version.checkpoint_path).resolve() == wanted:
            return version.id
    activate = store.active_model_version() is None
    return store.register_model_version(wanted.name, wanted, metrics, activate=activate)


def version_choices(store: Store) -> list[tuple[str, int]]:
    """Dropdown choices for the registered versions, newest first, marking the active one."""
    choices = []
    for v in reversed(store.list_model_versions()):
        tag = " (active)" if v.active else ""
        if v.metrics.get("promotion", {}).get("promoted") is False:
            tag += " (not promoted)"
        parent = f", from #{v.parent_id}" if v.parent_id else ""
        f1 = v.metrics.get("new", {}).get("heldout", {}).get("tag_f1") or v.metrics.get("test", {}).get("tag_f1")
        score = f", TAG-F1 {f1:.3f}" if isinstance(f1, float) else ""
        choices.append((f"#{v.id} {v.name}{tag}{parent}{score}", v.id))
    return choices


def _change(metrics: Mapping[str, Any], data: str) -> str:
    """'98.22 → 97.79' (TAG-F1 in %, old model → this one) on a fine-tune's held-out set, or '—'."""
    old, new = (metrics.get(side, {}).get(data, {}).get("tag_f1") for side in ("old", "new"))
    return f"{old * 100:.2f} → {new * 100:.2f}" if isinstance(old, float) and isinstance(new, float) else "—"


def version_table(store: Store) -> str:
    """Markdown table of the registered versions, newest first: promoted or not, and the figures that decided."""
    rows = ["| version | serving | promotion | replay test TAG-F1 | held-out corrections TAG-F1 | why not promoted |",
            "|---|---|---|---|---|---|"]
    for v in reversed(store.list_model_versions()):
        promotion = v.metrics.get("promotion")
        if promotion is None:
            verdict = "—"  # not from a fine-tune: nothing to promote over
        elif promotion.get("promoted"):
            verdict = "promoted (forced)" if promotion.get("forced") else "promoted"
        else:
            verdict = "not promoted"
        why = "; ".join(promotion.get("failed", [])) if promotion and not promotion.get("promoted") else ""
        name = f"#{v.id} {v.name}" + (f" (from #{v.parent_id})" if v.parent_id else "")
        rows.append(f"| {name} | {'active' if v.active else ''} | {verdict} | {_change(v.metrics, 'heldout')} | "
                    f"{_change(v.metrics, 'corrections')} | {why} |")
    return "\n".join(rows)
