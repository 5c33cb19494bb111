"""Double review: a share of the listings goes to two annotators, and a third settles their disputes.

Which listings: Fibonacci hashing of the listing id (id x 2654435769 mod 2^32, under share x 2^32).
It is the same in Python and in SQL, so queries can filter on it; consecutive ids spread evenly, so
any run of listings holds close to the share; and raising the share keeps the listings already
chosen. Every app sharing a store must use the same share (`DRAM_DOUBLE_REVIEW_SHARE`).

What a double listing's corrections mean (`resolve`): each annotator's verdict is their latest
saved correction (a skip is no verdict; a withdrawal takes theirs back). The first two annotators
to give one are the pair. When the pair's spans are the same, the listing is settled and trains;
when they differ, it waits for a third look by anyone else, whose latest verdict then trains.
Until then it stays in the queue for anyone who has not given a verdict, and out of training.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Collection, Iterable, Sequence

from sqlalchemy import BigInteger, ColumnElement, SQLColumnExpression, func, literal, select
from sqlalchemy.orm import Session

from dram.data.spans import Span
from store.models import SAVED, Correction

SHARE_ENV = "DRAM_DOUBLE_REVIEW_SHARE"
_GOLDEN = 2654435769  # 2^32 / golden ratio
_RANGE = 2 ** 32


@dataclass(frozen=True)
class DoubleReview:
    """How many listings two annotators review: `share` of them (0 turns double review off)."""

    share: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"The double-review share must be between 0 and 1 (0.1 is a tenth), not {self.share}.")

    @classmethod
    def from_env(cls) -> DoubleReview:
        """`DRAM_DOUBLE_REVIEW_SHARE` (e.g. 0.1) overrides the default share."""
        value = os.environ.get(SHARE_ENV)
        return cls(float(value)) if value else cls()

    @property
    def _threshold(self) -> int:
        return round(self.share * _RANGE)

    def chosen(self, listing_id: int) -> bool:
        """Whether two annotators review this listing."""
        return (listing_id * _GOLDEN) % _RANGE < self._threshold

    def chosen_sql(self, listing_id: SQLColumnExpression[int]) -> ColumnElement[bool]:
        """`chosen` as a SQL condition on a listing-id column (the same arithmetic, in 64-bit integers)."""
        return (listing_id * literal(_GOLDEN, BigInteger)) % _RANGE < self._threshold


@dataclass(frozen=True)
class Verdict:
    """One annotator's standing verdict on a listing: its spans without text or confidence."""

    annotator: str
    spans: frozenset[Span]
    correction_id: int | None = None  # the correction the verdict stands in


@dataclass(frozen=True)
class DoubleReviewState:
    """Where a double listing stands: the pair's verdicts (0 to 2) and, once they disagree, the third look."""

    pair: tuple[Verdict, ...]
    third: Verdict | None = None

    @property
    def agreed(self) -> bool:
        return len(self.pair) == 2 and self.pair[0].spans == self.pair[1].spans

    @property
    def trains(self) -> Verdict | None:
        """The verdict training learns from, or None while the listing waits for a look."""
        if self.agreed:
            return self.pair[1]
        return self.third if len(self.pair) == 2 else None

    @property
    def reviewers(self) -> set[str]:
        """Annotators who gave a verdict: the queue never hands them the listing again."""
        return {v.annotator for v in self.pair} | ({self.third.annotator} if self.third else set())


def resolve(corrections: Iterable[tuple[Any, ...]]) -> DoubleReviewState:
    """The state of a double listing from its corrections (annotator, status, stored spans[, correction
    id]), oldest first."""
    standing: dict[str, tuple[str, Sequence[dict[str, Any]], int | None]] = {}  # in the order annotators first spoke
    order: dict[str, int] = {}
    for position, (annotator, status, spans, *correction_id) in enumerate(corrections):
        if status == "skipped":
            continue
        standing[annotator] = (status, spans, correction_id[0] if correction_id else None)
        order[annotator] = position
    verdicts = [Verdict(name, frozenset(Span.from_dict(s).bare() for s in spans), correction_id)
                for name, (status, spans, correction_id) in standing.items() if status in SAVED]
    pair, others = tuple(verdicts[:2]), verdicts[2:]
    if len(pair) < 2 or pair[0].spans == pair[1].spans or not others:
        return DoubleReviewState(pair)
    return DoubleReviewState(pair, max(others, key=lambda v: order[v.annotator]))


def double_review_states(session: Session, settings: DoubleReview,
                         listing_ids: Collection[int] | None = None) -> dict[int, DoubleReviewState]:
    """listing id -> state for every double listing with a correction (or just those of `listing_ids`)."""
    if settings.share == 0 or (listing_ids is not None and not listing_ids):
        return {}
    query = (select(Correction.listing_id, Correction.annotator, Correction.status, Correction.spans, Correction.id)
             .where(settings.chosen_sql(Correction.listing_id))
             .order_by(Correction.listing_id, func.coalesce(Correction.changed, Correction.created), Correction.id))
    if listing_ids is not None:
        query = query.where(Correction.listing_id.in_(list(listing_ids)))
    rows = session.execute(query).all()
    return {listing: resolve((r.annotator, r.status, r.spans, r.id) for r in group)
            for listing, group in groupby(rows, key=lambda r: r.listing_id)}


class DoubleReviewPolicy:
    """Which double review is in force. A share someone chose (an argument, `DRAM_DOUBLE_REVIEW_SHARE`)
    holds as chosen; the default one starts once the store has a team (two annotators with saved
    verdicts): a lone annotator's listings are reviewed once and all of them train, none waiting for a
    second look nobody is there to give. From the second annotator's first save on, the share's
    listings with one verdict wait for their second look."""

    def __init__(self, chosen: DoubleReview | None = None) -> None:
        self.share = chosen or DoubleReview.from_env()
        self._team = chosen is not None or SHARE_ENV in os.environ  # once a team, always one

    def in_force(self, session: Session) -> DoubleReview:
        """The double review in force now; until there is a team, one read of at most two annotator names."""
        if self.share.share == 0 or self._team:
            return self.share
        names = session.scalars(select(Correction.annotator).where(Correction.status.in_(SAVED)).distinct().limit(2))
        self._team = len(names.all()) == 2
        return self.share if self._team else DoubleReview(0.0)
