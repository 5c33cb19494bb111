"""The `Store` API used by the review app, the retraining job and the Label Studio sync.

It sits on `store.db` (sessions, migrations, the lock policy) and speaks in listings, spans,
predictions and corrections; `open_store` is how callers get one.

Results come back as plain frozen dataclasses, never ORM objects, so callers can keep them
after the transaction that read them is over.
"""
from __future__ import annotations

import hashlib
import io
import logging
import math
import os
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Collection, Iterable, Mapping, NamedTuple, Sequence

from PIL import Image, UnidentifiedImageError
from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import Subquery

from dram.data.spans import Span, SpanError, checked_span, clash, reading_order
from dram.errors import ImageError
from store.db import Database, open_database
from store.errors import ClaimError, CorrectionError, StoreError
from store.keys import content_key
from store.models import (
    CORRECTION_STATUSES,
    Attribute,
    Claim,
    Correction,
    LabelStudioExport,
    ListingRow,
    ModelVersion,
    Photo,
    Prediction,
    utcnow,
)

log = logging.getLogger(__name__)

# How long a listing handed to an annotator stays theirs without a save (then it returns to the queue).
CLAIM_TTL = timedelta(minutes=30)


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


@dataclass(frozen=True)
class ModelVersionInfo:
    id: int
    name: str
    checkpoint_path: str
    metrics: dict[str, Any]
    parent_id: int | None
    active: bool
    created: datetime


def _photo_facts(data: bytes) -> tuple[str, str, int, int]:
    """sha256, mime type, width and height of a photo, refusing bytes that are not an image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            mime = Image.MIME.get(image.format or "", "application/octet-stream")
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"The photo could not be read as an image ({exc}); use a JPEG, PNG or WebP file.") from exc
    return hashlib.sha256(data).hexdigest(), mime, width, height


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


def _stored(spans: Iterable[Mapping[str, Any]]) -> list[Span]:
    return [Span.from_dict(s) for s in spans]


def _correction_info(row: Correction) -> CorrectionInfo:
    return CorrectionInfo(
        id=row.id,
        listing_id=row.listing_id,
        prediction_id=row.prediction_id,
        annotator=row.annotator,
        spans=_stored(row.spans),
        status=row.status,
        source=row.source,
        ls_annotation_id=row.ls_annotation_id,
        created=row.created,
        changed=row.changed,
    )


def _model_info(row: ModelVersion) -> ModelVersionInfo:
    return ModelVersionInfo(
        id=row.id,
        name=row.name,
        checkpoint_path=row.checkpoint_path,
        metrics=dict(row.metrics or {}),
        parent_id=row.parent_id,
        active=row.active,
        created=row.created,
    )


def _version_at(session: Session, checkpoint: Path) -> ModelVersionInfo | None:
    """The version registered for the (resolved) checkpoint folder, if any. Versions are registered
    under their resolved path, so one SQL query answers the app's every request; the scan that
    resolves each stored path is for rows whose folder was reached another way (a symlink, a move)."""
    row = session.scalars(select(ModelVersion).where(ModelVersion.checkpoint_path == str(checkpoint))
                          .order_by(ModelVersion.id).limit(1)).first()
    if row is not None:
        return _model_info(row)
    for row in session.scalars(select(ModelVersion).order_by(ModelVersion.id)):
        if Path(row.checkpoint_path).resolve() == checkpoint:
            return _model_info(row)
    return None


def _latest_prediction_ids() -> Subquery:
    return select(func.max(Prediction.id).label("id")).group_by(Prediction.listing_id).subquery()


def _current_correction_ids() -> Subquery:
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


def open_store(url: str | None = None, *, busy_timeout_s: float = 5.0, retries: int = 4,
               backoff_s: float = 0.2) -> Store:
    """The store at `url`, `DRAM_DB_URL` or ./dram-store.sqlite (see `store.db.open_database`)."""
    return Store(open_database(url, busy_timeout_s=busy_timeout_s, retries=retries, backoff_s=backoff_s))


def _annotator_name(annotator: str) -> str:
    if not isinstance(annotator, str) or not annotator.strip():
        raise CorrectionError("Enter your annotator name first, so listings can be handed to you and traced to you.")
    return annotator.strip()


def _settled_ids(status_skipped: bool) -> Select:
    """Listings whose current correction is a skip (`status_skipped`), or a saved verdict (not)."""
    current = _current_correction_ids()
    status = Correction.status == "skipped" if status_skipped else Correction.status != "skipped"
    return select(Correction.listing_id).where(Correction.id.in_(select(current.c.id)), status)


def _queue(session: Session, tau_r: float, limit: int | None, *, skip_claimed: bool,
           annotator: str | None = None) -> list[QueueItem]:
    """The review queue (see `Store.review_queue`); `skip_claimed` leaves out live claims not `annotator`'s."""
    latest = _latest_prediction_ids()
    query = (
        select(ListingRow, Prediction)
        .outerjoin(Prediction, Prediction.listing_id == ListingRow.id)
        .where((Prediction.id.is_(None)) | Prediction.id.in_(select(latest.c.id)))
        .where(ListingRow.id.not_in(_settled_ids(status_skipped=False)))
    )
    if skip_claimed:
        held = select(Claim.listing_id).where(Claim.expires_at > utcnow())
        if annotator is not None:
            held = held.where(Claim.annotator != annotator)
        query = query.where(ListingRow.id.not_in(held))
    skipped = set(session.scalars(_settled_ids(status_skipped=True)))
    items = []
    for listing, prediction in session.execute(query):
        was_skipped = listing.id in skipped
        if prediction is None:
            items.append(QueueItem(listing.id, listing.external_id, listing.text, listing.photo_sha256, None, None,
                                   skipped=was_skipped))
            continue
        scores = prediction.attribute_scores or {}
        margin = min((abs(float(v) - tau_r) for v in scores.values()), default=math.inf)
        confidence = min((float(s.get("confidence", 1.0)) for s in prediction.spans), default=1.0)
        items.append(
            QueueItem(
                listing.id, listing.external_id, listing.text, listing.photo_sha256, prediction.id,
                prediction.model_version_id, _stored(prediction.spans), dict(scores), margin, confidence, was_skipped,
            )
        )
    items.sort(key=lambda q: (q.skipped, q.prediction_id is None, q.margin, q.min_confidence, q.listing_id))
    return items if limit is None else items[:limit]


def _live(session: Session, listing_id: int) -> bool:
    """Whether the listing's claim has not expired (compared in SQL: SQLite keeps times without a zone)."""
    return bool(session.scalar(select(Claim.expires_at > utcnow()).where(Claim.listing_id == listing_id)))


def _settle_claim(session: Session, listing_id: int, annotator: str) -> None:
    """A save ends the annotator's claim on the listing; another annotator's live claim refuses the save.

    Called with the listing row locked, so a claim cannot be taken between this check and the save.
    An expired claim (its annotator crashed or left) no longer protects the listing.
    """
    claim = session.get(Claim, listing_id, populate_existing=True)
    if claim is None:
        return
    if claim.annotator != annotator and _live(session, listing_id):
        raise ClaimError(
            f"Listing {listing_id} is being reviewed by {claim.annotator} until "
            f"{claim.expires_at:%Y-%m-%d %H:%M} UTC, so your correction was not saved (your edits are still "
            "on screen). Load the next listing to get one of your own, or save this one after that time."
        )
    session.delete(claim)


class Store:
    """Listings, model predictions and the corrections annotators make to them."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # Listings and photos

    def add_listing(self, text: str, photo: bytes | None = None, external_id: str | None = None) -> int:
        """Store a listing (its photo once per distinct content); re-adding the same external id returns it."""
        if not text or not text.strip():
            raise CorrectionError("A listing needs some text; paste the product title or description.")
        facts = _photo_facts(photo) if photo is not None else None

        with self.db.transaction() as session:
            if external_id is not None:
                existing = session.scalar(select(ListingRow).where(ListingRow.external_id == external_id))
                if existing is not None:
                    if existing.text != text:
                        raise StoreError(
                            f"Listing {external_id!r} is already stored with a different text; "
                            "give the new listing another external id."
                        )
                    return existing.id
            if facts is not None and session.get(Photo, facts[0]) is None:
                sha, mime, width, height = facts
                session.add(Photo(sha256=sha, data=photo, mime_type=mime, width=width, height=height))
                session.flush()  # the listing row below references it
            photo_sha = facts[0] if facts else None
            row = ListingRow(external_id=external_id, text=text, photo_sha256=photo_sha,
                             content_key=content_key(text, photo_sha))
            session.add(row)
            session.flush()
            return row.id

    def find_listing(self, text: str, photo: bytes | None = None) -> int | None:
        """The id of a stored listing with the same text (up to case and spacing) and photo, if any."""
        key = content_key(text, hashlib.sha256(photo).hexdigest() if photo is not None else None)
        with self.db.transaction(write=False) as session:
            return session.scalar(select(func.min(ListingRow.id)).where(ListingRow.content_key == key))

    def get_listing(self, listing_id: int) -> ListingInfo:
        with self.db.transaction(write=False) as session:
            row = session.get(ListingRow, listing_id)
            if row is None:
                raise StoreError(f"There is no listing {listing_id} in the store {self.db.url}.")
            return ListingInfo(row.id, row.external_id, row.text, row.photo_sha256)

    def list_listings(self) -> list[ListingInfo]:
        with self.db.transaction(write=False) as session:
            rows = session.scalars(select(ListingRow).order_by(ListingRow.id))
            return [ListingInfo(r.id, r.external_id, r.text, r.photo_sha256) for r in rows]

    def photo_bytes(self, sha256: str) -> bytes | None:
        with self.db.transaction(write=False) as session:
            return session.scalar(select(Photo.data).where(Photo.sha256 == sha256))

    def photo_mime_type(self, sha256: str) -> str | None:
        with self.db.transaction(write=False) as session:
            return session.scalar(select(Photo.mime_type).where(Photo.sha256 == sha256))

    # The attribute set

    def attributes(self) -> list[str]:
        """Attributes annotators added beyond the model's own; a correction may use either kind."""
        with self.db.transaction(write=False) as session:
            return list(session.scalars(select(Attribute.name).order_by(Attribute.name)))

    def add_attribute(self, name: str, added_by: str | None = None) -> bool:
        """Let corrections (and Label Studio imports) use attribute `name`; False if it was already there."""
        if not isinstance(name, str) or not name.strip() or name != name.strip() or len(name) > 255:
            raise CorrectionError(
                f"Attribute name {name!r} must be a non-empty name without leading or trailing spaces "
                "(at most 255 characters), e.g. 'fabric'."
            )

        with self.db.transaction() as session:
            if session.get(Attribute, name) is not None:
                return False
            session.add(Attribute(name=name, added_by=added_by))
            return True

    # Model versions and predictions

    def register_model_version(
        self,
        name: str,
        checkpoint_path: str | os.PathLike[str],
        metrics: Mapping[str, Any],
        parent_id: int | None = None,
        activate: bool = True,
    ) -> int:
        """Record a trained checkpoint; activating it deactivates the others in the same transaction."""
        with self.db.transaction() as session:
            if parent_id is not None and session.get(ModelVersion, parent_id) is None:
                raise StoreError(f"Parent model version {parent_id} does not exist; pass an id from the store.")
            if activate:
                session.execute(update(ModelVersion).values(active=False))
            row = ModelVersion(
                name=name, checkpoint_path=str(Path(checkpoint_path).resolve()), metrics=dict(metrics),
                parent_id=parent_id, active=activate,
            )
            session.add(row)
            session.flush()
            return row.id

    def version_for_checkpoint(
        self, checkpoint: str | os.PathLike[str], metrics: Mapping[str, Any], *, activate: bool | None = None
    ) -> ModelVersionInfo:
        """The version registered for a checkpoint folder, registering it with `metrics` if new.

        A new version is activated when `activate` is True, never when False, and when None only if
        no version is active yet (the first model an app serves becomes the active one).
        """
        wanted = Path(checkpoint).resolve()
        with self.db.transaction(write=False) as session:  # every served request asks: no write lock for it
            known = _version_at(session, wanted)
        if known is not None:
            return known
        with self.db.transaction() as session:
            known = _version_at(session, wanted)  # registered by another program meanwhile?
            if known is not None:
                return known
            if activate is None:
                activate = session.scalar(select(ModelVersion.id).where(ModelVersion.active)) is None
            elif activate:
                session.execute(update(ModelVersion).values(active=False))
            row = ModelVersion(name=wanted.name, checkpoint_path=str(wanted), metrics=dict(metrics), active=activate)
            session.add(row)
            session.flush()
            return _model_info(row)

    def activate_model_version(self, model_version_id: int) -> None:
        """Make an earlier version the one in use again (a rollback)."""
        with self.db.transaction() as session:
            if session.get(ModelVersion, model_version_id) is None:
                raise StoreError(f"There is no model version {model_version_id}; see list_model_versions().")
            session.execute(update(ModelVersion).values(active=ModelVersion.id == model_version_id))

    def active_model_version(self) -> ModelVersionInfo | None:
        with self.db.transaction(write=False) as session:
            row = session.scalar(select(ModelVersion).where(ModelVersion.active).order_by(ModelVersion.id.desc()))
            return _model_info(row) if row is not None else None

    def list_model_versions(self) -> list[ModelVersionInfo]:
        with self.db.transaction(write=False) as session:
            return [_model_info(r) for r in session.scalars(select(ModelVersion).order_by(ModelVersion.id))]

    def add_prediction(
        self,
        listing_id: int,
        model_version_id: int | None,
        spans: Sequence[Span | Mapping[str, Any]],
        attribute_scores: Mapping[str, float],
        tau_r: float,
    ) -> int:
        """Store a model's output; each span keeps its `text` and `confidence` for the review queue."""
        with self.db.transaction() as session:
            listing = session.get(ListingRow, listing_id)
            if listing is None:
                raise StoreError(f"There is no listing {listing_id}; add it with add_listing() first.")
            if model_version_id is not None and session.get(ModelVersion, model_version_id) is None:
                raise StoreError(f"There is no model version {model_version_id}; register it first.")
            checked = check_spans(listing.text, spans, None, what=f"Prediction for listing {listing_id}")
            row = Prediction(
                listing_id=listing_id,
                model_version_id=model_version_id,
                spans=[
                    replace(s.with_text(listing.text), confidence=1.0 if s.confidence is None else s.confidence).to_dict()
                    for s in checked
                ],
                attribute_scores={k: float(v) for k, v in attribute_scores.items()},
                tau_r=float(tau_r),
            )
            session.add(row)
            session.flush()
            return row.id

    def predictions_for(self, listing_id: int) -> list[PredictionInfo]:
        with self.db.transaction(write=False) as session:
            rows = session.execute(
                select(Prediction, ModelVersion.name)
                .outerjoin(ModelVersion, Prediction.model_version_id == ModelVersion.id)
                .where(Prediction.listing_id == listing_id)
                .order_by(Prediction.id)
            )
            return [
                PredictionInfo(p.id, p.listing_id, p.model_version_id, name, _stored(p.spans), dict(p.attribute_scores), p.tau_r)
                for p, name in rows
            ]

    # Corrections

    def save_correction(
        self,
        listing_id: int,
        annotator: str,
        spans: Iterable[Span | Mapping[str, Any]],
        status: str = "corrected",
        prediction_id: int | None = None,
        allowed_attributes: Iterable[str] | None = None,
    ) -> int:
        """Save an annotator's verdict in one transaction; bad input raises `CorrectionError` and saves nothing."""
        if not isinstance(annotator, str) or not annotator.strip():
            raise CorrectionError("Enter your annotator name before saving, so corrections can be traced to you.")
        if status not in CORRECTION_STATUSES:
            raise CorrectionError(f"Status {status!r} is not one of {list(CORRECTION_STATUSES)}.")
        allowed = set(allowed_attributes) if allowed_attributes is not None else None
        spans = list(spans)

        with self.db.transaction() as session:
            # The row lock orders this save after (or before) a claim of the same listing in flight.
            listing = session.get(ListingRow, listing_id, with_for_update={"key_share": True})
            if listing is None:
                raise StoreError(f"There is no listing {listing_id}; it may have been added to another store.")
            if prediction_id is not None:
                prediction = session.get(Prediction, prediction_id)
                if prediction is None or prediction.listing_id != listing_id:
                    raise CorrectionError(f"Prediction {prediction_id} is not a prediction for listing {listing_id}.")
            checked = check_spans(listing.text, spans, allowed, what=f"Correction of listing {listing_id}")
            _settle_claim(session, listing_id, annotator.strip())
            row = Correction(
                listing_id=listing_id,
                prediction_id=prediction_id,
                annotator=annotator.strip(),
                spans=[s.bare().to_dict() for s in checked],
                status=status,
                source="app",
            )
            session.add(row)
            session.flush()
            return row.id

    def corrections_for(self, listing_id: int) -> list[CorrectionInfo]:
        with self.db.transaction(write=False) as session:
            rows = session.scalars(select(Correction).where(Correction.listing_id == listing_id).order_by(Correction.id))
            return [_correction_info(r) for r in rows]

    def all_corrections(self) -> list[CorrectionInfo]:
        with self.db.transaction(write=False) as session:
            return [_correction_info(r) for r in session.scalars(select(Correction).order_by(Correction.id))]

    def review_queue(self, tau_r: float, limit: int = 50, *, unclaimed: bool = False) -> list[QueueItem]:
        """Listings nobody has reviewed yet, the ones the model is least sure about first.

        Uncertainty is the smallest |attribute score - tau_r| of the latest prediction, ties broken by
        the least confident predicted span; listings without a prediction come last. `unclaimed`
        leaves out the listings another annotator is working on (see `claim_next`).
        """
        with self.db.transaction(write=False) as session:
            return _queue(session, tau_r, limit, skip_claimed=unclaimed)

    def claim_next(self, annotator: str, tau_r: float, ttl: timedelta = CLAIM_TTL) -> QueueItem | None:
        """Hand the annotator the most uncertain listing nobody else is working on, theirs until `ttl` passes.

        An annotator who already holds a live claim on an unreviewed listing gets that one back
        (a reload shows the same listing). Across app processes each listing goes to one annotator
        at a time: the candidate's row is locked with `SELECT ... FOR UPDATE SKIP LOCKED` on
        PostgreSQL (another annotator claiming it at this instant makes us move to the next one),
        and SQLite's `BEGIN IMMEDIATE` runs claims one after another. None when the queue is empty.
        """
        name = _annotator_name(annotator)
        with self.db.transaction() as session:
            now = utcnow()
            own = set(session.scalars(select(Claim.listing_id).where(Claim.annotator == name, Claim.expires_at > now)))
            candidates = _queue(session, tau_r, None, skip_claimed=True, annotator=name)
            candidates.sort(key=lambda q: q.listing_id not in own)  # stable: queue order otherwise
            for item in candidates:
                locked = session.scalar(
                    select(ListingRow.id).where(ListingRow.id == item.listing_id)
                    .with_for_update(skip_locked=True, key_share=True)
                )
                if locked is None:
                    continue  # being claimed or saved by someone else right now
                # Read again under the lock: a claim or a save committed since the queue was read counts.
                if session.scalar(_settled_ids(False).where(Correction.listing_id == item.listing_id).exists().select()):
                    continue
                claim = session.get(Claim, item.listing_id, populate_existing=True)
                if claim is not None and claim.annotator != name and _live(session, item.listing_id):
                    continue
                if claim is None:
                    session.add(Claim(listing_id=item.listing_id, annotator=name, claimed_at=now, expires_at=now + ttl))
                else:
                    claim.annotator, claim.claimed_at, claim.expires_at = name, now, now + ttl
                for dropped in own - {item.listing_id}:  # one listing at a time per annotator
                    session.execute(delete(Claim).where(Claim.listing_id == dropped, Claim.annotator == name))
                return item
            return None

    def release_claim(self, listing_id: int, annotator: str) -> bool:
        """Give a listing back to the queue before the claim expires (the annotator moved on); False if not theirs."""
        name = _annotator_name(annotator)
        with self.db.transaction() as session:
            return bool(session.execute(delete(Claim).where(Claim.listing_id == listing_id, Claim.annotator == name)).rowcount)

    def claims(self) -> dict[int, str]:
        """listing id -> annotator for every claim that has not expired."""
        with self.db.transaction(write=False) as session:
            return dict(session.execute(select(Claim.listing_id, Claim.annotator).where(Claim.expires_at > utcnow())).all())

    def progress(self) -> QueueCounts:
        """How many listings are saved, skipped (they come back last) and waiting, by current correction."""
        with self.db.transaction(write=False) as session:
            total = session.scalar(select(func.count(ListingRow.id))) or 0
            saved = session.scalar(select(func.count()).select_from(_settled_ids(False).subquery())) or 0
            skipped = session.scalar(select(func.count()).select_from(_settled_ids(True).subquery())) or 0
            return QueueCounts(saved, skipped, total - saved - skipped)

    def current_corrections(self) -> list[CurrentCorrection]:
        """Each reviewed listing's current correction (the one made last; skipped ones left out), with its photo."""
        with self.db.transaction(write=False) as session:
            latest = _current_correction_ids()
            rows = session.execute(
                select(ListingRow, Correction, Photo)
                .join(Correction, Correction.listing_id == ListingRow.id)
                .outerjoin(Photo, Photo.sha256 == ListingRow.photo_sha256)
                .where(Correction.id.in_(select(latest.c.id)))
                .where(Correction.status != "skipped")
                .order_by(ListingRow.id)
            )
            return [
                CurrentCorrection(
                    ListingInfo(row.id, row.external_id, row.text, row.photo_sha256),
                    [s.bare() for s in _stored(correction.spans)],
                    photo.data if photo is not None else None,
                    photo.mime_type if photo is not None else None,
                )
                for row, correction, photo in rows
            ]

    def unexported_corrections(self) -> list[CorrectionInfo]:
        """Corrections Label Studio does not have yet (failed or never tried exports)."""
        with self.db.transaction(write=False) as session:
            rows = session.scalars(select(Correction).where(~Correction.exported).order_by(Correction.id))
            return [_correction_info(r) for r in rows]

    # Label Studio bookkeeping (used by store.label_studio)

    def label_studio_tasks(self, project_id: int) -> dict[int, int]:
        """listing id -> Label Studio task id for the listings already sent to `project_id`."""
        with self.db.transaction(write=False) as session:
            rows = session.execute(
                select(LabelStudioExport.listing_id, LabelStudioExport.task_id).where(
                    LabelStudioExport.project_id == project_id
                )
            )
            return {listing_id: task_id for listing_id, task_id in rows}

    def record_label_studio_task(self, project_id: int, listing_id: int, task_id: int) -> None:
        with self.db.transaction() as session:
            session.add(LabelStudioExport(project_id=project_id, listing_id=listing_id, task_id=task_id))

    def mark_exported(self, correction_id: int, ls_annotation_id: int | None) -> None:
        """Remember that Label Studio now holds this correction (as annotation `ls_annotation_id`)."""
        with self.db.transaction() as session:
            row = session.get(Correction, correction_id)
            if row is None:
                raise StoreError(f"There is no correction {correction_id}.")
            row.exported = True
            row.exported_at = utcnow()
            row.ls_annotation_id = ls_annotation_id

    def label_studio_annotations(self) -> dict[int, str]:
        """Label Studio annotation id -> source ('app' or 'label_studio') of the correction last synced with it."""
        with self.db.transaction(write=False) as session:
            rows = session.execute(
                select(Correction.ls_annotation_id, Correction.source).where(Correction.ls_annotation_id.is_not(None))
            )
            return {annotation_id: source for annotation_id, source in rows}

    def sync_label_studio_annotation(
        self,
        ls_annotation_id: int,
        listing_id: int,
        annotator: str,
        spans: Iterable[Span | Mapping[str, Any]],
        status: str,
        changed: datetime | None = None,
        what: str | None = None,
        import_id: int | None = None,
    ) -> LabelStudioSync:
        """Bring one Label Studio annotation into the store; see `LabelStudioSync` for the outcomes.

        The annotation is compared with the correction it was last synced with (exported from the
        app or imported). A change adds a new correction and moves the link to it, so every earlier
        version stays; `changed` (Label Studio's `updated_at`) decides whether it becomes current.
        `import_id` is the correction id an export put in the annotation: an export that stored the
        annotation but died before recording it is recognised here, not imported as a stranger.
        """
        if status not in CORRECTION_STATUSES:
            raise CorrectionError(f"Status {status!r} is not one of {list(CORRECTION_STATUSES)}.")
        if not isinstance(annotator, str) or not annotator.strip():
            raise CorrectionError(f"{what or f'Label Studio annotation {ls_annotation_id}'}: no annotator name.")
        spans = list(spans)

        with self.db.transaction() as session:
            listing = session.get(ListingRow, listing_id)
            if listing is None:
                raise StoreError(f"There is no listing {listing_id} for Label Studio annotation {ls_annotation_id}.")
            checked = [
                s.bare().to_dict()
                for s in check_spans(listing.text, spans, None, what=what or f"Label Studio annotation {ls_annotation_id}")
            ]
            linked = session.scalar(select(Correction).where(Correction.ls_annotation_id == ls_annotation_id))
            if linked is None and import_id is not None:
                exported = session.get(Correction, import_id)
                if exported is not None and (exported.listing_id, exported.source) == (listing_id, "app") and (
                    exported.ls_annotation_id is None
                ):
                    exported.exported, exported.exported_at = True, utcnow()
                    exported.ls_annotation_id = ls_annotation_id
                    session.flush()
                    linked = exported
                    log.info("Label Studio annotation %s is correction %s's export; linked", ls_annotation_id, import_id)
            # Label Studio knows skipped (cancelled) or not; 'accepted' reads back as 'corrected'.
            same_verdict = linked is not None and (linked.status == "skipped") == (status == "skipped")
            if same_verdict and (status == "skipped" or linked.spans == checked):
                return LabelStudioSync("from_store" if linked.source == "app" else "unchanged")
            conflict = None
            if linked is not None:
                # Changed in Label Studio since the last sync. Changed in the app as well?
                newer = session.scalar(
                    select(Correction)
                    .where(Correction.listing_id == linked.listing_id, Correction.source == "app", Correction.id > linked.id)
                    .order_by(Correction.id.desc())
                )
                conflict = _correction_info(newer) if newer is not None else None
                linked.ls_annotation_id = None
                session.flush()  # the link moves to the new version below
            row = Correction(
                listing_id=listing_id, annotator=annotator.strip(), spans=checked, status=status, source="label_studio",
                ls_annotation_id=ls_annotation_id, exported=True, exported_at=utcnow(), changed=changed or utcnow(),
            )
            session.add(row)
            session.flush()
            return LabelStudioSync("added" if linked is None else "updated", _correction_info(row), conflict)


@dataclass(frozen=True)
class LabelStudioSync:
    """What importing one annotation did: 'added' (new), 'updated' (edited in Label Studio: a new
    version), 'unchanged', or 'from_store' (the app's own export, untouched). `conflict` is the app's
    newer correction of the same listing when both sides changed since the last sync."""

    outcome: str
    correction: CorrectionInfo | None = None
    conflict: CorrectionInfo | None = None
