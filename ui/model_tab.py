"""The Model tab: what is being served (checkpoint, attributes, encoders, device, metrics) and every version."""
from __future__ import annotations

import json

import gradio as gr
import pandas as pd

from review.versions import metrics_over_time, version_table
from ui.serving import ModelHandle, StoreHandle, user_errors


def model_markdown(handle: ModelHandle) -> str:
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
        "- **Warns of listings unlike its training data:** " + (f"yes ({ex.model.familiarity.learned_from})"
            if ex.model.familiarity else "no (no familiarity reference: `python -m training.familiarity` adds one)"),
        "", "**Metrics** (metrics.json)", "", f"```json\n{metrics}\n```",
    ])


def build_model_tab(handle: ModelHandle, stores: StoreHandle, model_switched: gr.events.Dependency) -> None:
    """The "Model" tab, refreshed whenever the Annotate tab switches the served model (`model_switched`)."""
    with gr.Tab("Model"):
        model_info = gr.Markdown(model_markdown(handle), elem_id="model-info")
        gr.Markdown("**Registered versions.** A fine-tune goes live only if it is not worse on the held-out "
                    "corrections and at most 0.3 TAG-F1 points worse on the replay test (old → new below); "
                    "a version not promoted can still be served from the Annotate tab's Model version list.")
        versions_table = gr.Markdown(elem_id="model-versions-table")
        history = gr.LinePlot(x="created", y="TAG-F1", color="figure", title="Each version's figures over time",
                              tooltip=["version", "figure", "TAG-F1"], elem_id="model-history")
        versions_refresh = gr.Button("Show registered versions")

        @user_errors
        def show_versions() -> tuple[str, pd.DataFrame]:
            store = stores.get()
            rows = metrics_over_time(store)
            return version_table(store), pd.DataFrame(rows, columns=["version", "created", "figure", "TAG-F1"])

        versions_refresh.click(show_versions, None, [versions_table, history], api_visibility="private")
    model_switched.then(lambda: model_markdown(handle), None, model_info, api_visibility="private").then(
        show_versions, None, [versions_table, history], api_visibility="private")
