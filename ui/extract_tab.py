"""The Extract tab: one listing's values, the ARM chart and TEM heatmaps; the "/extract" API endpoint.

The encoder outputs are kept in the user's session, so moving tau_R re-runs only ARM and the CRF;
every extracted listing also joins the review queue (`review.intake`).
"""
from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from dram.data.images import load_image
from dram.data.spans import covered_words
from dram.errors import DramInputError
from dram.inference import EncodedListing, Extraction
from dram.paths import EXAMPLES
from review.intake import record_extraction
from store import StoreError
from ui.serving import ModelHandle, StoreHandle, UserFacingError, api_errors, user_errors
from ui.visualize import (
    ARM_TITLE,
    arm_chart,
    display_photo,
    highlight_segments,
    mean_attention,
    normalise_attention,
    overlay,
)
from ui.widgets import WRAPPED_CAPTIONS, photo_input, publish_picture

log = logging.getLogger("dram.app")

SMALL_PHOTO_PX = 32


@dataclass
class ExtractSession:
    """One user's last listing: encoder outputs (so tau_R changes skip the encoders) and its photo."""

    encoded: EncodedListing
    photo: Image.Image | None
    extraction: Extraction
    notes: list[str] = field(default_factory=list)
    # Heatmaps already drawn for this listing, by the word indices they average: (file, peak ratio).
    # The attention does not depend on tau_R, so moving the slider reuses them.
    heatmaps: dict[tuple[int, ...], tuple[str, float]] = field(default_factory=dict)
    display: Any = None  # the photo at display size (uint8 array), scaled once for all its heatmaps


@dataclass(frozen=True)
class Upload:
    """An uploaded photo read once: the model decodes its bytes and the review queue keeps them."""

    data: bytes
    name: str  # the file's name, for error messages


def read_upload(path: str | None) -> Upload | None:
    if not path:
        return None
    try:
        return Upload(Path(path).read_bytes(), Path(path).name)
    except OSError as err:
        raise UserFacingError(f"The photo could not be read ({err.strerror or err}); upload it again.") from err


def _read_photo(upload: Upload | None) -> tuple[Image.Image | None, list[str]]:
    if upload is None:
        return None, []
    photo = load_image(upload.data, upload.name)
    notes = []
    if min(photo.size) < SMALL_PHOTO_PX:
        notes.append(f"The photo is only {photo.width}x{photo.height} pixels; it carries almost no "
                     "visual information, so expect the text to decide.")
    return photo, notes


def encode_listing(handle: ModelHandle, text: str, upload: Upload | str | None, tau: float | None = None) -> ExtractSession:
    """Encode one listing and decode it once at `tau` (default: the model's); `upload`: the photo
    (`read_upload`) or its path."""
    extractor = handle.get()
    photo, notes = _read_photo(read_upload(upload) if isinstance(upload, str) else upload)
    encoded = extractor.encode(text, photo)
    return ExtractSession(encoded, photo, extractor.decode(encoded, tau), notes)


def _record(handle: ModelHandle, stores: StoreHandle, session: ExtractSession, upload: Upload | None) -> None:
    """Queue an extracted listing for review; a store problem is a warning, never a failed extraction."""
    try:
        store = stores.get()
        record_extraction(store, session.extraction, upload.data if upload else None, handle.version_in(store))
    except (StoreError, DramInputError, UserFacingError, OSError) as err:
        log.warning("extraction not queued for review: %s", err)
        gr.Warning(html.escape(f"Not added to the review queue: {err}", quote=False))


def _word_spans(extraction: Extraction) -> list[tuple[str, list[int]]]:
    """For each extracted value, its label and the indices of its words (for the mean attention)."""
    out = []
    for span in extraction.spans:
        index = list(covered_words(extraction.words, span))
        if index:
            out.append((f"{span.attribute}: {span.text}", index))
    return out


def _heat_image(session: ExtractSession, rows: list[int]) -> tuple[str, str]:
    """The heatmap file of the mean attention of some words, drawn once per session, and its peak caption."""
    key = tuple(rows)
    cached = session.heatmaps.get(key)
    if cached is None or not Path(cached[0]).exists():  # the cache clean-up may have removed an old file
        if session.display is None:
            session.display = display_photo(session.photo)
        heat = normalise_attention(mean_attention(session.extraction.attention, rows))
        cached = (publish_picture(overlay(session.display, heat.normalised), "heatmap"), heat.peak_ratio)
        session.heatmaps[key] = cached
    return cached[0], f"{cached[1]:.2f}x"


def _value_heatmaps(session: ExtractSession) -> list[tuple[str, str]]:
    if session.extraction.attention is None or session.photo is None:
        return []
    gallery = []
    for label, rows in _word_spans(session.extraction):
        picture, peak = _heat_image(session, rows)
        gallery.append((picture, f"{label} · {peak}"))
    return gallery


def _token_heatmap(session: ExtractSession | None, word: int | None) -> str | None:
    if session is None or session.extraction.attention is None or session.photo is None or word is None:
        return None
    if not 0 <= int(word) < len(session.extraction.words):
        return None
    return _heat_image(session, [int(word)])[0]


def _table(extraction: Extraction) -> list[list[Any]]:
    rows = [[s.attribute, s.text, round(s.confidence, 3)] for s in extraction.spans]
    found = {s.attribute for s in extraction.spans}
    rows += [[a, "(selected, but no value found in the text)", None]
             for a in extraction.selected if a not in found]
    return rows


NO_PHOTO = "No photo: the text alone was read, and there are no TEM heatmaps."


def listing_warnings(extraction: Extraction, session: ExtractSession) -> list[str]:
    """Every warning about one extraction, the same list for the page and the `/extract` endpoint."""
    return list(extraction.warnings) + session.notes + ([NO_PHOTO] if session.photo is None else [])


def _notes_markdown(extraction: Extraction, session: ExtractSession) -> str:
    return "\n".join(f"- ⚠️ {html.escape(n, quote=False)}" for n in listing_warnings(extraction, session))


def render(session: ExtractSession) -> tuple:
    """All Extract-tab outputs for the session's extraction, as decoded."""
    extraction = session.extraction
    highlighted = highlight_segments(extraction.text, extraction.spans)
    chart = arm_chart(extraction.attribute_scores, extraction.tau_r, extraction.selected, title=None)
    return (session, highlighted, _table(extraction), chart, _value_heatmaps(session),
            _notes_markdown(extraction, session))


def redecode(session: ExtractSession, tau: float, handle: ModelHandle) -> tuple:
    """The outputs at another tau_R: ARM and the CRF once, the encoders not at all."""
    session.extraction = handle.get().decode(session.encoded, tau)
    return render(session)


def _word_choices(session: ExtractSession) -> gr.Dropdown:
    has_map = session.extraction.attention is not None
    choices = [(f"{i}: {w.text}", i) for i, w in enumerate(session.extraction.words)]
    return gr.Dropdown(choices=choices, value=choices[0][1] if has_map and choices else None,
                       interactive=has_map)


def _examples() -> list[list[str]]:
    path = EXAMPLES / "examples.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [[r["text"], str(EXAMPLES / r["image"])] for r in rows]


def build_extract_tab(handle: ModelHandle, stores: StoreHandle, served: gr.State) -> None:
    """The "Extract" tab and its "/extract" endpoint, inside the caller's gr.Blocks; its colours and
    tau_R follow the served model when `served` changes (a model built after the page opened)."""

    @user_errors
    def extract_ui(text: str, photo: str | None, tau: float):
        upload = read_upload(photo)
        session = encode_listing(handle, text, upload, tau)
        _record(handle, stores, session, upload)
        for note in session.extraction.warnings + session.notes:
            gr.Warning(html.escape(note, quote=False))
        outputs = render(session)
        return (*outputs, _word_choices(session), _token_heatmap(session, 0 if session.photo else None))

    @user_errors
    def retune(tau: float, session: ExtractSession | None):
        if session is None:
            return (gr.skip(),) * 6
        return redecode(session, tau, handle)

    @user_errors
    def pick_word(word: int | None, session: ExtractSession | None) -> str | None:
        return _token_heatmap(session, word)

    @api_errors
    def extract_api(text: str, image: str | None, tau_r: float) -> dict:
        """Extract attribute values from one listing: text, optional photo path, tau_R in [0, 1]."""
        session = encode_listing(handle, text, image, tau_r)
        return {**session.extraction.to_dict(), "warnings": listing_warnings(session.extraction, session)}

    with gr.Tab("Extract"):
        with gr.Row():
            with gr.Column(scale=3):
                text = gr.Textbox(label="Listing text", lines=3, placeholder="e.g. Roadster Men Navy Blue Casual Shirt",
                                  elem_id="listing-text")
                tau_r = gr.Slider(0.0, 1.0, value=handle.default_tau, step=0.01, label="tau_R (ARM threshold)",
                                info="Attributes whose existence score R is above tau_R are decoded. "
                                     "Moving it re-runs only ARM and the CRF.", elem_id="tau")
                run = gr.Button("Extract", variant="primary", elem_id="extract-button")
            with gr.Column(scale=2):
                image = photo_input(label="Product photo (optional)", height=240,
                                   sources=["upload", "clipboard"], elem_id="photo")
        examples = _examples()
        if examples:
            gr.Examples(examples, inputs=[text, image], label="Real Myntra listings")
        notes = gr.Markdown(elem_id="notes")
        highlighted = gr.HighlightedText(label="Extracted values", color_map=handle.colours, show_legend=True,
                                         elem_id="highlighted")
        with gr.Row():
            table = gr.Dataframe(headers=["attribute", "value", "confidence"], label="Attribute values",
                                 interactive=False, elem_id="values-table")
            # PNG: a flat chart encodes ~3x faster than as WebP (gradio's default), and is sent inline
            chart = gr.Plot(label=ARM_TITLE, show_label=True, format="png", elem_id="arm-chart")
        gr.Markdown("### TEM: where each value looks in the photo\nEach map is the text-to-region attention "
                    "(7x7 regions), stretched over the photo and scaled to its own min..max; the caption ends with "
                    "how far its peak is above uniform attention (1.00x = flat, nothing singled out).")
        with gr.Row():
            value_maps = gr.Gallery(label="Per extracted value (mean over its words)", columns=3, height=420,
                                    elem_id="value-heatmaps", elem_classes=[WRAPPED_CAPTIONS])
            with gr.Column():
                word = gr.Dropdown(label="Attention of one word", choices=[], elem_id="word-pick")
                word_map = gr.Image(label="Word heatmap", type="filepath", interactive=False, height=320,
                                    elem_id="word-heatmap")
        session = gr.State(None, time_to_live=3600)
        render_outputs = [session, highlighted, table, chart, value_maps, notes]
        # "undocumented": callable by clients (benchmarks/bench_app.py times the full page work with it)
        run.click(extract_ui, [text, image, tau_r], render_outputs + [word, word_map], api_name="extract_ui",
                  api_visibility="undocumented")
        served.change(lambda: (gr.HighlightedText(color_map=handle.colours), gr.Slider(value=handle.default_tau)),
                      None, [highlighted, tau_r], api_visibility="private")
        text.submit(extract_ui, [text, image, tau_r], render_outputs + [word, word_map], api_visibility="private")
        tau_r.change(retune, [tau_r, session], render_outputs, trigger_mode="always_last",
                     api_visibility="private")
        word.change(pick_word, [word, session], word_map, api_visibility="private")
        extraction = gr.JSON(visible=False)
        api_trigger = gr.Button(visible=False)
        api_trigger.click(extract_api, [text, image, tau_r], extraction, api_name="extract",
                          api_description="Extract attribute values: text, optional photo file, tau_R.")
