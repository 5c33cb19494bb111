"""The review queue as the Annotate tab walks it: take the next listing (claimed for the annotator), save a verdict.

Kept out of the UI so the team benchmark (benchmarks/bench_store_team.py) and the tests run the
app's own path without a browser. Several app processes may share one store (PostgreSQL for a
team): a named annotator's next listing is claimed in the store, so nobody else is handed it.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Sequence

from review.edits import ReviewItem
from store.repository import Store


@dataclass(frozen=True)
class ClaimSettings:
    """How long a listing stays its annotator's: renewed by the open page while they work, free soon
    after they leave (a closed page, a killed app): at most `lifetime_s + heartbeat_s` later."""

    lifetime_s: float = 120.0  # a claim lapses this long after its last renewal
    heartbeat_s: float = 30.0  # the open page renews it this often...
    idle_s: float = 900.0  # ...while its annotator acted in this last stretch

    @classmethod
    def from_env(cls) -> ClaimSettings:
        """DRAM_CLAIM_SECONDS and DRAM_CLAIM_HEARTBEAT_SECONDS override the lifetime and the heartbeat."""
        lifetime = float(os.environ.get("DRAM_CLAIM_SECONDS") or cls.lifetime_s)
        heartbeat = float(os.environ.get("DRAM_CLAIM_HEARTBEAT_SECONDS") or min(cls.heartbeat_s, lifetime / 4))
        return cls(lifetime, heartbeat)

    @property
    def lifetime(self) -> timedelta:
        return timedelta(seconds=self.lifetime_s)


def next_item(store: Store, tau: float, annotator: str | None = None,
              claims: ClaimSettings = ClaimSettings()) -> ReviewItem | None:
    """The next listing to review: claimed for the annotator when named (no one else gets it while they
    work on it), else a look at the first listing nobody is working on."""
    if annotator and annotator.strip():
        top = store.claim_next(annotator, tau, claims.lifetime)
    else:
        queue = store.review_queue(tau, limit=1, unclaimed=True)
        top = queue[0] if queue else None
    if top is None:
        return None
    return replace(ReviewItem.from_queue(top), notes=tuple(n for n in (look_note(store, top.listing_id),) if n))


def look_note(store: Store, listing_id: int) -> str:
    """What the Annotate tab may say over a double-reviewed listing: which look this is (never whose the
    others were, so the second look stays independent); '' for a listing one annotator reviews."""
    state = store.double_review_state(listing_id)
    if state is None or state.trains is not None:
        return ""
    if len(state.pair) == 2:
        return "Third look: two annotators disagreed on this listing; your version is the one that trains."
    looks = ("first", "second")[len(state.pair)]
    return f"Double review: two annotators check this listing; yours is the {looks} look."


def save_verdict(store: Store, annotator: str, item: ReviewItem, *, skip: bool,
                 attributes: Sequence[str] | None) -> str:
    """Save the annotator's spans for `item` as corrected, accepted or skipped; the status.

    Another annotator's live claim on the listing refuses the save (`store.ClaimError`), nothing saved.
    """
    status = "skipped" if skip else item.status
    store.save_correction(item.listing_id, annotator, item.spans, status=status, prediction_id=item.prediction_id,
                          allowed_attributes=attributes)
    return status


def keep_claim(store: Store, annotator: str | None, item: ReviewItem | None, claims: ClaimSettings,
               now: float | None = None) -> bool:
    """The open page's heartbeat: renew the annotator's claim on `item` if they acted on it within
    `claims.idle_s`; False when nothing was renewed (no listing, idle, or no longer theirs)."""
    if item is None or not annotator or not annotator.strip():
        return False
    if (now if now is not None else time.time()) - item.touched > claims.idle_s:
        return False
    return store.renew_claim(item.listing_id, annotator, claims.lifetime)
