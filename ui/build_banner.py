"""The banner over the tabs while the model is being built (or missing), and the page's signal that it is served.

While the model is being built a timer asks the server every 2 seconds how far the build got; the
tick that finds the model served hides the banner, stops the timer and changes the returned
`served` state, whose `.change` event each tab uses to refresh what depends on the model (attribute
lists, colours, the Model tab), so an open page works without a reload. A page opened after the build
finishes catches up on its first load.
"""
from __future__ import annotations

import gradio as gr

from ui.serving import ModelHandle

TICK_SECONDS = 2.0


def banner_text(handle: ModelHandle) -> str:
    if handle.state == "building":
        return (f"### ⏳ The model is being built: {handle.build.describe() if handle.build else 'finishing'}\n\n"
                "This happens once, on a machine that has no model yet. The page works as soon as it is "
                "ready; there is no need to reload it.")
    if handle.state == "missing":
        return f"## ⚠️ The model is not available\n\n{handle.error}"
    return ""


def build_banner(demo: gr.Blocks, handle: ModelHandle) -> gr.State:
    """The banner and its timer, inside `demo`; returns the `served` state ("building" / "ready" / "missing")
    whose `.change` tells the tabs that the served model changed."""
    banner = gr.Markdown(banner_text(handle), visible=handle.state != "ready", elem_id="model-banner")
    served = gr.State(handle.state)
    timer = gr.Timer(TICK_SECONDS, active=handle.state == "building")

    def check() -> tuple[gr.Markdown, str, gr.Timer]:
        state = handle.state
        return (gr.Markdown(banner_text(handle), visible=state != "ready"), state,
                gr.Timer(active=state == "building"))

    # Its own concurrency slot, so a running extraction or audit never holds the banner up.
    gr.on([demo.load, timer.tick], check, None, [banner, served, timer], show_progress="hidden",
          concurrency_id="model-banner", concurrency_limit=None, api_visibility="private")
    return served
