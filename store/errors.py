"""Errors raised by the corrections store; each message says what to do next."""
from __future__ import annotations

from dram.errors import DramInputError


class StoreError(RuntimeError):
    """The store could not do what was asked; nothing was half-written."""


class StoreBusyError(StoreError):
    """The database stayed locked by another program through every retry."""


class StoreUnavailableError(StoreError):
    """The database server could not be reached (down, wrong address, connection broken)."""


class ClaimError(StoreError):
    """The listing is being reviewed by another annotator; the message says by whom and until when."""


class CorrectionError(DramInputError):
    """A correction, prediction or listing that does not fit its listing text (bad span, no annotator...)."""
