"""Listings, their photos (stored once per content) and what the models predicted for them."""
from __future__ import annotations

import hashlib
import io
from dataclasses import replace
from typing import Any, Mapping, Sequence

from PIL import Image, UnidentifiedImageError
from sqlalchemy import func, select

from dram.data.spans import Span
from dram.errors import ImageError
from store.errors import CorrectionError, StoreError
from store.keys import content_key
from store.models import (
    ListingRow,
    ModelVersion,
    Photo,
    Prediction,
)
from store.records import ListingInfo, PredictionInfo, Room, check_spans, stored_spans


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


class ListingRoom(Room):
    """Listings and photos in, listings and predictions out."""

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
                PredictionInfo(p.id, p.listing_id, p.model_version_id, name, stored_spans(p.spans), dict(p.attribute_scores), p.tau_r)
                for p, name in rows
            ]
