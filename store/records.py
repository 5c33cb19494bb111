"""The plain records the store's rooms hand out (never ORM objects, so callers keep them after
the transaction that read them), the one span check, and the queries more than one room asks."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Collection, Iterable, Mapping, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.sql import Subquery

from dram.data.spans import Span, SpanError, checked_span, clash, reading_order
from store.db import Database
from store.double_review import DoubleReviewPolicy
from store.errors import CorrectionError
from store.models import (
    Correction,
    Prediction,
)


@dataclass(frozen=True)
class ListingInfo:
    id: int
    external_id: str | None
    text: str
    photo_sha256: str | None


@dataclass(frozen=True)
class PredictionInfo:
    id: int
    listing_id: int
    model_version_id: int | None
    model_version_name: str | None
    spans: list[Span]
    attribute_scores: dict[str, float]
    tau_r: float


@dataclass(frozen=True)
class QueueItem:
    """A listing waiting for review, with the prediction that makes it uncertain."""

    listing_id: int
    external_id: str | None
    text: str
    photo_sha256: str | None
    prediction_id: int | None
    model_version_id: int | None
    spans: list[Span] = field(default_factory=list)
    attribute_scores: dict[str, float] = field(default_factory=dict)
    margin: float = math.inf  # min over attributes of |score - tau_r|: small = the model is unsure
    min_confidence: float = 1.0
    skipped: bool = False  # an annotator skipped it: it comes back after the listings nobody has seen


class QueueCounts(NamedTuple):
    """The review queue at a glance: listings saved (corrected or accepted), skipped, and never looked at."""

    saved: int
    skipped: int
    waiting: int


@dataclass(frozen=True)
class CorrectionInfo:
    id: int
    listing_id: int
    prediction_id: int | None
    annotator: str
    spans: list[Span]
    status: str
    source: str
    ls_annotation_id: int | None
    created: datetime
    changed: datetime | None = None  # when the verdict was made, by its own side's clock


@dataclass(frozen=True)
class CurrentCorrection:
    """A reviewed listing as its current correction has it: what training learns from."""

    listing: ListingInfo
    spans: list[Span]
    photo: bytes | None
    photo_mime_type: str | None
    correction_id: int  # the correction these spans are from: what a check of it names


@dataclass(frozen=True)
class ModelVersionInfo:
    id: int
    name: str
    checkpoint_path: str
    metrics: dict[str, Any]
    parent_id: int | None
    active: bool
    created: datetime


def check_spans(
    text: str, spans: Iterable[Span | Mapping[str, Any]], allowed: Collection[str] | None, *, what: str
) -> list[Span]:
    """Spans in reading order, or `CorrectionError` naming the first bad one (`dram.data.spans` says the rule)."""
    checked: list[Span] = []
    for raw in spans:
        try:
            span = checked_span(raw, text, allowed)
        except SpanError as exc:
            raise CorrectionError(f"{what}: {exc}.") from exc
        problem = clash(span, checked)
        if problem is not None:
            raise CorrectionError(f"{what}: {problem}; keep one value per attribute on any word.")
        checked.append(span)
    return reading_order(checked)


def stored_spans(spans: Iterable[Mapping[str, Any]]) -> list[Span]:
    return [Span.from_dict(s) for s in spans]


def correction_info(row: Correction) -> CorrectionInfo:
    return CorrectionInfo(
        id=row.id,
        listing_id=row.listing_id,
        prediction_id=row.prediction_id,
        annotator=row.annotator,
        spans=stored_spans(row.spans),
        status=row.status,
        source=row.source,
        ls_annotation_id=row.ls_annotation_id,
        created=row.created,
        changed=row.changed,
    )


def latest_prediction_ids() -> Subquery:
    return select(func.max(Prediction.id).label("id")).group_by(Prediction.listing_id).subquery()


def current_correction_ids() -> Subquery:
    """Each listing's current correction: the one made last by its own side's clock (ties: saved later)."""
    ranked = select(
        Correction.id,
        func.row_number()
        .over(
            partition_by=Correction.listing_id,
            order_by=(func.coalesce(Correction.changed, Correction.created).desc(), Correction.id.desc()),
        )
        .label("rank"),
    ).subquery()
    return select(ranked.c.id).where(ranked.c.rank == 1).subquery()


class Room:
    """One part of the store's API over `db`; `store.repository.Store` joins the rooms over one database."""

    db: Database
    review_policy: DoubleReviewPolicy  # which listings two annotators review: `in_force(session)`, once per call
