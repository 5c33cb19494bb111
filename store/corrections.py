"""Annotators' verdicts on listings, every version kept, and the attribute set they may use."""
from __future__ import annotations

from typing import Any, Collection, Iterable, Mapping

from sqlalchemy import select

from dram.data.spans import Span, reading_order
from store.agreement import AgreementRow, agreement_rows
from store.double_review import double_review_states
from store.errors import CorrectionError, StoreError
from store.models import (
    SAVED,
    VERDICTS,
    Attribute,
    Correction,
    ListingRow,
    Photo,
    Prediction,
)
from store.queue import settle_claim
from store.records import (
    CorrectionInfo,
    CurrentCorrection,
    ListingInfo,
    Room,
    check_spans,
    correction_info,
    current_correction_ids,
    stored_spans,
)


class CorrectionRoom(Room):
    """Corrections saved, read and made current; attributes annotators added."""

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
        if status not in VERDICTS:
            raise CorrectionError(f"Status {status!r} is not one of {list(VERDICTS)}.")
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
            settle_claim(session, listing_id, annotator.strip())
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
            return [correction_info(r) for r in rows]

    def all_corrections(self) -> list[CorrectionInfo]:
        with self.db.transaction(write=False) as session:
            return [correction_info(r) for r in session.scalars(select(Correction).order_by(Correction.id))]

    def current_corrections(self, listing_ids: Collection[int] | None = None) -> list[CurrentCorrection]:
        """Each reviewed listing's version that trains, with its photo: the current correction (the one made
        last; skipped and withdrawn ones left out), or for a double listing the settled verdict (none until
        settled, see `store.double_review`); only those of `listing_ids` when given."""
        wanted = ListingRow.id.in_(list(listing_ids)) if listing_ids is not None else ListingRow.id.is_not(None)
        with self.db.transaction(write=False) as session:
            settings = self.review_policy.in_force(session)
            chosen = settings.chosen_sql(ListingRow.id)
            latest = current_correction_ids()
            singles = session.execute(
                select(ListingRow, Correction, Photo)
                .join(Correction, Correction.listing_id == ListingRow.id)
                .outerjoin(Photo, Photo.sha256 == ListingRow.photo_sha256)
                .where(Correction.id.in_(select(latest.c.id)))
                .where(Correction.status.in_(SAVED), ~chosen, wanted)
            )
            found = [(row, [s.bare() for s in stored_spans(c.spans)], photo, c.id) for row, c, photo in singles]
            settled = {listing: state.trains for listing, state in
                       double_review_states(session, settings, listing_ids).items() if state.trains is not None}
            doubles = session.execute(select(ListingRow, Photo).outerjoin(Photo, Photo.sha256 == ListingRow.photo_sha256)
                                      .where(chosen, wanted))
            found += [(row, reading_order(settled[row.id].spans), photo, settled[row.id].correction_id)
                      for row, photo in doubles if row.id in settled]
            return [
                CurrentCorrection(
                    ListingInfo(row.id, row.external_id, row.text, row.photo_sha256), spans,
                    photo.data if photo is not None else None, photo.mime_type if photo is not None else None,
                    correction_id,
                )
                for row, spans, photo, correction_id in sorted(found, key=lambda found: found[0].id)
            ]

    def agreement(self) -> list[AgreementRow]:
        """Per attribute, span F1 between the two annotators of every double listing both gave a verdict on."""
        with self.db.transaction(write=False) as session:
            states = double_review_states(session, self.review_policy.in_force(session)).values()
            return agreement_rows((s.pair[0].spans, s.pair[1].spans) for s in states if len(s.pair) == 2)
