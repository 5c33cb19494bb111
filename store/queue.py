"""The review queue: the listings the model is least sure about first, each handed to one annotator at a time."""
from __future__ import annotations

import math
from datetime import timedelta
from itertools import islice
from typing import Iterator, NamedTuple

from sqlalchemy import Row, Select, delete, func, select, update
from sqlalchemy.orm import Session

from store.double_review import DoubleReview, DoubleReviewState, double_review_states
from store.errors import ClaimError, CorrectionError
from store.models import (
    SAVED,
    Claim,
    Correction,
    ListingRow,
    Prediction,
    utcnow,
)
from store.records import (
    QueueCounts,
    QueueItem,
    Room,
    current_correction_ids,
    latest_prediction_ids,
    stored_spans,
)

# How long a listing handed to an annotator stays theirs without a renewal or a save (then it returns
# to the queue); the app renews it while its annotator works (`review.queue.ClaimSettings`).
CLAIM_TTL = timedelta(seconds=120)
# Double listings' states the queue reads at first, doubling each time it needs more (see `_open_for`).
_FIRST_STATES = 64


def _annotator_name(annotator: str) -> str:
    if not isinstance(annotator, str) or not annotator.strip():
        raise CorrectionError("Enter your annotator name first, so listings can be handed to you and traced to you.")
    return annotator.strip()


def _current_with(*statuses: str) -> Select:
    """Listings whose current correction has one of `statuses` (a withdrawn one: the listing waits again)."""
    current = current_correction_ids()
    return select(Correction.listing_id).where(Correction.id.in_(select(current.c.id)), Correction.status.in_(statuses))


def _settled_singles(settings: DoubleReview) -> Select:
    """Listings one annotator reviews whose current correction is a saved verdict: done with."""
    return _current_with(*SAVED).where(~settings.chosen_sql(Correction.listing_id))


def _done_for(state: DoubleReviewState | None, annotator: str | None) -> bool:
    """Whether a double listing is out of the queue for `annotator`: settled, or they gave their verdict."""
    return state is not None and (state.trains is not None or annotator in state.reviewers)


class _Candidate(NamedTuple):
    """A listing's place in the queue (compared field by field: skipped ones last, then those without a
    prediction, then by margin, confidence and id) and its row, made a `QueueItem` only if handed out."""

    skipped: bool
    unpredicted: bool
    margin: float
    min_confidence: float
    listing_id: int
    row: Row

    def item(self) -> QueueItem:
        row = self.row
        if self.unpredicted:
            return QueueItem(row.id, row.external_id, row.text, row.photo_sha256, None, None, skipped=self.skipped)
        return QueueItem(row.id, row.external_id, row.text, row.photo_sha256, row.prediction_id, row.model_version_id,
                         stored_spans(row.spans), dict(row.attribute_scores or {}), self.margin, self.min_confidence,
                         self.skipped)


def _candidates(session: Session, settings: DoubleReview, tau_r: float, *, skip_claimed: bool,
                annotator: str | None = None) -> list[_Candidate]:
    """The review queue's listings in its order (see `Store.review_queue`), double listings not yet
    checked (`_open_for` does); `skip_claimed` leaves out live claims not `annotator`'s."""
    latest = latest_prediction_ids()
    query = (
        select(ListingRow.id, ListingRow.external_id, ListingRow.text, ListingRow.photo_sha256,
               Prediction.id.label("prediction_id"), Prediction.model_version_id, Prediction.spans,
               Prediction.attribute_scores)
        .outerjoin(Prediction, Prediction.listing_id == ListingRow.id)
        .where((Prediction.id.is_(None)) | Prediction.id.in_(select(latest.c.id)))
        .where(ListingRow.id.not_in(_settled_singles(settings)))
    )
    if skip_claimed:
        held = select(Claim.listing_id).where(Claim.expires_at > utcnow())
        if annotator is not None:
            held = held.where(Claim.annotator != annotator)
        query = query.where(ListingRow.id.not_in(held))
    skipped = set(session.scalars(_current_with("skipped")))
    candidates = []
    for row in session.execute(query):
        if row.prediction_id is None:
            candidates.append(_Candidate(row.id in skipped, True, math.inf, 1.0, row.id, row))
            continue
        margin = min((abs(float(v) - tau_r) for v in (row.attribute_scores or {}).values()), default=math.inf)
        confidence = min((float(s.get("confidence", 1.0)) for s in row.spans), default=1.0)
        candidates.append(_Candidate(row.id in skipped, False, margin, confidence, row.id, row))
    candidates.sort()
    return candidates


def _open_for(session: Session, settings: DoubleReview, candidates: list[_Candidate],
              annotator: str | None) -> Iterator[QueueItem]:
    """The candidates in order without the double listings done for `annotator`; their states are read lazily,
    a few at a time (doubling), so a short queue or a claim reads the states of the listings near its top,
    not of every double listing in the store."""
    start, size = 0, _FIRST_STATES
    while start < len(candidates):
        chunk = candidates[start:start + size]
        states = double_review_states(session, settings, [c.listing_id for c in chunk if settings.chosen(c.listing_id)])
        yield from (c.item() for c in chunk if not _done_for(states.get(c.listing_id), annotator))
        start, size = start + size, size * 2


def _queue(session: Session, settings: DoubleReview, tau_r: float, limit: int | None, *, skip_claimed: bool,
           annotator: str | None = None) -> list[QueueItem]:
    """The review queue (see `Store.review_queue`) as `annotator` sees it: without the double listings
    they gave a verdict on; `skip_claimed` leaves out live claims not theirs."""
    candidates = _candidates(session, settings, tau_r, skip_claimed=skip_claimed, annotator=annotator)
    return list(islice(_open_for(session, settings, candidates, annotator), limit))


def _live(session: Session, listing_id: int) -> bool:
    """Whether the listing's claim has not expired (compared in SQL: SQLite keeps times without a zone)."""
    return bool(session.scalar(select(Claim.expires_at > utcnow()).where(Claim.listing_id == listing_id)))


def _still_open(session: Session, settings: DoubleReview, listing_id: int, annotator: str) -> bool:
    """Whether `annotator` may claim the listing, read under its row lock (a claim or a save committed
    since the queue was read counts); False when someone else is locking it right now."""
    locked = session.scalar(select(ListingRow.id).where(ListingRow.id == listing_id)
                            .with_for_update(skip_locked=True, key_share=True))
    if locked is None:
        return False  # being claimed or saved by someone else right now
    if settings.chosen(listing_id):
        if _done_for(double_review_states(session, settings, [listing_id]).get(listing_id), annotator):
            return False
    elif session.scalar(_settled_singles(settings).where(Correction.listing_id == listing_id).exists().select()):
        return False
    claim = session.get(Claim, listing_id, populate_existing=True)
    return claim is None or claim.annotator == annotator or not _live(session, listing_id)


def settle_claim(session: Session, listing_id: int, annotator: str) -> None:
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


class QueueRoom(Room):
    """The queue read, claimed, released and counted."""

    def review_queue(self, tau_r: float, limit: int = 50, *, unclaimed: bool = False) -> list[QueueItem]:
        """Listings nobody has reviewed yet, or double listings waiting for a second or third look, the ones
        the model is least sure about first.

        Uncertainty is the smallest |attribute score - tau_r| of the latest prediction, ties broken by
        the least confident predicted span; listings without a prediction come last. `unclaimed`
        leaves out the listings another annotator is working on (see `claim_next`).
        """
        with self.db.transaction(write=False) as session:
            return _queue(session, self.review_policy.in_force(session), tau_r, limit, skip_claimed=unclaimed)

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
            settings = self.review_policy.in_force(session)
            now = utcnow()
            own = set(session.scalars(select(Claim.listing_id).where(Claim.annotator == name, Claim.expires_at > now)))
            candidates = _candidates(session, settings, tau_r, skip_claimed=True, annotator=name)
            candidates.sort(key=lambda q: q.listing_id not in own)  # stable: queue order otherwise
            for item in _open_for(session, settings, candidates, name):
                if not _still_open(session, settings, item.listing_id, name):
                    continue
                claim = session.get(Claim, item.listing_id, populate_existing=True)
                if claim is None:
                    session.add(Claim(listing_id=item.listing_id, annotator=name, claimed_at=now, expires_at=now + ttl))
                else:
                    claim.annotator, claim.claimed_at, claim.expires_at = name, now, now + ttl
                for dropped in own - {item.listing_id}:  # one listing at a time per annotator
                    session.execute(delete(Claim).where(Claim.listing_id == dropped, Claim.annotator == name))
                return item
            return None

    def renew_claim(self, listing_id: int, annotator: str, ttl: timedelta = CLAIM_TTL) -> bool:
        """Keep the listing the annotator's for `ttl` from now; False when it is not (or no longer) theirs.

        A lapsed claim nobody else took is theirs again: the listing never left them in anyone's view.
        """
        name = _annotator_name(annotator)
        with self.db.transaction() as session:
            now = utcnow()
            renewed = session.execute(update(Claim).where(Claim.listing_id == listing_id, Claim.annotator == name)
                                      .values(expires_at=now + ttl))
            return bool(renewed.rowcount)

    def release_claim(self, listing_id: int, annotator: str) -> bool:
        """Give a listing back to the queue before the claim expires (the annotator moved on); False if not theirs."""
        name = _annotator_name(annotator)
        with self.db.transaction() as session:
            return bool(session.execute(delete(Claim).where(Claim.listing_id == listing_id, Claim.annotator == name)).rowcount)

    def claims(self) -> dict[int, str]:
        """listing id -> annotator for every claim that has not expired."""
        with self.db.transaction(write=False) as session:
            return dict(session.execute(select(Claim.listing_id, Claim.annotator).where(Claim.expires_at > utcnow())).all())

    def double_review_state(self, listing_id: int) -> DoubleReviewState | None:
        """Where a listing two annotators review stands (no verdicts yet: an empty pair); None for the others."""
        with self.db.transaction(write=False) as session:
            settings = self.review_policy.in_force(session)
            if not settings.chosen(listing_id):
                return None
            return double_review_states(session, settings, [listing_id]).get(listing_id, DoubleReviewState(()))

    def progress(self) -> QueueCounts:
        """How many listings are saved (a double listing: settled), skipped (their current correction is a
        skip; they come back last) and waiting (a double listing waiting for its second or third look too)."""
        with self.db.transaction(write=False) as session:
            settings = self.review_policy.in_force(session)
            total = session.scalar(select(func.count(ListingRow.id))) or 0
            singles = session.scalar(select(func.count()).select_from(_settled_singles(settings).subquery()))
            settled = {listing for listing, state in double_review_states(session, settings).items()
                       if state.trains is not None}
            skipped = len(set(session.scalars(_current_with("skipped"))) - settled)
            saved = (singles or 0) + len(settled)
            return QueueCounts(saved, skipped, total - saved - skipped)
