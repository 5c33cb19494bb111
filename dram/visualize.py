"""Pictures of what the model did: TEM attention over the photo and the ARM decision.

Kept apart from the app (no gradio import) so the figures can be tested, and reused in notebooks
and reports. Everything here is pure: arrays and PIL images in, arrays, images and figures out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from PIL import Image

SELECTED_COLOUR = "#2563eb"
UNSELECTED_COLOUR = "#b0b7c3"
THRESHOLD_COLOUR = "#dc2626"
DISPLAY_HEIGHT = 320  # Myntra photos are 60x80: upscaled so a 7x7 grid cell is visible


@dataclass(frozen=True)
class Heat:
    """An attention map ready to draw, and how peaked it really was before normalising."""

    normalised: np.ndarray  # (g, g) in [0, 1]
    peak_ratio: float  # max attention / uniform attention (1.0 = the map is flat)


def normalise_attention(grid: np.ndarray) -> Heat:
    """Min-max scale to [0, 1] for display; a flat map stays all zeros instead of turning into noise.

    Min-max scaling makes any map look confident, so `peak_ratio` is returned alongside to say
    how far the strongest region really is above uniform attention (1/regions).
    """
    values = np.asarray(grid, dtype=np.float64)
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"expected a 2-D attention grid, got shape {values.shape}")
    low, high = float(values.min()), float(values.max())
    total = float(values.sum())
    peak = high / (total / values.size) if total > 0 else 1.0
    span = high - low
    if span <= 1e-9 * max(abs(high), 1.0):
        return Heat(np.zeros_like(values), peak)
    return Heat((values - low) / span, peak)


def mean_attention(attention: np.ndarray, words: Iterable[int]) -> np.ndarray:
    """Average the (n_words, g, g) attention rows of some words, e.g. the words of one value."""
    index = list(words)
    if not index:
        raise ValueError("no words to average")
    return np.asarray(attention, dtype=np.float64)[index].mean(axis=0)


def upsample(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D map to (width, height) pixels.

    The encoder squashes the whole photo to a square, so grid cell (r, c) covers the same
    fraction of the photo's height and width: a plain stretch lines the map up with the photo.
    """
    width, height = size
    picture = Image.fromarray(np.asarray(grid, dtype=np.float32))
    return np.asarray(picture.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float64)


def display_size(photo: Image.Image, height: int = DISPLAY_HEIGHT) -> tuple[int, int]:
    width = max(1, round(photo.width * height / max(photo.height, 1)))
    return width, height


def overlay(photo: Image.Image, heat: np.ndarray, alpha: float = 0.5, cmap: str = "inferno",
            height: int = DISPLAY_HEIGHT) -> Image.Image:
    """The photo, scaled to `height`, with a normalised [0, 1] heat map blended over it."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError("alpha must be in [0, 1]")
    size = display_size(photo, height)
    base = np.asarray(photo.convert("RGB").resize(size, Image.Resampling.BICUBIC), dtype=np.float64)
    heat_px = np.clip(upsample(heat, size), 0.0, 1.0)
    colour = colormaps[cmap](heat_px)[..., :3] * 255.0
    blended = (1.0 - alpha) * base + alpha * colour
    return Image.fromarray(np.clip(blended, 0, 255).round().astype(np.uint8))


def highlight_segments(text: str, spans: Sequence[tuple[int, int, str]]) -> list[tuple[str, str | None]]:
    """Cut text into (piece, label) runs for a highlighted-text widget.

    ARM decodes each attribute on its own, so two attributes may claim overlapping words; the
    overlap gets both names ("brand + colour") instead of one span silently hiding the other.
    """
    cuts = {0, len(text)}
    for start, end, _ in spans:
        cuts.update((max(0, min(start, len(text))), max(0, min(end, len(text)))))
    bounds = sorted(cuts)
    segments: list[tuple[str, str | None]] = []
    for left, right in zip(bounds, bounds[1:]):
        names = sorted({a for s, e, a in spans if s <= left and right <= e})
        label = " + ".join(names) if names else None
        if segments and segments[-1][1] == label:
            segments[-1] = (segments[-1][0] + text[left:right], label)
        else:
            segments.append((text[left:right], label))
    return segments


def arm_chart(scores: dict[str, float], tau_r: float, selected: Iterable[str]) -> Figure:
    """Bar per attribute existence score R, the tau_R line, selected bars in their own colour.

    Built on a bare Figure (not pyplot) so a server making charts in threads keeps no global state.
    """
    chosen = set(selected)
    names = list(scores)
    values = [scores[n] for n in names]
    figure = Figure(figsize=(max(4.0, 0.9 * len(names) + 2.0), 3.2), layout="constrained")
    ax = figure.add_subplot()
    colours = [SELECTED_COLOUR if n in chosen else UNSELECTED_COLOUR for n in names]
    bars = ax.bar(names, values, color=colours, edgecolor="#374151", linewidth=0.6)
    for bar, value in zip(bars, values):
        ax.annotate(f"{value:.2f}", (bar.get_x() + bar.get_width() / 2, value), xytext=(0, 2),
                    textcoords="offset points", ha="center", va="bottom", fontsize=8)
    ax.axhline(tau_r, color=THRESHOLD_COLOUR, linestyle="--", linewidth=1.5, label=f"tau_R = {tau_r:.2f}")
    ax.set_ylim(0.0, 1.08)
    ax.set_ylabel("existence score R")
    ax.set_title("ARM: which attributes the listing has", fontsize=10)
    ax.tick_params(axis="x", labelrotation=20)
    handles = [ax.get_lines()[0], Patch(color=SELECTED_COLOUR, label="selected (R > tau_R)"),
               Patch(color=UNSELECTED_COLOUR, label="not selected")]
    ax.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.9)
    return figure
