"""Corrections store: listings, predictions and annotators' corrections in SQLite or PostgreSQL."""
from store.errors import (
    ClaimError,
    CorrectionError,
    StoreBusyError,
    StoreError,
    StoreUnavailableError,
)
from store.records import (
    CorrectionInfo,
    ListingInfo,
    ModelVersionInfo,
    PredictionInfo,
    QueueItem,
)
from store.repository import Store, open_store

__all__ = [
    "ClaimError",
    "CorrectionError",
    "CorrectionInfo",
    "ListingInfo",
    "ModelVersionInfo",
    "PredictionInfo",
    "QueueItem",
    "Store",
    "StoreBusyError",
    "StoreError",
    "StoreUnavailableError",
    "open_store",
]
