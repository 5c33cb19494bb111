"""Corrections as training data: each reviewed listing's current correction as a `Listing`, its photo the stored bytes."""
from __future__ import annotations

from dram.data.listings import Listing
from dram.data.photo_sources import PhotoBytes
from store.records import CurrentCorrection
from store.repository import Store


def corrections_as_listings(store: Store) -> list[Listing]:
    """Training data: the current correction of each listing, the one made last (skipped ones left out).

    A photo stays the store's bytes, which training reads as it reads a file: none is written out to be
    read back, and one that cannot be read is named by its hash in the message.
    """
    return [
        Listing(
            id=training_id(current.listing.id, current.listing.external_id),
            text=current.listing.text,
            image=_photo(current),
            spans=sorted(current.spans),
        )
        for current in store.current_corrections()
    ]


def training_id(listing_id: int, external_id: str | None) -> str:
    """The id a stored listing has as training data: its catalogue id, else its store id."""
    return external_id or f"listing-{listing_id}"


def _photo(current: CurrentCorrection) -> PhotoBytes | None:
    if current.photo is None:
        return None
    return PhotoBytes(current.photo, f"the stored photo {(current.listing.photo_sha256 or '')[:12]}")
