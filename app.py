"""DRAM web app: extract product attribute values from a listing's text and photo, and audit batches.

Only wiring lives here: each tab is built by its module in `ui/` (Extract, Batch audit, Annotate,
Model) from library code: the model `dram.inference.Extractor`, the review loop `review`, the
store `store`. Importing this module loads nothing; `build_demo()` loads the model.

Run:  python app.py   (host/port from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, model from
DRAM_CHECKPOINT, default models/default, or /data/models/default on a Space with persistent storage;
on a Hugging Face Space, or with DRAM_BUILD_MISSING=1, a missing default model is built in the
background while the page already answers and shows the build's progress; DRAM_DEVICE and
DRAM_PRECISION as the jobs' --device and --precision).

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
from dram.nn.precision import RunSettings

stay_offline()  # the entry point's choice, made before gradio imports huggingface_hub (which reads it once)

import gradio as gr  # noqa: E402

from ui.annotate_tab import build_annotate_tab  # noqa: E402
from ui.audit_tab import build_audit_tab  # noqa: E402
from ui.build_banner import build_banner  # noqa: E402
from ui.extract_tab import build_extract_tab  # noqa: E402
from ui.model_build import build_default_model, checkpoint_path, should_build  # noqa: E402
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


def serve_model(path: Path) -> ModelHandle:
    """The model at `path`, loaded now, or built in the background first where `should_build` says so."""
    device, precision = os.environ.get("DRAM_DEVICE") or None, os.environ.get("DRAM_PRECISION") or RunSettings.precision
    handle = ModelHandle(path, device, precision)
    return handle.build_then_load(build_default_model) if should_build(path) else handle.load()


def build_demo(checkpoint: Path | str | None = None) -> gr.Blocks:
    """The whole app around the model at `checkpoint` (default: `checkpoint_path()`)."""
    return build_page(serve_model(Path(checkpoint) if checkpoint else checkpoint_path()))


def build_page(handle: ModelHandle) -> gr.Blocks:
    """The four tabs around one served model (ready, or still being built) and one store."""
    stores = StoreHandle()
    with gr.Blocks(title="DRAM attribute extraction", delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# DRAM: product attribute values from listing text + photo")
        served = build_banner(demo, handle)
        build_extract_tab(handle, stores, served)
        build_audit_tab(handle)
        model_switched = build_annotate_tab(handle, stores)
        build_model_tab(handle, stores, model_switched, served)
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    return demo


if __name__ == "__main__":
    # Logging before build_demo, so a build on a Space says what it does.
    logging.basicConfig(level=os.environ.get("LOGLEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    build_demo().launch(max_file_size=MAX_UPLOAD, theme=theme(), css=CSS)
