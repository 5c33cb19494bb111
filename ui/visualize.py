"""Pictures of what the model did: TEM attention over the photo and the ARM decision.

Kept apart from the app (no gradio import) so the figures can be tested, and reused in notebooks
and reports. Everything here is pure: arrays and PIL images in, arrays, images and figures out.

Speed matters: the app draws one overlay per extracted value and the chart on every click and
every tau_R move. Overlays are numpy + PIL only (a 256-entry colour table, a PIL bilinear
stretch, one blend), about a millisecond each; the chart is a bare matplotlib Figure with a fixed
layout (the constrained layout engine measured as half of its drawing time).
"""
from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from PIL import Image

from dram.data.spans import Span

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


def display_photo(photo: Image.Image, height: int = DISPLAY_HEIGHT) -> np.ndarray:
    """The photo as (height, width, 3) uint8 RGB at display size: compute once, overlay many maps on it."""
    return np.asarray(photo.convert("RGB").resize(display_size(photo, height), Image.Resampling.BICUBIC))


@functools.lru_cache(maxsize=8)
def colour_table(cmap: str = "inferno") -> np.ndarray:
    """(256, 3) uint8 RGB lookup table of a matplotlib colormap: entry i is the colour of i / 255."""
    table = np.round(colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3] * 255.0).astype(np.uint8)
    table.flags.writeable = False  # shared by every caller through the cache
    return table


def overlay(photo: Image.Image | np.ndarray, heat: np.ndarray, alpha: float = 0.5, cmap: str = "inferno",
            height: int = DISPLAY_HEIGHT) -> Image.Image:
    """The photo, scaled to `height`, with a normalised [0, 1] heat map blended over it.

    `photo` may also be `display_photo(photo, height)`, so several maps over one photo scale it once.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError("alpha must be in [0, 1]")
    base = display_photo(photo, height) if isinstance(photo, Image.Image) else np.asarray(photo, dtype=np.uint8)
    if base.ndim != 3 or base.shape[2] != 3:
        raise ValueError(f"expected an RGB photo, got an array of shape {base.shape}")
    rows, cols = base.shape[:2]
    heat_px = np.clip(upsample(heat, (cols, rows)), 0.0, 1.0)
    colour = colour_table(cmap)[np.rint(heat_px * 255.0).astype(np.uint8)]
    blended = base.astype(np.float32)
    blended += np.float32(alpha) * (colour.astype(np.float32) - blended)
    return Image.fromarray(np.rint(blended).astype(np.uint8))


def encode_jpeg(picture: Image.Image, quality: int = 90) -> bytes:
    """JPEG bytes of a picture: a few kB and about a millisecond for a 240x320 overlay (PNG/WebP take 5-10x longer)."""
    with io.BytesIO() as out:
        picture.convert("RGB").save(out, format="JPEG", quality=quality)
        return out.getvalue()


def highlight_segments(text: str, spans: Sequence[Span]) -> list[tuple[str, str | None]]:
    """Cut text into (piece, label) runs for a highlighted-text widget.

    ARM decodes each attribute on its own, so two attributes may claim overlapping words; the
    overlap gets both names ("brand + colour") instead of one span silently hiding the other.
    """
    cuts = {0, len(text)}
    for span in spans:
        cuts.update((max(0, min(span.start, len(text))), max(0, min(span.end, len(text)))))
    bounds = sorted(cuts)
    segments: list[tuple[str, str | None]] = []
    for left, right in zip(bounds, bounds[1:]):
        names = sorted({s.attribute for s in spans if s.start <= left and right <= s.end})
        label = " + ".join(names) if names else None
        if segments and segments[-1][1] == label:
            segments[-1] = (segments[-1][0] + text[left:right], label)
        else:
            segments.append((text[left:right], label))
    return segments


# Fixed margins in inches around the axes (room for tick labels, the y label and the title). A fixed
# layout instead of layout="constrained": that engine measures every text twice per draw and was
# half of the chart's cost, for a layout that never changes.
CHART_MARGINS = {"left": 0.62, "right": 0.12, "top": 0.34, "bottom": 0.62}
CHART_HEIGHT = 3.2
CHART_DPI = 100
ARM_TITLE = "ARM: which attributes the listing has"


def chart_width(n_bars: int) -> float:
    return max(4.0, 0.9 * n_bars + 2.0)


def arm_chart(scores: dict[str, float], tau_r: float, selected: Iterable[str],
              title: str | None = ARM_TITLE) -> Figure:
    """Bar per attribute existence score R, the tau_R line, selected bars in their own colour.

    Built on a bare Figure (not pyplot) so a server making charts in threads keeps no global state.
    `title=None` leaves the title to the page around the chart (one text less to draw, ~10 ms).
    """
    chosen = set(selected)
    names = list(scores)
    values = [float(scores[n]) for n in names]
    width, height = chart_width(len(names)), CHART_HEIGHT
    figure = Figure(figsize=(width, height), dpi=CHART_DPI)
    m = CHART_MARGINS
    ax = figure.add_axes((m["left"] / width, m["bottom"] / height, 1.0 - (m["left"] + m["right"]) / width,
                          1.0 - (m["bottom"] + m["top"]) / height))
    colours = [SELECTED_COLOUR if n in chosen else UNSELECTED_COLOUR for n in names]
    positions = list(range(len(names)))
    ax.bar(positions, values, color=colours, edgecolor="#374151", linewidth=0.6)
    for x, value in zip(positions, values):
        ax.text(x, value + 0.012, f"{value:.2f}", ha="center", va="bottom", fontsize=8)
    ax.axhline(tau_r, color=THRESHOLD_COLOUR, linestyle="--", linewidth=1.5, label=f"tau_R = {tau_r:.2f}")
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_xticks(positions, names, rotation=20, ha="right", rotation_mode="anchor", fontsize=9)
    # Headroom above the bars for the legend, so it never covers a high bar: one row when it fits.
    columns = 3 if width >= 5.0 else 1
    ax.set_ylim(0.0, 1.3 if columns == 3 else 1.45)
    ax.set_yticks([0.0, 0.25, 0.5, 0.75, 1.0])
    ax.tick_params(axis="y", labelsize=8)
    ax.set_ylabel("existence score R", fontsize=9)
    if title:
        ax.set_title(title, fontsize=10)
    handles = [ax.get_lines()[0], Patch(color=SELECTED_COLOUR, label="selected (R > tau_R)"),
               Patch(color=UNSELECTED_COLOUR, label="not selected")]
    ax.legend(handles=handles, loc="upper right", ncols=columns, fontsize=7, framealpha=0.9)
    return figure
