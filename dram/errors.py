"""Errors a user can act on. Each message says what was wrong and what to do."""


class DramInputError(ValueError):
    """Bad user input (text, image, listing file); the message is safe to show in a UI."""


class ImageError(DramInputError):
    """An image that cannot be read or used."""


class CheckpointError(RuntimeError):
    """A checkpoint folder that is missing, incomplete or incompatible with the data."""
