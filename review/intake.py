"""Listings into the review queue: what the model extracted from them, stored for an annotator.

The one place that runs the model for the store (`store/` itself never does).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from dram.errors import DramInputError
from store.errors import StoreBusyError, StoreError
from store.repository import Store

if TYPE_CHECKING:
    from dram.inference import Extraction, Extractor

log = logging.getLogger(__name__)


def record_extraction(store: Store, extraction: Extraction, photo: bytes | None, version_id: int | None,
                      external_id: str | None = None) -> int:
    """Store a listing and the model's output on it, so it enters the review queue; returns the listing id.

    Without an external id (a listing tried in the Extract tab) a listing already in the store with
    the same text (up to case and spacing) and photo is that listing, already queued or reviewed: it
    is left as it is.
    """
    if external_id is None and (known := store.find_listing(extraction.text, photo)) is not None:
        return known
    listing_id = store.add_listing(extraction.text, photo, external_id)
    store.add_prediction(listing_id, version_id, extraction.spans, extraction.attribute_scores,
                         extraction.tau_r)
    return listing_id


@dataclass(frozen=True)
class IntakeRow:
    """One listing of an uploaded file: its id (or None), text and photo (a file or its bytes, or None)."""

    external_id: str | None
    text: str
    photo: Path | bytes | None = None


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
                photo = row.photo.read_bytes() if isinstance(row.photo, Path) else row.photo and bytes(row.photo)
                record_extraction(store, result, photo, version_id, row.external_id)
                report.added += 1
            except StoreBusyError:
                raise
            except (DramInputError, StoreError, OSError) as err:
                report.problems.append(f"{name}: {err}")
    log.info("import for review: %s", report.summary())
    return report
