"""The review queue as the Annotate tab walks it: take the next listing (claimed for the annotator), save a verdict.

Kept out of the UI so the team benchmark (benchmarks/bench_store_team.py) and the tests run the
app's own path without a browser. Several app processes may share one store (PostgreSQL for a
team): a named annotator's next listing is claimed in the store, so nobody else is handed it.
"""
from __future__ import annotations

from typing import Sequence

from review.edits import ReviewItem
from store.repository import Store


def next_item(store: Store, tau: float, annotator: str | None = None) -> ReviewItem | None:
    """The next listing to review: claimed for the annotator when named (no one else gets it until they
    save or the claim expires), else a look at the first listing nobody is working on."""
    if annotator and annotator.strip():
        top = store.claim_next(annotator, tau)
    else:
        queue = store.review_queue(tau, limit=1, unclaimed=True)
        top = queue[0] if queue else None
    return ReviewItem.from_queue(top) if top is not None else None


def save_verdict(store: Store, annotator: str, item: ReviewItem, *, skip: bool,
                 attributes: Sequence[str] | None) -> str:
    """Save the annotator's spans for `item` as corrected, accepted or skipped; the status.

    Another annotator's live claim on the listing refuses the save (`store.ClaimError`), nothing saved.
    """
    status = "skipped" if skip else item.status
    store.save_correction(item.listing_id, annotator, item.spans, status=status, prediction_id=item.prediction_id,
                          allowed_attributes=attributes)
    return status
