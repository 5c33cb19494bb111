"""The `Store` API used by the review app, the retraining job and the Label Studio sync.

`Store` is the rooms of the store joined over one database (`store.db`): listings and photos
(`store.listings`), corrections and the attribute set (`store.corrections`), model versions
(`store.versions`), the review queue and its claims (`store.queue`) and the store's side of the
Label Studio round trip (`store.label_studio_ledger`). `open_store` is how callers get one.
Results come back as the plain frozen records of `store.records`.
"""
from __future__ import annotations

from store.corrections import CorrectionRoom
from store.db import Database, open_database
from store.double_review import DoubleReview, DoubleReviewPolicy
from store.label_studio_ledger import LabelStudioLedger, LabelStudioSync
from store.listings import ListingRoom
from store.queue import CLAIM_TTL, QueueRoom
from store.records import (
    CorrectionInfo,
    CurrentCorrection,
    ListingInfo,
    ModelVersionInfo,
    PredictionInfo,
    QueueCounts,
    QueueItem,
    check_spans,
)
from store.versions import VersionRoom

__all__ = ["CLAIM_TTL", "CorrectionInfo", "CurrentCorrection", "LabelStudioSync", "ListingInfo", "ModelVersionInfo",
           "PredictionInfo", "QueueCounts", "QueueItem", "Store", "check_spans", "open_store"]


class Store(ListingRoom, CorrectionRoom, VersionRoom, QueueRoom, LabelStudioLedger):
    """Listings, model predictions and the corrections annotators make to them."""

    def __init__(self, db: Database, double_review: DoubleReview | None = None) -> None:
        self.db = db
        self.review_policy = DoubleReviewPolicy(double_review)

    @property
    def double_review(self) -> DoubleReview:
        """The double review in force (see `DoubleReviewPolicy`: the default share waits for a team)."""
        with self.db.transaction(write=False) as session:
            return self.review_policy.in_force(session)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def open_store(url: str | None = None, *, busy_timeout_s: float = 5.0, retries: int = 4,
               backoff_s: float = 0.2, double_review_share: float | None = None) -> Store:
    """The store at `url`, `DRAM_DB_URL` or ./dram-store.sqlite (see `store.db.open_database`); a share of
    its listings goes to two annotators: `double_review_share`, else `DRAM_DOUBLE_REVIEW_SHARE`, else 0.1."""
    share = DoubleReview(double_review_share) if double_review_share is not None else None
    return Store(open_database(url, busy_timeout_s=busy_timeout_s, retries=retries, backoff_s=backoff_s), share)
