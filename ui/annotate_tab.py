"""The Annotate tab: the review queue, span edits by text selection, new attributes, imports, Label
Studio sync and model versions.

The logic is the review package's (`review.edits`, `review.intake`, `review.versions`); the listing
under review is a `review.edits.ReviewItem` kept in the user's gr.State.
"""
from __future__ import annotations

import html
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import gradio as gr
from PIL import Image

from review import edits, queue
from review.edits import ReviewItem
from review.intake import IntakeRow, import_for_review
from review.versions import version_choices
from store import Store
from store.label_studio import export_to_label_studio, import_from_label_studio
from ui.audit import BATCH_CHUNK, read_rows, unpack_photos
from ui.serving import ModelHandle, StoreHandle, UserFacingError, user_errors
from ui.visualize import highlight_segments


def _progress_markdown(store: Store) -> str:
    done, left = store.progress()
    return f"**Reviewed:** {done} · **left:** {left}"


def _show(store: Store, item: ReviewItem | None, attributes: list[str]) -> tuple:
    """Annotate-tab outputs for the listing being reviewed (or the empty queue); the selection is cleared."""
    progress = _progress_markdown(store)
    if item is None:
        return (None, "The review queue is empty: extract listings or import a file below.", "", [],
                gr.Dropdown(choices=[], value=None), None, None, "", None, progress, {"listing": None})
    text, spans = item.text, list(item.spans)
    photo = None
    if item.photo_sha256:
        data = store.photo_bytes(item.photo_sha256)
        photo = Image.open(io.BytesIO(data)) if data else None
    header = f"**Listing {item.listing_id}**" + (f" (`{html.escape(item.external_id)}`)" if item.external_id else "")
    api_view = {"listing": item.listing_id, "text": text, "spans": [s.to_dict() for s in spans],
                "predicted": [s.to_dict() for s in item.predicted], "attributes": attributes}
    return (item, header, text, highlight_segments(text, spans),
            gr.Dropdown(choices=edits.span_choices(text, spans), value=None), None, None, "", photo, progress,
            api_view)


def _report_markdown(lines: list[str]) -> str:
    """A Label Studio report: the summary in bold, then one bullet per conflict, refusal or failure."""
    summary, *details = (html.escape(line, quote=False) for line in lines)
    return f"**{summary}**" + "".join(f"\n- {detail}" for detail in details)


def _intake_rows(listing_file: Path, photos: dict[str, Path]) -> tuple[list[IntakeRow], list[str]]:
    rows, problems = read_rows(listing_file)
    notes = [f"row {p[0]}: {p[2]}" for p in problems]
    queued = []
    for row in rows:
        name = row.image.replace("\\", "/")
        if row.image and name not in photos:
            notes.append(f"row {row.number} ({row.id}): photo {row.image!r} is not in the photo zip; skipped")
        else:
            queued.append(IntakeRow(row.id or None, row.text, photos.get(name) if row.image else None))
    return queued, notes


def build_annotate_tab(handle: ModelHandle, stores: StoreHandle, colours: dict[str, str]) -> Any:
    """The "Annotate" tab: review queue, span editing, imports, Label Studio sync and model versions.

    Returns the "use this model" event so the caller can refresh what else shows the model.
    """
    def known_attributes(store: Store) -> list[str]:
        """The model's attributes, then those annotators added (the store's attribute set)."""
        return [*handle.attributes, *(a for a in store.attributes() if a not in handle.attributes)]

    def load_next(annotator: str | None = None) -> tuple:
        store = stores.get()
        return _show(store, queue.next_item(store, handle.default_tau, annotator), known_attributes(store))

    def edit(change: Callable[..., list]) -> Callable:
        @user_errors
        def handler(item: ReviewItem | None, *choices: Any) -> tuple:
            if item is None:
                raise UserFacingError("Load a listing from the review queue first.")
            store = stores.get()
            attributes = known_attributes(store)
            return _show(store, item.with_spans(change(item, attributes, *choices)), attributes)

        return handler

    add = edit(lambda item, known, _span, attribute, start, end: edits.add_span(item.text, item.spans, start, end,
                                                                                attribute, known))
    remove = edit(lambda item, _known, span, *_: edits.remove_span(item.spans, span))
    relabel = edit(lambda item, known, span, attribute, *_: edits.relabel_span(item.spans, span, attribute, known))
    rebound = edit(lambda item, _known, span, _attribute, start, end: edits.rebound_span(item.text, item.spans, span,
                                                                                         start, end))

    @user_errors
    def pick_span(item: ReviewItem | None, span: int | None) -> Any:
        if item is None or span is None or not 0 <= span < len(item.spans):
            return gr.skip()
        return item.spans[span].attribute

    def select_text(item: ReviewItem | None, event: gr.SelectData) -> tuple:
        """The annotator's selection in the listing text, as character offsets, and what it will mark."""
        if item is None or not isinstance(event.index, (list, tuple)):
            return None, None, ""
        start, end = edits.selection_offsets(item.text, *event.index, selected=event.value or None)
        try:
            span = edits.span_from_selection(item.text, start, end, "")
        except edits.ReviewError as err:
            return start, end, str(err)
        return start, end, f"Selected: **{html.escape(item.text[span.start:span.end], quote=False)}**"

    def keep_text(item: ReviewItem | None) -> str:
        """The listing text is for selecting, not editing: typing in it is undone."""
        return item.text if item is not None else ""

    @user_errors
    def add_attribute(annotator: str, name: str) -> tuple:
        store = stores.get()
        name = (name or "").strip()
        if not name:
            raise UserFacingError("Type the new attribute's name first, e.g. 'metal type'.")
        added = store.add_attribute(name, added_by=(annotator or "").strip() or None)
        gr.Info(f"Attribute {name!r} {'added' if added else 'was already there'}: mark its values and save; "
                "`python -m training.finetune` teaches it to the model.")
        return gr.Dropdown(choices=known_attributes(store), value=name), ""

    def verdict(skip: bool) -> Callable:
        @user_errors
        def handler(annotator: str, item: ReviewItem | None) -> tuple:
            if item is None:
                raise UserFacingError("Load a listing from the review queue first.")
            status = queue.save_verdict(stores.get(), annotator, item, skip=skip, attributes=known_attributes(stores.get()))
            gr.Info(f"Listing {item.listing_id}: {status}.")
            return load_next(annotator)

        return handler

    @user_errors
    def import_file(listing_file: str | None, photos_zip: str | None) -> tuple[str, str]:
        if not listing_file:
            raise UserFacingError("Upload a CSV or JSONL file of listings first.")
        store = stores.get()
        work = Path(tempfile.mkdtemp(prefix="dram-review-"))
        try:
            photos = unpack_photos(Path(photos_zip) if photos_zip else None, work)
            rows, notes = _intake_rows(Path(listing_file), photos)
            report = import_for_review(store, handle.get(), rows, handle.version_in(store), handle.default_tau,
                                       batch_size=BATCH_CHUNK)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        problems = notes + report.problems
        details = "\n".join(f"- {html.escape(p, quote=False)}" for p in problems)
        return f"**{report.summary()}**\n\n{details}", _progress_markdown(store)

    @user_errors
    def export_ls(url: str, key: str) -> str:
        store = stores.get()
        report = export_to_label_studio(store, url or None, key or None, attributes=known_attributes(store))
        return _report_markdown(report.lines())

    @user_errors
    def import_ls(url: str, key: str) -> tuple[str, str]:
        store = stores.get()
        report = import_from_label_studio(store, url or None, key or None, attributes=known_attributes(store))
        return _report_markdown(report.lines()), _progress_markdown(store)

    @user_errors
    def list_versions() -> gr.Dropdown:
        store = stores.get()
        handle.version_in(store)
        choices = version_choices(store)
        active = store.active_model_version()
        return gr.Dropdown(choices=choices, value=active.id if active else None)

    @user_errors
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
                text = gr.Textbox(label="Listing text: select a value's words with the mouse", lines=4, max_lines=14,
                                  elem_id="review-text")
                selection_note = gr.Markdown(elem_id="review-selection")
                # the selection as character offsets; scripts pass them straight to /review_add
                selection_start = gr.Number(visible=False, precision=0)
                selection_end = gr.Number(visible=False, precision=0)
                spans = gr.HighlightedText(label="Values (as you will save them)", color_map=colours, show_legend=True,
                                           elem_id="review-spans")
                with gr.Row():
                    attribute = gr.Dropdown(label="Attribute", choices=handle.attributes, elem_id="review-attribute")
                    span_pick = gr.Dropdown(label="Value to change", choices=[], elem_id="review-span")
                with gr.Row():
                    add_button = gr.Button("Add the selection as a value of the attribute", elem_id="review-add")
                    rebound_button = gr.Button("Re-bound the value to the selection")
                    relabel_button = gr.Button("Relabel the value")
                    remove_button = gr.Button("Remove the value")
                with gr.Row():
                    new_attribute = gr.Textbox(label="An attribute the model does not have yet", scale=3,
                                               placeholder="e.g. metal type", elem_id="review-new-attribute")
                    new_attribute_button = gr.Button("Add attribute", scale=1, elem_id="review-add-attribute")
                with gr.Row():
                    save_button = gr.Button("Save", variant="primary", elem_id="review-save")
                    skip_button = gr.Button("Skip", elem_id="review-skip")
            with gr.Column(scale=2):
                photo = gr.Image(label="Photo", type="pil", interactive=False, height=280, elem_id="review-photo")
        view = gr.JSON(visible=False)
        shown = [current, listing, text, spans, span_pick, selection_start, selection_end, selection_note, photo,
                 progress, view]

        def refresh_attributes() -> gr.Dropdown:
            """Attributes another annotator added meanwhile join the list when the next listing loads."""
            return gr.Dropdown(choices=known_attributes(stores.get()))

        next_button.click(user_errors(load_next), [annotator], shown, api_name="review_next").then(
            refresh_attributes, None, attribute, api_visibility="private")
        choices = [current, span_pick, attribute, selection_start, selection_end]
        add_button.click(add, choices, shown, api_name="review_add")
        relabel_button.click(relabel, choices, shown, api_name="review_relabel")
        rebound_button.click(rebound, choices, shown, api_name="review_rebound")
        remove_button.click(remove, choices, shown, api_name="review_remove")
        span_pick.change(pick_span, [current, span_pick], attribute, api_visibility="private")
        text.select(select_text, current, [selection_start, selection_end, selection_note], api_visibility="private")
        text.input(keep_text, current, text, api_visibility="private")
        new_attribute_button.click(add_attribute, [annotator, new_attribute], [attribute, new_attribute],
                                   api_name="review_add_attribute")
        for button, skip, name in ((save_button, False, "review_save"), (skip_button, True, "review_skip")):
            button.click(verdict(skip=skip), [annotator, current], shown, api_name=name).then(
                refresh_attributes, None, attribute, api_visibility="private")

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
