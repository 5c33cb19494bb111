"""dram.visualize: heat maps line up with the photo and keep their meaning; the ARM chart shows the decision."""
from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from PIL import Image

from dram.visualize import (
    SELECTED_COLOUR,
    THRESHOLD_COLOUR,
    UNSELECTED_COLOUR,
    arm_chart,
    highlight_segments,
    mean_attention,
    normalise_attention,
    overlay,
    upsample,
)


def test_normalise_scales_to_unit_range_and_reports_peak():
    grid = np.full((7, 7), 1.0 / 49)
    grid[2, 3] += 0.02
    grid /= grid.sum()
    heat = normalise_attention(grid)
    assert heat.normalised.shape == (7, 7)
    assert heat.normalised.min() == pytest.approx(0.0)
    assert heat.normalised.max() == pytest.approx(1.0)
    assert np.unravel_index(heat.normalised.argmax(), (7, 7)) == (2, 3)
    assert heat.peak_ratio == pytest.approx(grid.max() * 49)


def test_flat_attention_stays_flat_instead_of_amplifying_noise():
    heat = normalise_attention(np.full((7, 7), 1.0 / 49))
    assert np.all(heat.normalised == 0.0)
    assert heat.peak_ratio == pytest.approx(1.0)


def test_normalise_rejects_non_grid():
    with pytest.raises(ValueError):
        normalise_attention(np.zeros(49))


def test_mean_attention_averages_the_value_words():
    attention = np.zeros((3, 7, 7))
    attention[0, 0, 0] = 1.0
    attention[2, 6, 6] = 1.0
    mean = mean_attention(attention, [0, 2])
    assert mean[0, 0] == pytest.approx(0.5) and mean[6, 6] == pytest.approx(0.5)
    assert mean.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        mean_attention(attention, [])


def test_upsample_keeps_corners_where_they_were():
    grid = np.zeros((7, 7))
    grid[0, 0] = 1.0  # top-left region
    big = upsample(grid, (60, 80))  # (width, height) of a Myntra photo
    assert big.shape == (80, 60)
    assert big[0, 0] == pytest.approx(1.0, abs=0.05)
    assert big[-1, -1] == pytest.approx(0.0, abs=1e-6)
    top_left = big[: 80 // 7, : 60 // 7].mean()
    assert top_left > big[40:, 30:].mean()


def test_overlay_has_display_shape_and_heat_where_attention_is():
    photo = Image.new("RGB", (60, 80), (128, 128, 128))
    heat = np.zeros((7, 7))
    heat[6, 6] = 1.0  # bottom-right region
    out = overlay(photo, heat, alpha=0.6, height=320)
    assert out.mode == "RGB" and out.size == (240, 320)
    pixels = np.asarray(out, dtype=float)
    # inferno: 1.0 is pale yellow, 0.0 near-black; the hot corner is brighter than the cold one
    assert pixels[-5:, -5:].mean() > pixels[:5, :5].mean() + 60
    cold = overlay(photo, np.zeros((7, 7)), alpha=0.0)
    assert np.allclose(np.asarray(cold, dtype=float), 128, atol=1)  # alpha 0 leaves the photo alone
    with pytest.raises(ValueError):
        overlay(photo, heat, alpha=1.5)


def test_highlight_segments_cover_the_text_and_name_overlaps():
    text = "Roadster Men Navy Blue Shirt"
    segments = highlight_segments(text, [(0, 8, "brand"), (13, 22, "colour"), (18, 28, "article_type")])
    assert "".join(piece for piece, _ in segments) == text
    assert segments[0] == ("Roadster", "brand")
    assert ("Blue", "article_type + colour") in segments
    assert segments[-1] == (" Shirt", "article_type")
    assert highlight_segments(text, []) == [(text, None)]


def _bar_colours(figure) -> list[tuple]:
    ax = figure.axes[0]
    return [patch.get_facecolor() for patch in ax.patches]


def test_arm_chart_draws_threshold_and_colours_selected_bars():
    scores = {"brand": 0.9, "gender": 0.2, "colour": 0.6, "article_type": 0.4}
    figure = arm_chart(scores, 0.5, ["brand", "colour"])
    ax = figure.axes[0]
    lines = [line for line in ax.get_lines() if np.allclose(line.get_ydata(), 0.5)]
    assert len(lines) == 1 and to_rgba(lines[0].get_color()) == to_rgba(THRESHOLD_COLOUR)
    colours = _bar_colours(figure)
    assert len(colours) == 4
    expected = [SELECTED_COLOUR, UNSELECTED_COLOUR, SELECTED_COLOUR, UNSELECTED_COLOUR]
    assert [to_rgba(c) for c in colours] == [to_rgba(e) for e in expected]
    heights = [patch.get_height() for patch in ax.patches]
    assert heights == pytest.approx(list(scores.values()))
    assert [t.get_text() for t in ax.get_xticklabels()] == list(scores)


def test_arm_chart_threshold_moves_with_tau():
    figure = arm_chart({"brand": 0.9}, 0.95, [])
    ax = figure.axes[0]
    assert any(np.allclose(line.get_ydata(), 0.95) for line in ax.get_lines())
    assert to_rgba(_bar_colours(figure)[0]) == to_rgba(UNSELECTED_COLOUR)
