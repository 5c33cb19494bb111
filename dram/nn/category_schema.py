"""Which attributes each category of listings has: the catalogue's own schema per category.

A catalogue labels each category with its own attributes (WDC-PAVE: 8-20 of 51 per category, the
same for every listing of it). A decoder that may tag any attribute anywhere gives a toner's maker
as "Brand" where the office category labels "Manufacturer", and the Manufacturer slot goes empty.
Learned from the training listings that state which attributes people checked (their labelled
slots, a value or n/a), the schema limits the tags of a listing of a known category to its
attributes, in training (the CRF then learns to tell apart only what a category can hold) and at
decoding. Listings labelled by spans alone say nothing about what was checked, so they teach no
schema; a listing without a category, or of one never seen, may take every attribute.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import torch

from dram.data.listings import Listing


class CategorySchema:
    def __init__(self, attributes: dict[str, list[str]]):
        self.attributes = {category: sorted(names) for category, names in attributes.items()}

    @classmethod
    def from_listings(cls, listings: Iterable[Listing]) -> "CategorySchema":
        return cls({}).learned(listings, from_spans=False)

    def allowed(self, category: str | None, attributes: list[str]) -> torch.Tensor | None:
        """(N,) bool: the attributes a listing of `category` may have; None when any may."""
        names = self.attributes.get(category) if category is not None else None
        if names is None:
            return None
        return torch.tensor([a in names for a in attributes], dtype=torch.bool)

    def learned(self, listings: Iterable[Listing], from_spans: bool = True) -> "CategorySchema":
        """This schema grown by `listings`: a category keeps every attribute it had and gains those
        the listings' slots state and, with `from_spans` (a fine-tune's corrections: an attribute
        taught in a category must not be masked out of it), those their spans mark."""
        grown = {category: set(names) for category, names in self.attributes.items()}
        for listing in listings:
            category = listing.category()
            if category is None:
                continue
            if listing.states_slots():
                grown.setdefault(category, set()).update(listing.target_values())
            if from_spans and category in grown:
                grown[category].update(listing.attributes())
        return CategorySchema({category: list(names) for category, names in grown.items()})

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.attributes, indent=1, ensure_ascii=False, sort_keys=True))

    @classmethod
    def load(cls, path: Path) -> "CategorySchema":
        return cls(json.loads(path.read_text()))
