"""Count what a Label Studio round trip lost, duplicated or let in as junk (the fault tests' and benchmark's verdict).

- lost: a listing whose current correction is not the one expected (the last saved, in the app or
  in Label Studio), or an app correction that never reached Label Studio after a clean export;
- duplicated: extra copies in Label Studio (tasks per listing, annotations per correction id) or in
  the store (a version identical to the one before it of the same listing);
- junk: a stored correction that the app's own save would refuse (bounds, unknown attribute).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable

from label_studio_sdk import LabelStudio

from review.training_data import corrections_as_listings
from store import CorrectionError, Store
from store.records import check_spans


@dataclass(frozen=True)
class Tally:
    lost: int
    duplicated: int
    junk: int


def tally(store: Store, client: LabelStudio, project_id: int, expected: dict[int, list[dict[str, Any]]],
          attributes: Iterable[str]) -> Tally:
    """`expected`: listing id -> spans its current correction should have (on a store with double review
    off: a double-reviewed listing trains only once settled, see `store.double_review`)."""
    allowed = set(attributes) | set(store.attributes())
    current = {item.text: sorted(((s.start, s.end, s.attribute) for s in item.spans)) for item in
               corrections_as_listings(store)}
    texts = {listing.id: listing.text for listing in store.list_listings()}
    lost = sum(current.get(texts[listing]) != sorted((s["start"], s["end"], s["attribute"]) for s in spans)
               for listing, spans in expected.items())
    lost += len(store.unexported_corrections())

    tasks = list(client.tasks.list(project=project_id, fields="all"))
    per_listing = Counter(t.data.get("dram_listing_id") for t in tasks)
    per_correction = Counter(a.get("import_id") for t in tasks for a in t.annotations or [] if a.get("import_id"))
    duplicated = sum(n - 1 for n in per_listing.values()) + sum(n - 1 for n in per_correction.values())

    junk = 0
    versions: dict[int, list[Any]] = {}
    for correction in store.all_corrections():
        versions.setdefault(correction.listing_id, []).append(correction)
        try:
            check_spans(texts[correction.listing_id], correction.spans, allowed, what="audit")
        except CorrectionError:
            junk += 1
    for rows in versions.values():
        duplicated += sum((a.spans, a.status, a.source) == (b.spans, b.status, b.source) for a, b in zip(rows, rows[1:]))
    return Tally(lost, duplicated, junk)
