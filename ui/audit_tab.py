"""The Batch audit tab: extract a whole file of listings, download the values, see what is missing ("/audit")."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from dram.paths import EXAMPLES
from ui.audit import USUAL_SHARE, run_audit
from ui.serving import ModelHandle, UserFacingError, user_errors
from ui.widgets import listing_file_inputs

RULE = (f"**How “usually has” works.** A listing's category is its `category` column when the file has one, "
         f"otherwise the article type the model extracts from it (lower-cased). Within this batch, an attribute is "
         f"one a category *usually has* when a value for it was extracted from at least {USUAL_SHARE:.0%} of that "
         f"category's listings; every listing of the category without a value for it is listed below. Small "
         f"categories rarely reach the bar (2 of 3 is 67%), so the audit speaks only where the batch agrees.")


def build_audit_tab(handle: ModelHandle) -> None:
    """The "Batch audit" tab and its "/audit" endpoint, inside the caller's gr.Blocks."""

    @user_errors
    def audit(listing_file: str | None, photos_zip: str | None, tau: float,
              progress=gr.Progress()) -> tuple[str, str, list[list[Any]], list[list[Any]]]:
        extractor = handle.get()
        if not listing_file:
            raise UserFacingError("Upload a CSV or JSONL file of listings first.")
        result = run_audit(extractor, Path(listing_file), Path(photos_zip) if photos_zip else None, tau,
                           progress=lambda share: progress(share, desc="Extracting"))
        return str(result.csv_path), result.summary_markdown(), result.missing, result.problems

    with gr.Tab("Batch audit"):
        gr.Markdown("Upload listings as CSV (columns `id`, `text`, optional `image`, `category`) or JSONL "
                    "(same keys), and optionally a zip of the photos named in `image`. Rows that cannot be "
                    "used are listed under *Problems*; the rest are still processed.")
        listing_file, photos_zip = listing_file_inputs("batch-file", "batch-zip")
        batch_tau_r = gr.Slider(0.0, 1.0, value=handle.default_tau, step=0.01, label="tau_R")
        audit_button = gr.Button("Run audit", variant="primary", elem_id="audit-button")
        if (EXAMPLES / "batch.csv").exists():
            gr.Examples([[str(EXAMPLES / "batch.csv"), str(EXAMPLES / "batch_photos.zip")]],
                        inputs=[listing_file, photos_zip], label="Sample batch (24 real Myntra listings)")
        summary = gr.Markdown(elem_id="audit-summary")
        attributes_csv = gr.File(label="Extracted attributes (CSV: id, attribute, value, confidence, unlike_training)")
        gr.Markdown(RULE)
        missing = gr.Dataframe(headers=["id", "category", "missing", "listings in category", "text"],
                               label="Listings missing attributes their category usually has", interactive=False)
        problems = gr.Dataframe(headers=["row", "id", "problem", "action"], label="Problems", interactive=False)
        audit_button.click(audit, [listing_file, photos_zip, batch_tau_r], [attributes_csv, summary, missing, problems],
                           api_name="audit", concurrency_id="audit", concurrency_limit=1)
