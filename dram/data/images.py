"""Turn whatever photo a merchandiser uploads into one clean RGB picture, or a clear ImageError.

Real catalogue photos come as CMYK JPEGs, transparent PNGs, palette GIFs, 16-bit scans,
animations and phone shots rotated by EXIF; the model wants upright RGB of a sane size. A
photo that cannot be read raises `ImageError` with a message fit for the person who uploaded it.
"""
from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dram.errors import ImageError

log = logging.getLogger(__name__)

MAX_SIDE = 2048
_WHITE = (255, 255, 255)
_ADVICE = "Upload a JPEG, PNG or WebP."


def _error(reason: str) -> ImageError:
    return ImageError(f"The photo could not be read: {reason}. {_ADVICE}")


def load_image(source: str | Path | bytes | Image.Image, name: str | None = None) -> Image.Image:
    """Return an upright RGB copy of `source`, at most MAX_SIDE pixels on its long side; `name`: the
    file that bytes were read from, for the error message."""
    if isinstance(source, Image.Image):
        return _normalise(_decoded(source, "the given picture"))
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = name or getattr(source, "name", None)  # a PhotoBytes knows the photo's name
        if not data:
            raise _error(f"the file {name} is empty" if name else "the file is empty")
        return _open_and_normalise(io.BytesIO(data), name or "the uploaded file")
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise _error(f"the file {path} does not exist")
        if path.stat().st_size == 0:
            raise _error(f"the file {path.name} is empty")
        with path.open("rb") as handle:
            return _open_and_normalise(handle, path.name)
    raise TypeError(f"load_image takes a path, bytes or a PIL image, not {type(source).__name__}")


def _open_and_normalise(handle: io.BufferedIOBase, name: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Between 1x and 2x Pillow's pixel limit it only warns; we downscale those anyway.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(handle)
    except Image.DecompressionBombError as exc:
        raise _error(f"{name} is too large to open safely ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise _error(f"{name} is not an image file") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # a file cut inside its header
        raise _error(f"{name} is incomplete or damaged ({exc})") from exc
    with image:
        if image.format == "JPEG":
            image.draft("RGB", (MAX_SIDE, MAX_SIDE))  # decode big JPEGs at a reduced scale
        return _normalise(_decoded(image, name))


def _decoded(image: Image.Image, name: str) -> Image.Image:
    """Force decoding of the first frame now, so damaged files fail here with a clear message."""
    try:
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _error(f"{name} is incomplete or damaged ({exc})") from exc
    return image


def _normalise(image: Image.Image) -> Image.Image:
    rotated = ImageOps.exif_transpose(image)  # always returns a new image, never the caller's
    rgb = _to_rgb(rotated)
    if max(rgb.size) > MAX_SIDE:
        log.info("downscaling a %dx%d photo to at most %d px", *rgb.size, MAX_SIDE)
        rgb.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    return rgb


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode.startswith("I") or mode == "F":
        image = _to_8bit(image)
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if mode == "RGB":
        return image.copy()
    return image.convert("RGB")


def _to_8bit(image: Image.Image) -> Image.Image:
    """16/32-bit grey to 8-bit L by scaling, not clipping (clipping turns most photos white)."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16"):
        top = 65535.0
    else:  # "I" holds 16-bit PNGs with values up to 65535; "F" is often 0..1
        top = max(float(values.max(initial=0.0)), 1.0)
    scale = 255.0 / top if top > 255.0 or image.mode == "F" else 1.0
    return Image.fromarray(np.clip(values * scale, 0, 255).round().astype(np.uint8))
