"""The Model tab: what is being served (checkpoint, attributes, encoders, device), its metrics as tables,
every registered version with its figures as a chart, one point per version, and how far annotators agree."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from review.versions import metrics_over_time, version_table
from store.agreement import AgreementRow
from ui.metrics_tables import attribute_table, overall_table, per_attribute_split
from ui.serving import ModelHandle, StoreHandle, user_errors


def _training_line(metrics: dict) -> str:
    """'3000 listings, best epoch 4 of 6 planned, 6.3 minutes' from a trained model's metrics.json, or ''."""
    train = metrics.get("train", {})
    if "best_epoch" not in train:
        return ""
    minutes = metrics.get("build_minutes") or train.get("train_minutes")
    took = f", {minutes:.1f} minutes" if isinstance(minutes, (int, float)) else ""
    return (f"- **Trained on:** {train.get('listings', '?')} listings of `{metrics.get('data', 'its data file')}`, "
            f"best epoch {train['best_epoch']} of {train.get('planned_epochs', '?')} planned{took}")


def model_markdown(handle: ModelHandle) -> str:
    if handle.extractor is None:
        if handle.state == "building":
            return "### ⏳ The model is being built\n\nIts settings and metrics appear here once it is ready."
        return f"### ⚠️ No model loaded\n\n{handle.error}"
    ex = handle.extractor
    cfg = ex.config
    device = "GPU (CUDA)" if ex.device.type == "cuda" else ex.device.type.upper()
    lines = [
        f"- **Checkpoint:** `{handle.path}`",
        f"- **Attributes:** {', '.join(cfg.attributes)}",
        f"- **Variant:** {cfg.variant} (image: {cfg.use_image}, TEM: {cfg.use_tem}, ARM: {cfg.use_arm}, "
        f"ARM policy: {cfg.arm_policy}); **tau_R** {cfg.tau_r}",
        f"- **Encoders:** text `{cfg.text_encoder}`, image `{cfg.image_encoder if cfg.use_image else 'none'}` "
        f"({cfg.image_size}px, {cfg.image_regions} regions); reads the whole text in windows of "
        f"{cfg.max_tokens} tokens",
        f"- **Runs on:** {device}",
        _training_line(ex.metrics),
        "- **Warns of listings unlike its training data:** " + (f"yes ({ex.model.familiarity.learned_from})"
            if ex.model.familiarity else "no (no familiarity reference: `python -m training.familiarity` adds one)"),
    ]
    if not ex.metrics:
        lines.append("- **Metrics:** none in metrics.json (an untrained or unevaluated checkpoint)")
    return "\n".join(line for line in lines if line)


def attribute_label(metrics: dict) -> str:
    split = per_attribute_split(metrics)
    return f"Per attribute, on the {split} split (%)" if split else "Per attribute (%)"


def served_metrics(handle: ModelHandle) -> dict:
    return handle.extractor.metrics if handle.extractor else {}


def history_plot(rows: list[dict]) -> gr.ScatterPlot:
    """Each version's figures, one point per version and figure; versions on x in the order registered."""
    frame = pd.DataFrame(rows, columns=["version", "figure", "TAG-F1"])
    return gr.ScatterPlot(frame, sort=list(dict.fromkeys(frame["version"])))


AGREEMENT_COLUMNS = ["attribute", "listings", "spans", "agreed spans", "F1"]


def agreement_table(rows: list[AgreementRow]) -> pd.DataFrame:
    """`Store.agreement()` as a table, F1 in %."""
    return pd.DataFrame([[r.attribute, r.listings, r.spans, r.agreed_spans, None if r.f1 is None else round(100 * r.f1, 1)]
                         for r in rows], columns=AGREEMENT_COLUMNS)


def build_model_tab(handle: ModelHandle, stores: StoreHandle, model_switched: gr.events.Dependency,
                    served: gr.State) -> None:
    """The "Model" tab, refreshed whenever the Annotate tab switches the served model (`model_switched`)
    or the page learns that the model it waited for is served (`served` changes)."""
    with gr.Tab("Model"):
        model_info = gr.Markdown(model_markdown(handle), elem_id="model-info")
        metrics = served_metrics(handle)
        overall = gr.Dataframe(overall_table(metrics), label="Metrics of the served model, per split (%)",
                               interactive=False, elem_id="model-metrics")
        per_attribute = gr.Dataframe(attribute_table(metrics), label=attribute_label(metrics), interactive=False,
                                     elem_id="model-attribute-metrics")
        gr.Markdown("**Registered versions.** A fine-tune goes live only if it is not worse on the held-out "
                    "corrections and at most 0.3 TAG-F1 points worse on the replay test (old → new below); "
                    "a version not promoted can still be served from the Annotate tab's Model version list.")
        versions_refresh = gr.Button("Show registered versions and agreement", size="sm")
        versions_table = gr.Markdown(elem_id="model-versions-table")
        history = gr.ScatterPlot(x="version", y="TAG-F1", color="figure", title="TAG-F1 (%) of each version",
                                 x_title="version", y_axis_format=".1f", tooltip=["version", "figure", "TAG-F1"],
                                 height=260, elem_id="model-history")
        agreement = gr.Dataframe(agreement_table([]), interactive=False, elem_id="model-agreement",
                                 label="Agreement between annotators on the listings two of them reviewed: span F1 (%) "
                                       "between their verdicts, per attribute")

        @user_errors
        def show_versions() -> tuple[str, gr.ScatterPlot, pd.DataFrame]:
            store = stores.get()
            return version_table(store), history_plot(metrics_over_time(store)), agreement_table(store.agreement())

        def show_model() -> tuple[str, pd.DataFrame, gr.Dataframe]:
            metrics = served_metrics(handle)
            return (model_markdown(handle), overall_table(metrics),
                    gr.Dataframe(attribute_table(metrics), label=attribute_label(metrics)))

        versions_refresh.click(show_versions, None, [versions_table, history, agreement], api_visibility="private")
    for event in (model_switched.then, served.change):
        event(show_model, None, [model_info, overall, per_attribute], api_visibility="private").then(
            show_versions, None, [versions_table, history, agreement], api_visibility="private")
