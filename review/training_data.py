"""Corrections as training data: each reviewed listing's current correction as a `Listing`."""
from __future__ import annotations

import os
from pathlib import Path

from dram.data.listings import Listing
from dram.files import write_atomically
from store.records import CurrentCorrection
from store.repository import Store

PHOTO_SUFFIX = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/gif": ".gif"}


def corrections_as_listings(store: Store, cache_dir: str | os.PathLike[str] | None = None) -> list[Listing]:
    """Training data: the current correction of each listing, the one made last (skipped ones left out).

    Photos are written once to `cache_dir` (default `$DRAM_PHOTO_CACHE` or `.cache/dram-photos`)
    because the training code reads `Listing.image` as a file path.
    """
    directory = Path(cache_dir or os.environ.get("DRAM_PHOTO_CACHE") or Path(".cache") / "dram-photos")
    return [
        Listing(
            id=training_id(current.listing.id, current.listing.external_id),
            text=current.listing.text,
            image=_cached_photo(directory, current) if current.photo is not None else None,
            spans=sorted(current.spans),
        )
        for current in store.current_corrections()
    ]


def training_id(listing_id: int, external_id: str | None) -> str:
    """The id a stored listing has as training data: its catalogue id, else its store id."""
    return external_id or f"listing-{listing_id}"


def _cached_photo(directory: Path, current: CurrentCorrection) -> Path:
    """The photo's file under its hash, written once (atomically, so a crash never leaves a torn file)."""
    path = directory / f"{current.listing.photo_sha256}{PHOTO_SUFFIX.get(current.photo_mime_type or '', '.img')}"
    if not path.exists():
        write_atomically(path, lambda partial: partial.write_bytes(current.photo or b""))
    return path.resolve()
