"""Tables of the corrections store.

The schema itself is created and evolved by the Alembic migrations in `store/migrations/`;
these classes only describe it to the ORM, so a change here needs a new migration.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

VERDICTS = ("corrected", "accepted", "skipped")  # what an annotator saves
# 'withdrawn': the annotation behind a correction was deleted in Label Studio; the listing is back in the queue
CORRECTION_STATUSES = (*VERDICTS, "withdrawn")
SAVED = ("corrected", "accepted")  # the verdicts training learns from
CORRECTION_SOURCES = ("app", "label_studio")


def utcnow() -> datetime:
    """Timestamps are stored in UTC so that stores moved between machines stay comparable."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Photo(Base):
    """A listing photo, stored once however many listings share it (keyed by content hash)."""

    __tablename__ = "photos"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    mime_type: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ListingRow(Base):
    __tablename__ = "listings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    text: Mapped[str] = mapped_column(Text)
    photo_sha256: Mapped[str | None] = mapped_column(ForeignKey("photos.sha256"), index=True)
    content_key: Mapped[str | None] = mapped_column(String(64), index=True)  # see store.keys.content_key
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelVersion(Base):
    """A trained checkpoint; `parent_id` records which version it was fine-tuned from."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    checkpoint_path: Mapped[str] = mapped_column(Text)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=False)


class Prediction(Base):
    """What a model version predicted for a listing.

    spans: `[{"start", "end", "attribute", "text", "confidence"}]`;
    attribute_scores: `{attribute: score}` compared against `tau_r` to decide presence.
    """

    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id"), index=True)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), index=True)
    spans: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    attribute_scores: Mapped[dict[str, float]] = mapped_column(JSON)
    tau_r: Mapped[float] = mapped_column(Float)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Correction(Base):
    """An annotator's verdict on a listing; the one made last (`changed`) per listing is what training uses.

    spans: `[{"start", "end", "attribute"}]`. `exported` tells whether Label Studio already
    has it, so a failed export is retried and a successful one never duplicated.
    `ls_annotation_id` is the Label Studio annotation this row was last synced with: an edit
    there adds a new row and the link moves to it, so every version is kept.
    """

    __tablename__ = "corrections"
    __table_args__ = (
        CheckConstraint("status IN ('corrected', 'accepted', 'skipped', 'withdrawn')", name="ck_corrections_status"),
        CheckConstraint("source IN ('app', 'label_studio')", name="ck_corrections_source"),
        Index("ix_corrections_listing_changed", "listing_id", "changed"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id"), index=True)
    prediction_id: Mapped[int | None] = mapped_column(ForeignKey("predictions.id"))
    annotator: Mapped[str] = mapped_column(String(255))
    spans: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16), default="app")
    ls_annotation_id: Mapped[int | None] = mapped_column(Integer, unique=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    # When the verdict was made, by the clock of the side that made it (the app, or Label Studio's
    # updated_at); a listing's current correction is the newest by it. Nullable only because
    # migration 0002 added it to existing tables (and filled it in).
    changed: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=utcnow)
    exported: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    exported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Attribute(Base):
    """An attribute annotators may label beyond the model's own (`added_by` says who added it)."""

    __tablename__ = "attributes"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    added_by: Mapped[str | None] = mapped_column(String(255))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LabelStudioExport(Base):
    """Which Label Studio task holds a listing, per project, so tasks are created only once."""

    __tablename__ = "label_studio_exports"
    __table_args__ = (UniqueConstraint("project_id", "listing_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(Integer)
    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id"), index=True)
    task_id: Mapped[int] = mapped_column(Integer)
    exported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Claim(Base):
    """Which annotator is working on a listing, until when: one row per listing at most.

    The review queue hands a listing to one annotator at a time across app processes; a claim
    that is not saved before `expires_at` (a closed browser, a crashed app) lets the listing go
    back to the queue.
    """

    __tablename__ = "claims"

    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id"), primary_key=True)
    annotator: Mapped[str] = mapped_column(String(255), index=True)
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
