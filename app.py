"""DRAM web app: extract product attribute values from a listing's text and photo, and audit batches.

Only wiring lives here: the model is `dram.inference.Extractor`, the pictures `dram.visualize`,
the batch audit `dram.audit`.

Run:  python app.py   (host/port from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, model from
DRAM_CHECKPOINT, default models/default; on a Hugging Face Space, or with DRAM_BUILD_MISSING=1,
a missing default model is built at start-up).

API (gradio_client), endpoint "/extract": inputs text, image (a file path or URL, or None), tau_r;
returns a dict {"spans": [{"start", "end", "attribute", "text", "confidence"}], "attribute_scores",
"selected", "warnings", "text", "tau_r"}. Bad input raises gradio_client's AppError with the reason.

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")
    result = client.predict("Roadster Men Navy Blue Casual Shirt", handle_file("shirt.jpg"), 0.5,
                            api_name="/extract")

Endpoint "/audit": inputs a CSV/JSONL listing file, an optional zip of photos, tau_r; returns the
result CSV, a markdown summary, the missing-attribute table and the problems table.

Annotate tab (corrections store from DRAM_DB_URL, default ./dram-store.sqlite; logic in the review package):
"/review_next", "/review_add" | "/review_relabel" | "/review_rebound" | "/review_remove" (span index,
attribute, first word, last word), "/review_save" and "/review_skip" (annotator name), each returning the
listing under review last as {"listing", "text", "spans", "predicted", "attributes"}; "/review_import"
(listing file, photo zip); "/model_versions" and "/use_model" (version id: swaps the model, no restart).
"""
from __future__ import annotations

import functools
import hashlib
import html
import io
import json
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gradio as gr
from gradio.utils import get_upload_folder
from PIL import Image

from dram.audit import BATCH_CHUNK, USUAL_SHARE, read_rows, run_audit, unpack_photos
from dram.errors import CheckpointError, DramInputError
from dram.files import write_atomically
from dram.images import load_image
from dram.inference import EncodedListing, Extraction, Extractor
from dram.paths import DEFAULT_CHECKPOINT, EXAMPLES
from dram.spans import covered_words
from dram.visualize import (ARM_TITLE, arm_chart, display_photo, encode_jpeg, highlight_segments,
                            mean_attention, normalise_attention, overlay)
from store import Store, StoreError, open_store
from review import edits, intake
from review.versions import version_choices, version_table
from store.label_studio import LabelStudioError, export_to_label_studio, import_from_label_studio

log = logging.getLogger("dram.app")

EXAMPLES_DIR = EXAMPLES
# Two CPU cores: one request at a time uses both through torch's intra-op threads; more would
# only make every request slower. The queue holds the rest (up to QUEUE_SIZE, then "queue full").
# Batch audits get their own single slot, so a long audit delays single extractions but never
# blocks them; at most two jobs share the cores.
CONCURRENCY = 1
QUEUE_SIZE = 100
MAX_UPLOAD = "20mb"
SMALL_PHOTO_PX = 32
BUILD_HINT = "python -m training.build_default"


class UserFacingError(Exception):
    """Raised inside handlers for problems whose message is meant for the person using the app."""


def _user_errors(fn: Callable) -> Callable:
    """Turn input errors into a readable gr.Error and anything unexpected into a short one, never a trace."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (DramInputError, CheckpointError, UserFacingError, StoreError, LabelStudioError) as err:
            raise gr.Error(html.escape(str(err), quote=False), print_exception=False) from err
        except Exception as err:  # a bug, not the user's fault: log it, show a short note
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error("Something went wrong on the server while processing this request; "
                           "the details are in the server log.", print_exception=False) from err

    return wrapper


class ModelHandle:
    """Loads the checkpoint once; keeps a readable reason instead of crashing when it is missing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.extractor: Extractor | None = None
        self.error: str | None = None
        self._lock = threading.Lock()

    def load(self) -> "ModelHandle":
        with self._lock:
            if self.extractor is None and self.error is None:
                try:
                    self.extractor = Extractor.load(self.path)
                    log.info("loaded %s on %s", self.path, self.extractor.device)
                except CheckpointError as err:
                    self.error = (f"No usable model at `{self.path}`. Build the default model with "
                                  f"`{BUILD_HINT}`, or point DRAM_CHECKPOINT at a checkpoint folder. ({err})")
                    log.error("%s", self.error)
        return self

    def get(self) -> Extractor:
        self.load()
        if self.extractor is None:
            raise UserFacingError(self.error or "The model is not loaded.")
        return self.extractor

    @property
    def default_tau(self) -> float:
        return self.extractor.config.tau_r if self.extractor else 0.5

    def swap(self, path: Path) -> Extractor:
        """Load another checkpoint and serve it from the next request on, without a restart.

        The new model is loaded before the lock is taken, so requests keep being served by the
        old one meanwhile; a checkpoint that fails to load leaves the old one in place.
        """
        extractor = Extractor.load(path)
        with self._lock:
            self.extractor, self.path, self.error = extractor, Path(path), None
        log.info("now serving %s", path)
        return extractor


class StoreHandle:
    """The corrections store (DRAM_DB_URL or ./dram-store.sqlite), opened on first use."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url
        self._store: Store | None = None
        self._lock = threading.Lock()

    def get(self) -> Store:
        with self._lock:
            if self._store is None:
                try:
                    self._store = open_store(self.url)
                except Exception as err:
                    log.exception("could not open the store")
                    raise UserFacingError(f"The corrections store could not be opened ({err}); check DRAM_DB_URL.") from err
            return self._store


@dataclass
class Session:
    """One user's last listing: encoder outputs (so tau_R changes skip the encoders) and its photo."""

    encoded: EncodedListing
    photo: Image.Image | None
    extraction: Extraction
    notes: list[str] = field(default_factory=list)
    # Heatmaps already drawn for this listing, by the word indices they average: (file, peak ratio).
    # The attention does not depend on tau_R, so moving the slider reuses them.
    heatmaps: dict[tuple[int, ...], tuple[str, float]] = field(default_factory=dict)
    display: Any = None  # the photo at display size (uint8 array), scaled once for all its heatmaps


def _read_photo(path: str | None) -> tuple[Image.Image | None, list[str]]:
    if not path:
        return None, []
    photo = load_image(path)
    notes = []
    if min(photo.size) < SMALL_PHOTO_PX:
        notes.append(f"The photo is only {photo.width}x{photo.height} pixels; it carries almost no "
                     "visual information, so expect the text to decide.")
    return photo, notes


def _encode(handle: ModelHandle, text: str, photo_path: str | None) -> Session:
    extractor = handle.get()
    if not isinstance(text, str) or not text.strip():
        raise UserFacingError("The listing text is empty: paste a product title or description.")
    photo, notes = _read_photo(photo_path)
    encoded = extractor.encode(text, photo)
    return Session(encoded, photo, extractor.decode(encoded), notes)


# ---------------------------------------------------------------- rendering one extraction

def _word_spans(extraction: Extraction) -> list[tuple[str, list[int]]]:
    """For each extracted value, its label and the indices of its words (for the mean attention)."""
    out = []
    for span in extraction.spans:
        index = list(covered_words(extraction.words, span))
        if index:
            out.append((f"{span.attribute}: {span.text}", index))
    return out


def _publish(picture: Image.Image, name: str) -> str:
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


def _heat_image(session: Session, rows: list[int]) -> tuple[str, str]:
    """The heatmap file of the mean attention of some words, drawn once per session, and its peak caption."""
    key = tuple(rows)
    cached = session.heatmaps.get(key)
    if cached is None or not Path(cached[0]).exists():  # the cache clean-up may have removed an old file
        if session.display is None:
            session.display = display_photo(session.photo)
        heat = normalise_attention(mean_attention(session.extraction.attention, rows))
        cached = (_publish(overlay(session.display, heat.normalised), "heatmap"), heat.peak_ratio)
        session.heatmaps[key] = cached
    return cached[0], f"peak {cached[1]:.2f}x uniform"


def _value_heatmaps(session: Session) -> list[tuple[str, str]]:
    if session.extraction.attention is None or session.photo is None:
        return []
    gallery = []
    for label, rows in _word_spans(session.extraction):
        picture, peak = _heat_image(session, rows)
        gallery.append((picture, f"{label} ({peak})"))
    return gallery


def _token_heatmap(session: Session | None, word: int | None) -> str | None:
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


def _notes_markdown(extraction: Extraction, session: Session) -> str:
    notes = list(extraction.warnings) + session.notes
    if session.photo is None:
        notes.append("No photo: the text alone was read, and there are no TEM heatmaps.")
    if not notes:
        return ""
    return "\n".join(f"- ⚠️ {html.escape(n, quote=False)}" for n in notes)


def _render(session: Session, tau: float, handle: ModelHandle) -> tuple:
    """All Extract-tab outputs for a session decoded at tau (ARM + CRF only)."""
    extraction = handle.get().decode(session.encoded, tau)
    session.extraction = extraction
    highlighted = highlight_segments(extraction.text, extraction.spans)
    chart = arm_chart(extraction.attribute_scores, extraction.tau_r, extraction.selected, title=None)
    return (session, highlighted, _table(extraction), chart, _value_heatmaps(session),
            _notes_markdown(extraction, session))


def _word_choices(session: Session) -> gr.Dropdown:
    has_map = session.extraction.attention is not None
    choices = [(f"{i}: {w.text}", i) for i, w in enumerate(session.extraction.words)]
    return gr.Dropdown(choices=choices, value=choices[0][1] if has_map and choices else None,
                       interactive=has_map)


# ---------------------------------------------------------------- batch audit (logic in dram/audit.py)

def _audit(handle: ModelHandle, listing_file: str | None, photos_zip: str | None, tau: float,
           progress: gr.Progress) -> tuple[str, str, list[list[Any]], list[list[Any]]]:
    extractor = handle.get()
    if not listing_file:
        raise UserFacingError("Upload a CSV or JSONL file of listings first.")
    result = run_audit(extractor, Path(listing_file), Path(photos_zip) if photos_zip else None, tau,
                       progress=lambda share: progress(share, desc="Extracting"))
    return str(result.csv_path), result.summary_markdown(), result.missing, result.problems


# ---------------------------------------------------------------- UI

_RULE = (f"**How “usually has” works.** A listing's category is its `category` column when the file has one, "
         f"otherwise the article type the model extracts from it (lower-cased). Within this batch, an attribute is "
         f"one a category *usually has* when a value for it was extracted from at least {USUAL_SHARE:.0%} of that "
         f"category's listings; every listing of the category without a value for it is listed below. Small "
         f"categories rarely reach the bar (2 of 3 is 67%), so the audit speaks only where the batch agrees.")


def _model_markdown(handle: ModelHandle) -> str:
    if handle.extractor is None:
        return f"### ⚠️ No model loaded\n\n{handle.error}"
    ex = handle.extractor
    cfg = ex.config
    device = "GPU (CUDA)" if ex.device.type == "cuda" else ex.device.type.upper()
    metrics = json.dumps(ex.metrics, indent=2) if ex.metrics else "(no metrics.json values: an untrained or unevaluated checkpoint)"
    return "\n".join([
        f"- **Checkpoint:** `{handle.path}`",
        f"- **Attributes:** {', '.join(cfg.attributes)}",
        f"- **Variant:** {cfg.variant} (image: {cfg.use_image}, TEM: {cfg.use_tem}, ARM: {cfg.use_arm}, "
        f"ARM policy: {cfg.arm_policy})",
        f"- **Encoders:** text `{cfg.text_encoder}`, image `{cfg.image_encoder if cfg.use_image else 'none'}` "
        f"({cfg.image_size}px, {cfg.image_regions} regions)",
        f"- **tau_R (checkpoint default):** {cfg.tau_r}",
        f"- **Runs on:** {device}",
        f"- **Reads:** the whole text, in windows of {cfg.max_tokens} tokens",
        "", "**Metrics** (metrics.json)", "", f"```json\n{metrics}\n```",
    ])


def _photo_input(**kwargs: Any) -> gr.Image:
    """A gr.Image whose upload reaches the handler unopened, so dram.images decides whether it is a
    usable photo and says why not in plain words (gradio's own Pillow call fails with a generic error).

    Set on the instance rather than by subclassing: a gr.Image subclass makes gradio write an
    app.pyi stub next to this file at import time.
    """
    photo = gr.Image(type="filepath", **kwargs)
    photo.preprocess = _uploaded_path  # type: ignore[method-assign]
    return photo


def _uploaded_path(payload: Any) -> str | None:
    """The cached upload's path (gradio has already moved and checked the file before preprocess)."""
    return str(payload.path) if payload is not None and getattr(payload, "path", None) else None


def _examples() -> list[list[str]]:
    path = EXAMPLES_DIR / "examples.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [[r["text"], str(EXAMPLES_DIR / r["image"])] for r in rows]


# ---------------------------------------------------------------- Annotate tab (logic in the review package)

def _running_version(handle: ModelHandle, store: Store) -> int:
    """The store's version id of the model this app is serving (registered on first use)."""
    extractor = handle.get()
    return store.version_for_checkpoint(handle.path, extractor.metrics).id


def _record(handle: ModelHandle, stores: StoreHandle, session: Session, photo_path: str | None, tau: float) -> None:
    """Queue an extracted listing for review; a store problem is a warning, never a failed extraction."""
    try:
        store = stores.get()
        photo = Path(photo_path).read_bytes() if photo_path else None
        extraction = handle.get().decode(session.encoded, tau)
        intake.record_extraction(store, extraction, photo, _running_version(handle, store))
    except (StoreError, DramInputError, UserFacingError, OSError) as err:
        log.warning("extraction not queued for review: %s", err)
        gr.Warning(html.escape(f"Not added to the review queue: {err}", quote=False))


def _progress_markdown(store: Store) -> str:
    done, left = store.progress()
    return f"**Reviewed:** {done} · **left:** {left}"


def _show(store: Store, item: dict | None, attributes: list[str]) -> tuple:
    """Annotate-tab outputs for the listing being reviewed (or the empty queue)."""
    progress = _progress_markdown(store)
    if item is None:
        empty = gr.Dropdown(choices=[], value=None)
        return (None, "The review queue is empty: extract listings or import a file below.", [], empty, empty, empty,
                None, progress, {"listing": None})
    text, spans = item["text"], item["spans"]
    words = edits.word_choices(text)
    photo = None
    if item["photo_sha256"]:
        data = store.photo_bytes(item["photo_sha256"])
        photo = Image.open(io.BytesIO(data)) if data else None
    listing = (f"**Listing {item['listing_id']}**" + (f" (`{html.escape(item['external_id'])}`)" if item["external_id"] else "")
               + f"\n\n> {html.escape(text, quote=False)}\n\n"
               + "Words: " + " ".join(f"`{label}`" for label, _ in words))
    highlighted = highlight_segments(text, spans)
    api_view = {"listing": item["listing_id"], "text": text, "spans": [s.to_dict() for s in spans],
                "predicted": [s.to_dict() for s in item["predicted"]], "attributes": attributes}
    return (item, listing, highlighted, gr.Dropdown(choices=edits.span_choices(text, spans), value=None),
            gr.Dropdown(choices=words, value=None), gr.Dropdown(choices=words, value=None), photo, progress, api_view)


def _report_markdown(lines: list[str]) -> str:
    """A Label Studio report: the summary in bold, then one bullet per conflict, refusal or failure."""
    summary, *details = (html.escape(line, quote=False) for line in lines)
    return f"**{summary}**" + "".join(f"\n- {detail}" for detail in details)


def _next_item(store: Store, tau: float) -> dict | None:
    queue = store.review_queue(tau, limit=1)
    if not queue:
        return None
    top = queue[0]
    return {"listing_id": top.listing_id, "external_id": top.external_id, "text": top.text,
            "photo_sha256": top.photo_sha256, "prediction_id": top.prediction_id,
            "predicted": edits.clean_spans(top.spans), "spans": edits.clean_spans(top.spans)}


def _intake_rows(listing_file: Path, photos: dict[str, Path]) -> tuple[list[intake.IntakeRow], list[str]]:
    rows, problems = read_rows(listing_file)
    notes = [f"row {p[0]}: {p[2]}" for p in problems]
    queued = []
    for row in rows:
        name = row.image.replace("\\", "/")
        if row.image and name not in photos:
            notes.append(f"row {row.number} ({row.id}): photo {row.image!r} is not in the photo zip; skipped")
        else:
            queued.append(intake.IntakeRow(row.id or None, row.text, photos.get(name) if row.image else None))
    return queued, notes


def build_annotate_tab(handle: ModelHandle, stores: StoreHandle, colours: dict[str, str]) -> Any:
    """The "Annotate" tab: review queue, span editing, imports, Label Studio sync and model versions.

    Returns the "use this model" event so the caller can refresh what else shows the model.
    """
    attributes = handle.extractor.attributes if handle.extractor else []

    def load_next() -> tuple:
        store = stores.get()
        return _show(store, _next_item(store, handle.default_tau), attributes)

    def edit(change: Callable[[dict], list[dict]]) -> Callable:
        @_user_errors
        def handler(item: dict | None, *choices: Any) -> tuple:
            if item is None:
                raise UserFacingError("Load a listing from the review queue first.")
            item = {**item, "spans": change(item, *choices)}
            return _show(stores.get(), item, attributes)

        return handler

    add = edit(lambda item, _span, attribute, first, last: edits.add_span(item["text"], item["spans"], first, last,
                                                                             attribute, attributes))
    remove = edit(lambda item, span, *_: edits.remove_span(item["spans"], span))
    relabel = edit(lambda item, span, attribute, *_: edits.relabel_span(item["spans"], span, attribute, attributes))
    rebound = edit(lambda item, span, _attribute, first, last: edits.rebound_span(item["text"], item["spans"], span,
                                                                                     first, last))

    @_user_errors
    def pick_span(item: dict | None, span: int | None) -> tuple:
        if item is None or span is None or not 0 <= span < len(item["spans"]):
            return gr.skip(), gr.skip(), gr.skip()
        first, last = edits.word_bounds(item["text"], item["spans"][span])
        return item["spans"][span].attribute, first, last

    def verdict(skip: bool) -> Callable:
        @_user_errors
        def handler(annotator: str, item: dict | None) -> tuple:
            if item is None:
                raise UserFacingError("Load a listing from the review queue first.")
            store = stores.get()
            status = "skipped" if skip else edits.status_for(item["spans"], item["predicted"])
            store.save_correction(item["listing_id"], annotator, item["spans"], status=status,
                                  prediction_id=item["prediction_id"], allowed_attributes=attributes)
            gr.Info(f"Listing {item['listing_id']}: {status}.")
            return load_next()

        return handler

    @_user_errors
    def import_file(listing_file: str | None, photos_zip: str | None) -> tuple[str, str]:
        if not listing_file:
            raise UserFacingError("Upload a CSV or JSONL file of listings first.")
        store = stores.get()
        work = Path(tempfile.mkdtemp(prefix="dram-review-"))
        try:
            photos = unpack_photos(Path(photos_zip) if photos_zip else None, work)
            rows, notes = _intake_rows(Path(listing_file), photos)
            report = intake.import_for_review(store, handle.get(), rows, _running_version(handle, store),
                                              handle.default_tau, batch_size=BATCH_CHUNK)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        problems = notes + report.problems
        details = "\n".join(f"- {html.escape(p, quote=False)}" for p in problems)
        return f"**{report.summary()}**\n\n{details}", _progress_markdown(store)

    @_user_errors
    def export_ls(url: str, key: str) -> str:
        report = export_to_label_studio(stores.get(), url or None, key or None, attributes=attributes)
        return _report_markdown(report.lines())

    @_user_errors
    def import_ls(url: str, key: str) -> tuple[str, str]:
        store = stores.get()
        report = import_from_label_studio(store, url or None, key or None, attributes=attributes)
        return _report_markdown(report.lines()), _progress_markdown(store)

    @_user_errors
    def list_versions() -> gr.Dropdown:
        store = stores.get()
        _running_version(handle, store)
        choices = version_choices(store)
        active = store.active_model_version()
        return gr.Dropdown(choices=choices, value=active.id if active else None)

    @_user_errors
    def use_version(version_id: int | None) -> tuple[str, gr.Dropdown]:
        store = stores.get()
        version = next((v for v in store.list_model_versions() if v.id == version_id), None)
        if version is None:
            raise UserFacingError("Pick a registered model version first (refresh the list if it is empty).")
        handle.swap(Path(version.checkpoint_path))
        store.activate_model_version(version.id)
        return (f"Now serving **#{version.id} {html.escape(version.name)}** (`{version.checkpoint_path}`).",
                gr.Dropdown(choices=version_choices(store), value=version.id))

    with gr.Tab("Annotate"):
        gr.Markdown("Fix the model's values on the listings it is least sure about; saved corrections are what "
                    "`python -m training.finetune` learns from. Listings enter the queue when extracted in the "
                    "Extract tab or imported below.")
        with gr.Row():
            annotator = gr.Textbox(label="Your name (required to save)", elem_id="annotator", scale=2)
            progress = gr.Markdown(elem_id="review-progress")
            next_button = gr.Button("Load next listing", elem_id="review-next", scale=1)
        current = gr.State(None)
        with gr.Row():
            with gr.Column(scale=3):
                listing = gr.Markdown(elem_id="review-listing")
                spans = gr.HighlightedText(label="Values (as you will save them)", color_map=colours, show_legend=True,
                                           elem_id="review-spans")
                with gr.Row():
                    span_pick = gr.Dropdown(label="Value to change", choices=[], elem_id="review-span")
                    attribute = gr.Dropdown(label="Attribute", choices=attributes, elem_id="review-attribute")
                    first = gr.Dropdown(label="First word", choices=[], elem_id="review-first")
                    last = gr.Dropdown(label="Last word", choices=[], elem_id="review-last")
                with gr.Row():
                    add_button = gr.Button("Add value (attribute, first..last word)")
                    relabel_button = gr.Button("Relabel value")
                    rebound_button = gr.Button("Re-bound value (first..last word)")
                    remove_button = gr.Button("Remove value")
                with gr.Row():
                    save_button = gr.Button("Save", variant="primary", elem_id="review-save")
                    skip_button = gr.Button("Skip", elem_id="review-skip")
            with gr.Column(scale=2):
                photo = gr.Image(label="Photo", type="pil", interactive=False, height=280, elem_id="review-photo")
        view = gr.JSON(visible=False)
        shown = [current, listing, spans, span_pick, first, last, photo, progress, view]
        next_button.click(_user_errors(load_next), None, shown, api_name="review_next")
        choices = [current, span_pick, attribute, first, last]
        add_button.click(add, choices, shown, api_name="review_add")
        relabel_button.click(relabel, choices, shown, api_name="review_relabel")
        rebound_button.click(rebound, choices, shown, api_name="review_rebound")
        remove_button.click(remove, choices, shown, api_name="review_remove")
        span_pick.change(pick_span, [current, span_pick], [attribute, first, last], api_visibility="private")
        save_button.click(verdict(skip=False), [annotator, current], shown, api_name="review_save")
        skip_button.click(verdict(skip=True), [annotator, current], shown, api_name="review_skip")

        with gr.Accordion("Import listings for review", open=False):
            gr.Markdown("CSV or JSONL with `id`, `text` and optionally `image` (a file name in the photo zip); the "
                        "model runs on each and they join the queue.")
            with gr.Row():
                intake_file = gr.File(label="Listings (.csv or .jsonl)", file_types=[".csv", ".jsonl", ".json"],
                                      type="filepath", elem_id="review-import-file")
                intake_zip = gr.File(label="Photos (.zip, optional)", file_types=[".zip"], type="filepath")
            intake_button = gr.Button("Import listings for review", elem_id="review-import")
            intake_report = gr.Markdown()
            intake_button.click(import_file, [intake_file, intake_zip], [intake_report, progress],
                                api_name="review_import", concurrency_id="audit", concurrency_limit=1)

        with gr.Accordion("Label Studio", open=False):
            with gr.Row():
                ls_url = gr.Textbox(label="Label Studio URL", value=os.environ.get("LABEL_STUDIO_URL", ""))
                ls_key = gr.Textbox(label="API key", type="password", placeholder="default: LABEL_STUDIO_API_KEY")
            with gr.Row():
                export_button = gr.Button("Export to Label Studio")
                import_button = gr.Button("Import from Label Studio")
            ls_report = gr.Markdown()
            export_button.click(export_ls, [ls_url, ls_key], ls_report, api_visibility="private")
            import_button.click(import_ls, [ls_url, ls_key], [ls_report, progress], api_visibility="private")

        with gr.Accordion("Model version", open=False):
            with gr.Row():
                versions = gr.Dropdown(label="Registered model versions", choices=[], elem_id="model-versions")
                refresh_button = gr.Button("Refresh list")
                use_button = gr.Button("Use this model", variant="primary", elem_id="use-model")
            version_note = gr.Markdown()
            refresh_button.click(list_versions, None, versions, api_name="model_versions")
            return use_button.click(use_version, versions, [version_note, versions], api_name="use_model")


def build_default_if_missing(path: Path) -> None:
    """A Hugging Face Space (SPACE_ID set) starts from the repository alone, without models/: there,
    or with DRAM_BUILD_MISSING=1, the default model is built at start-up (about 5 minutes on 2 cores)."""
    from training import build_default  # a training job, run only on a Space that has no model yet

    wanted = os.environ.get("DRAM_BUILD_MISSING") == "1" or bool(os.environ.get("SPACE_ID"))
    if not wanted or build_default.is_built(path) or path.resolve() != DEFAULT_CHECKPOINT.resolve():
        return
    log.info("no model at %s: building the default model from the bundled listings (a few minutes)", path)
    build_default.build(out=path)


def build_demo(checkpoint: Path | str | None = None) -> gr.Blocks:
    """The whole app; the model is loaded here, once, before the first request."""
    path = Path(checkpoint or os.environ.get("DRAM_CHECKPOINT") or DEFAULT_CHECKPOINT)
    build_default_if_missing(path)
    handle = ModelHandle(path).load()
    attributes = handle.extractor.attributes if handle.extractor else []
    palette = ["#fde68a", "#bfdbfe", "#bbf7d0", "#fbcfe8", "#ddd6fe", "#fed7aa", "#a5f3fc", "#e5e7eb"]
    colours = {a: palette[i % len(palette)] for i, a in enumerate(attributes)}
    stores = StoreHandle()

    @_user_errors
    def extract_ui(text: str, photo: str | None, tau: float):
        session = _encode(handle, text, photo)
        _record(handle, stores, session, photo, tau)
        for note in session.extraction.warnings + session.notes:
            gr.Warning(html.escape(note, quote=False))
        outputs = _render(session, tau, handle)
        return (*outputs, _word_choices(session), _token_heatmap(session, 0 if session.photo else None))

    @_user_errors
    def retune(tau: float, session: Session | None):
        if session is None:
            return (gr.skip(),) * 6
        return _render(session, tau, handle)

    @_user_errors
    def pick_word(word: int | None, session: Session | None) -> str | None:
        return _token_heatmap(session, word)

    @_user_errors
    def extract_api(text: str, image: str | None, tau_r: float) -> dict:
        """Extract attribute values from one listing: text, optional photo path, tau_R in [0, 1]."""
        session = _encode(handle, text, image)
        extraction = handle.get().decode(session.encoded, tau_r)
        result = extraction.to_dict()
        result["warnings"] = extraction.warnings + session.notes
        return result

    @_user_errors
    def audit(listing_file: str | None, photos_zip: str | None, tau: float, progress=gr.Progress()):
        return _audit(handle, listing_file, photos_zip, tau, progress)

    with gr.Blocks(title="DRAM attribute extraction", delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# DRAM: product attribute values from listing text + photo")
        if handle.extractor is None:
            gr.Markdown(f"## ⚠️ The model is not available\n\n{handle.error}", elem_id="model-missing")
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
                    image = _photo_input(label="Product photo (optional)", height=240,
                                       sources=["upload", "clipboard"], elem_id="photo")
            examples = _examples()
            if examples:
                gr.Examples(examples, inputs=[text, image], label="Real Myntra listings")
            notes = gr.Markdown(elem_id="notes")
            highlighted = gr.HighlightedText(label="Extracted values", color_map=colours, show_legend=True,
                                             elem_id="highlighted")
            with gr.Row():
                table = gr.Dataframe(headers=["attribute", "value", "confidence"], label="Attribute values",
                                     interactive=False, elem_id="values-table")
                # PNG: a flat chart encodes ~3x faster than as WebP (gradio's default), and is sent inline
                chart = gr.Plot(label=ARM_TITLE, show_label=True, format="png", elem_id="arm-chart")
            gr.Markdown("### TEM: where each value looks in the photo\nEach map is the text-to-region attention "
                        "(7x7 regions), stretched over the photo and scaled to its own min..max; the caption says "
                        "how far its peak is above uniform attention (1.00x = flat, nothing singled out).")
            with gr.Row():
                value_maps = gr.Gallery(label="Per extracted value (mean over its words)", columns=4, height=360,
                                        elem_id="value-heatmaps")
                with gr.Column():
                    word = gr.Dropdown(label="Attention of one word", choices=[], elem_id="word-pick")
                    word_map = gr.Image(label="Word heatmap", type="filepath", interactive=False, height=320,
                                        elem_id="word-heatmap")
            session = gr.State(None, time_to_live=3600)
            render_outputs = [session, highlighted, table, chart, value_maps, notes]
            # "undocumented": callable by clients (benchmarks/bench_app.py times the full page work with it)
            run.click(extract_ui, [text, image, tau_r], render_outputs + [word, word_map], api_name="extract_ui",
                      api_visibility="undocumented")
            text.submit(extract_ui, [text, image, tau_r], render_outputs + [word, word_map], api_visibility="private")
            tau_r.change(retune, [tau_r, session], render_outputs, trigger_mode="always_last",
                         api_visibility="private")
            word.change(pick_word, [word, session], word_map, api_visibility="private")
            extraction = gr.JSON(visible=False)
            api_trigger = gr.Button(visible=False)
            api_trigger.click(extract_api, [text, image, tau_r], extraction, api_name="extract",
                              api_description="Extract attribute values: text, optional photo file, tau_R.")
        with gr.Tab("Batch audit"):
            gr.Markdown("Upload listings as CSV (columns `id`, `text`, optional `image`, `category`) or JSONL "
                        "(same keys), and optionally a zip of the photos named in `image`. Rows that cannot be "
                        "used are listed under *Problems*; the rest are still processed.")
            with gr.Row():
                listing_file = gr.File(label="Listings (.csv or .jsonl)", file_types=[".csv", ".jsonl", ".json"],
                                       type="filepath", elem_id="batch-file")
                photos_zip = gr.File(label="Photos (.zip, optional)", file_types=[".zip"], type="filepath",
                                     elem_id="batch-zip")
            batch_tau_r = gr.Slider(0.0, 1.0, value=handle.default_tau, step=0.01, label="tau_R")
            audit_button = gr.Button("Run audit", variant="primary", elem_id="audit-button")
            if (EXAMPLES_DIR / "batch.csv").exists():
                gr.Examples([[str(EXAMPLES_DIR / "batch.csv"), str(EXAMPLES_DIR / "batch_photos.zip")]],
                            inputs=[listing_file, photos_zip], label="Sample batch (24 real Myntra listings)")
            summary = gr.Markdown()
            attributes_csv = gr.File(label="Extracted attributes (CSV: id, attribute, value, confidence)")
            gr.Markdown(_RULE)
            missing = gr.Dataframe(headers=["id", "category", "missing", "listings in category", "text"],
                                   label="Listings missing attributes their category usually has", interactive=False)
            problems = gr.Dataframe(headers=["row", "id", "problem", "action"], label="Problems", interactive=False)
            audit_button.click(audit, [listing_file, photos_zip, batch_tau_r], [attributes_csv, summary, missing, problems],
                               api_name="audit", concurrency_id="audit", concurrency_limit=1)
        model_switched = build_annotate_tab(handle, stores, colours)
        with gr.Tab("Model"):
            model_info = gr.Markdown(_model_markdown(handle), elem_id="model-info")
            gr.Markdown("**Registered versions.** A fine-tune goes live only if it is not worse on the held-out "
                        "corrections and at most 0.3 TAG-F1 points worse on the replay test (old → new below); "
                        "a version not promoted can still be served from the Annotate tab's Model version list.")
            versions_table = gr.Markdown(elem_id="model-versions-table")
            versions_refresh = gr.Button("Show registered versions")
            show_versions = _user_errors(lambda: version_table(stores.get()))
            versions_refresh.click(show_versions, None, versions_table, api_visibility="private")
        model_switched.then(lambda: _model_markdown(handle), None, model_info, api_visibility="private").then(
            show_versions, None, versions_table, api_visibility="private")
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    return demo


def _theme() -> gr.themes.Base:
    """System fonts only: the default theme fetches Google Fonts, which offline machines cannot reach."""
    return gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"],
                          font_mono=["ui-monospace", "Consolas", "monospace"])


if __name__ == "__main__":  # before build_demo, so a start-up build on a Space says what it does
    logging.basicConfig(level=os.environ.get("LOGLEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

demo = build_demo()

if __name__ == "__main__":
    demo.launch(max_file_size=MAX_UPLOAD, theme=_theme())
