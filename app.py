"""DRAM web app: extract product attribute values from a listing's text and photo, and audit batches.

Only wiring lives here: each tab is built by its module in `ui/` (Extract, Batch audit, Annotate,
Model) from library code: the model `dram.inference.Extractor`, the review loop `review`, the
store `store`. Importing this module loads nothing; `build_demo()` loads the model.

Run:  python app.py   (host/port from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, model from
DRAM_CHECKPOINT, default models/default; on a Hugging Face Space, or with DRAM_BUILD_MISSING=1,
a missing default model is built at start-up; DRAM_DEVICE and DRAM_PRECISION as the jobs' --device
and --precision).

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
"/review_next" (annotator name: the listing is claimed for them, so app processes sharing a store never
hand it to two annotators; empty: a look without a claim), "/review_add" | "/review_relabel" |
"/review_rebound" | "/review_remove" (span index, attribute, first word, last word), "/review_save" and
"/review_skip" (annotator name: saves, then claims their next listing), each returning the
listing under review last as {"listing", "text", "spans", "predicted", "attributes"}; "/review_import"
(listing file, photo zip); "/model_versions" and "/use_model" (version id: swaps the model, no restart).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from dram.nn.encoders import stay_offline

stay_offline()  # the entry point's choice, made before gradio imports huggingface_hub (which reads it once)

import gradio as gr  # noqa: E402

from dram.paths import DEFAULT_CHECKPOINT  # noqa: E402
from ui.annotate_tab import build_annotate_tab  # noqa: E402
from ui.audit_tab import build_audit_tab  # noqa: E402
from ui.extract_tab import build_extract_tab  # noqa: E402
from ui.model_tab import build_model_tab  # noqa: E402
from ui.serving import ModelHandle, StoreHandle  # noqa: E402
from ui.widgets import CSS, theme  # noqa: E402

log = logging.getLogger("dram.app")

# Two CPU cores: one request at a time uses both through torch's intra-op threads; more would
# only make every request slower. The queue holds the rest (up to QUEUE_SIZE, then "queue full").
# Batch audits get their own single slot, so a long audit delays single extractions but never
# blocks them; at most two jobs share the cores.
CONCURRENCY = 1
QUEUE_SIZE = 100
MAX_UPLOAD = "20mb"
PALETTE = ["#fde68a", "#bfdbfe", "#bbf7d0", "#fbcfe8", "#ddd6fe", "#fed7aa", "#a5f3fc", "#e5e7eb"]


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
    device, precision = os.environ.get("DRAM_DEVICE") or None, os.environ.get("DRAM_PRECISION") or "auto"
    handle = ModelHandle(path, device, precision).load()
    colours = {a: PALETTE[i % len(PALETTE)] for i, a in enumerate(handle.attributes)}
    stores = StoreHandle()
    with gr.Blocks(title="DRAM attribute extraction", delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# DRAM: product attribute values from listing text + photo")
        if handle.extractor is None:
            gr.Markdown(f"## ⚠️ The model is not available\n\n{handle.error}", elem_id="model-missing")
        build_extract_tab(handle, stores, colours)
        build_audit_tab(handle)
        model_switched = build_annotate_tab(handle, stores, colours)
        build_model_tab(handle, stores, model_switched)
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    return demo


if __name__ == "__main__":
    # Logging before build_demo, so a start-up build on a Space says what it does.
    logging.basicConfig(level=os.environ.get("LOGLEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    build_demo().launch(max_file_size=MAX_UPLOAD, theme=theme(), css=CSS)
