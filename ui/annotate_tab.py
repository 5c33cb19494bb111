"""The Annotate tab: the review queue walked with the mouse and keyboard in a span editor, new
attributes, imports, Label Studio sync and model versions.

The editor (`ui.span_editor`, its script in `ui/static/`) sends each action here; the edit rules
are `review.edits`', the queue is `review.queue`. The listing under review is a
`review.edits.ReviewItem` in the user's gr.State. Problems on the page are toasts that leave the
panel as it was; the `/review_*` API endpoints (for scripts) raise errors instead.
"""
from __future__ import annotations

import html
import io
import os
from pathlib import Path
from typing import Any, Callable

import gradio as gr
from PIL import Image

from dram.data.photo_sources import PhotoZip
from dram.data.readers import read_listing_file
from review import edits, queue
from review.edits import ReviewError, ReviewItem
from review.suspicion import doubts_before_saving
from review.intake import IntakeRow, import_for_review
from review.versions import version_choices
from store import Store
from store.label_studio import export_to_label_studio, import_from_label_studio
from ui.audit import BATCH_CHUNK
from ui.colours import home_colours
from ui.serving import ModelHandle, StoreHandle, UserFacingError, user_errors, warn_errors
from ui.span_editor import editor_css, editor_script, editor_view
from ui.widgets import listing_file_inputs

EDITS = ("add", "relabel", "rebound", "remove", "undo")
VERDICTS = {"save": "save", "accept": "accept", "skip": "skip"}
SHOWN = 5  # current, editor, photo, progress, view


def _progress_markdown(store: Store) -> str:
    counts = store.progress()
    return f"**Saved:** {counts.saved} · **skipped:** {counts.skipped} · **waiting:** {counts.waiting}"


def _report_markdown(lines: list[str]) -> str:
    """A Label Studio report: the summary in bold, then one bullet per conflict, refusal or failure."""
    summary, *details = (html.escape(line, quote=False) for line in lines)
    return f"**{summary}**" + "".join(f"\n- {detail}" for detail in details)


def _intake_rows(listing_file: Path, photos_zip: Path | None) -> tuple[list[IntakeRow], list[str]]:
    """The usable listings of an uploaded file (photos by name in the zip) to queue, and a note for each row that
    is not usable."""
    with PhotoZip(photos_zip) as photos:
        read = read_listing_file(listing_file, photos=photos)
    notes = [f"row {row.number}" + (f" ({row.id})" if row.id else "") + f": {row.problem}; skipped"
             for row in read.rows if row.listing is None]
    return [IntakeRow(listing.id, listing.text, listing.image) for listing in read.listings], notes


class Annotation:
    """What the tab's events do, kept out of the layout so each stays short."""

    def __init__(self, handle: ModelHandle, stores: StoreHandle) -> None:
        self.handle, self.stores = handle, stores
        self.claims = queue.ClaimSettings.from_env()

    def known_attributes(self, store: Store) -> list[str]:
        """The model's attributes, then those annotators added (the store's attribute set)."""
        return [*self.handle.attributes, *(a for a in store.attributes() if a not in self.handle.attributes)]

    def show(self, store: Store, item: ReviewItem | None, *, new_listing: bool,
             confirm: dict[str, str] | None = None) -> tuple:
        """The tab's outputs for `item`: state, editor, then photo and counts (only when the listing
        changed: an edit leaves both as they are, which keeps an edit's round trip short), API view."""
        attributes = self.known_attributes(store)
        photo: Any = gr.skip()
        progress: Any = gr.skip()
        if new_listing:
            data = store.photo_bytes(item.photo_sha256) if item is not None and item.photo_sha256 else None
            photo = Image.open(io.BytesIO(data)) if data else None
            progress = _progress_markdown(store)
        api_view = {"listing": None} if item is None else {
            "listing": item.listing_id, "text": item.text, "spans": [s.to_dict() for s in item.spans],
            "predicted": [s.to_dict() for s in item.predicted], "attributes": attributes}
        return item, editor_view(item, attributes, home_colours(attributes), confirm), photo, progress, api_view

    def load_next(self, annotator: str | None = None) -> tuple:
        store = self.stores.get()
        return self.show(store, queue.next_item(store, self.handle.default_tau, annotator, self.claims), new_listing=True)

    def heartbeat(self, annotator: str, item: ReviewItem | None) -> None:
        """Renew the claim on the listing on screen while its annotator works; a closed page renews nothing."""
        queue.keep_claim(self.stores.get(), annotator, item, self.claims)

    def edit(self, item: ReviewItem | None, action: str, **where: Any) -> tuple:
        if item is None:
            raise UserFacingError("Load a listing from the review queue first.")
        store = self.stores.get()
        changed = edits.apply_edit(item, action, self.known_attributes(store), **where)
        return self.show(store, changed, new_listing=False)

    def verdict(self, annotator: str, item: ReviewItem | None, kind: str) -> tuple:
        """Save (corrected or accepted), accept the model's values as they were predicted, or skip."""
        if item is None:
            raise UserFacingError("Load a listing from the review queue first.")
        store = self.stores.get()
        if kind in ("accept", "skip"):  # a skip keeps nothing of what was changed (the page asked first)
            item = item.with_spans(item.predicted)
        status = queue.save_verdict(store, annotator, item, skip=kind == "skip",
                                    attributes=self.known_attributes(store))
        gr.Info(f"Listing {item.listing_id}: {status}.")
        return self.load_next(annotator)

    def on_editor(self, annotator: str, item: ReviewItem | None, event: gr.EventData) -> tuple:
        """One action sent by the editor's script: an edit, a verdict, or loading the next listing."""
        data = dict(getattr(event, "_data", None) or {})
        action = data.get("action")
        if action == "next":
            if item is not None:
                raise ReviewError("Save (S), accept (A) or skip (K) this listing to move on.")
            return self.load_next(annotator)
        if item is None:
            raise UserFacingError("Load a listing from the review queue first: type your name, then press N.")
        if data.get("listing") != item.listing_id or data.get("revision") != item.revision:
            raise ReviewError("The listing changed while that action was on its way; please do it again.")
        store = self.stores.get()
        if action == "stay":
            return self.show(store, item, new_listing=False)
        if action in ("accept", "skip") and item.unsaved and not data.get("force"):  # asks before dropping edits
            question = "Accept the model's values and drop them?" if action == "accept" else "Leave it and drop them?"
            return self.show(store, item, new_listing=False, confirm={
                "action": action, "text": f"This listing has unsaved changes. {question}", "yes": "Yes, drop my changes"})
        extractor = self.handle.extractor  # None while the model is being built: saving goes on unchecked
        if action == "save" and not data.get("force") and extractor and (doubts := doubts_before_saving(item, extractor)):
            return self.show(store, item, new_listing=False, confirm={  # a second look before it teaches
                "action": "save", "text": "Second look: " + "; ".join(doubts) + ". Save it as it is?",
                "yes": "Save as it is"})
        if action in VERDICTS:
            return self.verdict(annotator, item, VERDICTS[action])
        if action in EDITS:
            where = {k: data.get(k) for k in ("span", "first", "last", "attribute")}
            return self.edit(item, action, **where)
        raise ReviewError(f"Unknown action {action!r}.")

    def add_attribute(self, annotator: str, name: str, item: ReviewItem | None) -> tuple:
        store = self.stores.get()
        name = (name or "").strip()
        if not name:
            raise UserFacingError("Type the new attribute's name first, e.g. 'metal type'.")
        added = store.add_attribute(name, added_by=(annotator or "").strip() or None)
        gr.Info(f"Attribute {name!r} {'added' if added else 'was already there'}: type its name in the editor's "
                "filter to mark its values; `python -m training.finetune` teaches it to the model.")
        return (*self.show(store, item, new_listing=False), "")


def build_annotate_tab(handle: ModelHandle, stores: StoreHandle) -> Any:
    """The "Annotate" tab. Returns the "use this model" event so the caller can refresh what else shows the model."""
    actions = Annotation(handle, stores)
    with gr.Tab("Annotate"):
        gr.Markdown("Fix the model's values on the listings it is least sure about; saved corrections are what "
                    "`python -m training.finetune` learns from. Listings enter the queue when extracted in the "
                    "Extract tab or imported below.")
        with gr.Row():
            annotator = gr.Textbox(label="Your name (required to save)", elem_id="annotator", scale=2)
            progress = gr.Markdown(elem_id="review-progress")
        current = gr.State(None)
        with gr.Row():
            with gr.Column(scale=3):
                editor = gr.HTML(editor_view(None, [], {}), html_template="<div class='se-root'></div>",
                                 css_template=editor_css(), js_on_load=editor_script(), elem_id="span-editor")
            with gr.Column(scale=2):
                photo = gr.Image(label="Photo", type="pil", interactive=False, height=280, elem_id="review-photo")
                with gr.Row():
                    new_attribute = gr.Textbox(label="An attribute the model does not have yet", scale=3,
                                               placeholder="e.g. metal type", elem_id="review-new-attribute")
                    new_attribute_button = gr.Button("Add attribute", scale=1, elem_id="review-add-attribute")
        view = gr.JSON(visible=False)
        shown = [current, editor, photo, progress, view]
        editor.submit(warn_errors(SHOWN)(actions.on_editor), [annotator, current], shown, api_visibility="private")
        new_attribute_button.click(warn_errors(SHOWN + 1)(actions.add_attribute), [annotator, new_attribute, current],
                                   [*shown, new_attribute], api_visibility="private")
        gr.Timer(actions.claims.heartbeat_s).tick(warn_errors(0)(actions.heartbeat), [annotator, current], None,
                                                  api_visibility="private", concurrency_limit=None,
                                                  show_progress="hidden")
        _api_endpoints(actions, annotator, current, shown)
        _build_import(handle, stores, progress)
        _build_label_studio(actions, progress)
        return _build_versions(handle, stores)


def _api_endpoints(actions: Annotation, annotator: gr.Textbox, current: gr.State, shown: list) -> None:
    """The `/review_*` endpoints scripts call (gradio_client), on hidden controls: span index,
    attribute and character offsets in; the same outputs as the page, the API view last."""
    with gr.Row(visible=False):
        span, attribute = gr.Number(precision=0), gr.Textbox()
        start, end = gr.Number(precision=0), gr.Number(precision=0)
        new_attribute = gr.Textbox()
        buttons = {name: gr.Button(name) for name in
                   ("next", "add", "relabel", "rebound", "remove", "save", "skip", "add_attribute")}

    def edit(action: str) -> Callable:
        def run(item: ReviewItem | None, index: int | None, name: str | None, first: int | None,
                last: int | None) -> tuple:
            if item is None:
                raise UserFacingError("Load a listing from the review queue first.")
            store = actions.stores.get()
            known = actions.known_attributes(store)
            spans = {"add": lambda: edits.add_span(item.text, item.spans, first, last, name, known),
                     "relabel": lambda: edits.relabel_span(item.text, item.spans, index, name, known),
                     "rebound": lambda: edits.rebound_span(item.text, item.spans, index, first, last),
                     "remove": lambda: edits.remove_span(item.spans, index)}[action]()
            return actions.show(store, item.with_spans(spans), new_listing=False)

        return user_errors(run)

    buttons["next"].click(user_errors(actions.load_next), [annotator], shown, api_name="review_next")
    for action in ("add", "relabel", "rebound", "remove"):
        buttons[action].click(edit(action), [current, span, attribute, start, end], shown, api_name=f"review_{action}")
    for kind in ("save", "skip"):
        buttons[kind].click(user_errors(lambda who, item, kind=kind: actions.verdict(who, item, kind)),
                            [annotator, current], shown, api_name=f"review_{kind}")
    buttons["add_attribute"].click(user_errors(lambda who, name, item: actions.add_attribute(who, name, item)[-2:]),
                                   [annotator, new_attribute, current], [shown[-1], new_attribute],
                                   api_name="review_add_attribute")


def _build_import(handle: ModelHandle, stores: StoreHandle, progress: gr.Markdown) -> None:
    @user_errors  # an API endpoint too: scripts get the error
    def import_file(listing_file: str | None, photos_zip: str | None) -> tuple[str, str]:
        if not listing_file:
            raise UserFacingError("Upload a CSV or JSONL file of listings first.")
        store = stores.get()
        rows, notes = _intake_rows(Path(listing_file), Path(photos_zip) if photos_zip else None)
        report = import_for_review(store, handle.get(), rows, handle.version_in(store), handle.default_tau,
                                   batch_size=BATCH_CHUNK)
        details = "\n".join(f"- {html.escape(p, quote=False)}" for p in notes + report.problems)
        return f"**{report.summary()}**\n\n{details}", _progress_markdown(store)

    with gr.Accordion("Import listings for review", open=False):
        gr.Markdown("CSV or JSONL with `id`, `text` and optionally `image` (a file name in the photo zip); the "
                    "model runs on each and they join the queue. Rows that cannot be used are listed with the reason.")
        intake_file, intake_zip = listing_file_inputs("review-import-file", "review-import-zip")
        intake_button = gr.Button("Import listings for review", elem_id="review-import")
        intake_report = gr.Markdown()
        intake_button.click(import_file, [intake_file, intake_zip], [intake_report, progress],
                            api_name="review_import", concurrency_id="audit", concurrency_limit=1)


def _build_label_studio(actions: Annotation, progress: gr.Markdown) -> None:
    @warn_errors(1)
    def export_ls(url: str, key: str) -> str:
        store = actions.stores.get()
        report = export_to_label_studio(store, url or None, key or None, attributes=actions.known_attributes(store))
        return _report_markdown(report.lines())

    @warn_errors(2)
    def import_ls(url: str, key: str) -> tuple[str, str]:
        store = actions.stores.get()
        report = import_from_label_studio(store, url or None, key or None, attributes=actions.known_attributes(store))
        return _report_markdown(report.lines()), _progress_markdown(store)

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


def _build_versions(handle: ModelHandle, stores: StoreHandle) -> Any:
    @user_errors
    def list_versions() -> gr.Dropdown:
        store = stores.get()
        handle.version_in(store)
        active = store.active_model_version()
        return gr.Dropdown(choices=version_choices(store), value=active.id if active else None)

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

    with gr.Accordion("Model version", open=False):
        with gr.Row():
            versions = gr.Dropdown(label="Registered model versions", choices=[], elem_id="model-versions")
            refresh_button = gr.Button("Refresh list")
            use_button = gr.Button("Use this model", variant="primary", elem_id="use-model")
        version_note = gr.Markdown()
        refresh_button.click(list_versions, None, versions, api_name="model_versions")
        return use_button.click(use_version, versions, [version_note, versions], api_name="use_model")
