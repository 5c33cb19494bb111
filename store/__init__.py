"""Corrections store: listings, predictions and annotators' corrections in SQLite (or any SQLAlchemy URL)."""
from store.errors import CorrectionError, StoreBusyError, StoreError
from store.repository import CorrectionInfo, ListingInfo, ModelVersionInfo, PredictionInfo, QueueItem, Store, open_store

__all__ = [
    "CorrectionError",
    "CorrectionInfo",
    "ListingInfo",
    "ModelVersionInfo",
    "PredictionInfo",
    "QueueItem",
    "Store",
    "StoreBusyError",
    "StoreError",
    "open_store",
]
