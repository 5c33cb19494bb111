"""When two listings are the same listing for the review queue, whatever ids they came with."""
from __future__ import annotations

import hashlib
import unicodedata


def content_key(text: str, photo_sha256: str | None) -> str:
    """The text up to Unicode form, case and spacing, and the photo's content hash."""
    normal = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    return hashlib.sha256(f"{normal}\0{photo_sha256 or ''}".encode("utf-8")).hexdigest()
