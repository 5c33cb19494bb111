"""Gradio pieces more than one tab uses: the photo upload, the listings file and photo zip, pictures served from gradio's cache, the theme and its CSS."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.utils import get_upload_folder
from PIL import Image

from dram.files import write_atomically
from ui.visualize import encode_jpeg


def photo_input(**kwargs: Any) -> gr.Image:
    """A gr.Image whose upload reaches the handler unopened, so dram.data.images decides whether it is a
    usable photo and says why not in plain words (gradio's own Pillow call fails with a generic error).

    Set on the instance rather than by subclassing: a gr.Image subclass makes gradio write an
    app.pyi stub next to this file at import time.
    """
    photo = gr.Image(type="filepath", **kwargs)
    photo.preprocess = _uploaded_path  # type: ignore[method-assign]
    return photo


def listing_file_inputs(file_id: str, zip_id: str) -> tuple[gr.File, gr.File]:
    """The listings file (CSV or JSONL) and the optional zip of the photos it names, side by side: the
    Audit and Annotate tabs take a catalogue the same way (dram.data.readers reads both)."""
    with gr.Row():
        listings = gr.File(label="Listings (.csv or .jsonl)", file_types=[".csv", ".jsonl", ".json"],
                           type="filepath", elem_id=file_id)
        photos = gr.File(label="Photos (.zip, optional)", file_types=[".zip"], type="filepath", elem_id=zip_id)
    return listings, photos


def _uploaded_path(payload: Any) -> str | None:
    """The cached upload's path (gradio has already moved and checked the file before preprocess)."""
    return str(payload.path) if payload is not None and getattr(payload, "path", None) else None


def publish_picture(picture: Image.Image, name: str) -> str:
    """Save an output picture as JPEG in gradio's cache and return its path, for gradio to serve as it is.

    Handing gradio a PIL image makes it re-encode it (WebP, ~10 ms) into a file named by a hash of its
    content and written in place: two identical requests at once rewrote the same file while it was
    being downloaded ("Too little data for declared Content-Length"). Here a file is written under a
    temporary name and renamed into place, and an existing one is never rewritten, only touched (the
    cache clean-up ages files by ctime).
    """
    data = encode_jpeg(picture)
    target = Path(get_upload_folder()) / f"dram-{hashlib.sha256(data).hexdigest()[:40]}" / f"{name}.jpg"
    try:
        os.utime(target)
    except FileNotFoundError:
        write_atomically(target, lambda partial: partial.write_bytes(data))
    return str(target)


def theme() -> gr.themes.Base:
    """System fonts only: the default theme fetches Google Fonts, which offline machines cannot reach."""
    return gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"],
                          font_mono=["ui-monospace", "Consolas", "monospace"])


# A gallery with this class wraps its captions instead of cutting them ("brand: Pum…"): gradio sets
# them on one line, at most 80% of the thumbnail wide.
WRAPPED_CAPTIONS = "wrapped-captions"
CSS = f"""
.{WRAPPED_CAPTIONS} .caption-label {{
  white-space: normal; overflow-wrap: anywhere; max-width: calc(100% - 2 * var(--block-label-margin));
}}
"""
