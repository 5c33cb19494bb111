"""Corrections store: listings, predictions and annotators' corrections in SQLite or PostgreSQL."""
from store.errors import ClaimError, CorrectionError, StoreBusyError, StoreError, StoreUnavailableError
from store.repository import (DEFAULT_QUEUE_ORDER, QUEUE_ORDERS, CorrectionInfo, ListingInfo, ModelVersionInfo,
                              PredictionInfo, QueueItem, Store, open_store)

__all__ = [
    "DEFAULT_QUEUE_ORDER",
    "QUEUE_ORDERS",
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
