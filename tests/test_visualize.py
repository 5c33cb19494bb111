"""ui.visualize: heat maps line up with the photo and keep their meaning; the ARM chart shows the decision."""
from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb, to_rgba
from PIL import Image

from dram.data.spans import Span
from ui.visualize import (
    SELECTED_COLOUR,
    THRESHOLD_COLOUR,
    UNSELECTED_COLOUR,
    arm_chart,
    colour_table,
    display_photo,
    encode_jpeg,
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


def test_colour_table_is_the_matplotlib_colormap_in_bytes():
    table = colour_table("inferno")
    assert table.shape == (256, 3) and table.dtype == np.uint8
    assert table[0].tolist() == [0, 0, 4]  # inferno(0): near-black
    assert table[255].tolist() == [252, 255, 164]  # inferno(1): pale yellow
    reference = np.round(colormaps["inferno"](128 / 255)[:3] * np.array(255.0))
    assert table[128].tolist() == reference.tolist()
    assert colour_table("viridis")[0].tolist() == [68, 1, 84]
    with pytest.raises(ValueError):
        table[0, 0] = 1  # shared through the cache: read-only


def test_overlay_blends_with_alpha_exactly():
    photo = Image.new("RGB", (60, 80), (128, 64, 200))
    hot = overlay(photo, np.ones((7, 7)), alpha=0.25, height=80)
    expected = np.rint(0.75 * np.array([128, 64, 200]) + 0.25 * np.array([252, 255, 164]))
    assert np.all(np.asarray(hot) == expected.astype(np.uint8))
    assert np.all(np.asarray(overlay(photo, np.ones((7, 7)), alpha=1.0, height=80)) == [252, 255, 164])
    assert np.all(np.asarray(overlay(photo, np.zeros((7, 7)), alpha=1.0, height=80)) == [0, 0, 4])


def test_overlay_matches_the_matplotlib_colormap_blend():
    """The lookup table stands in for colormaps[cmap](heat): within rounding of the float reference."""
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (80, 60, 3), dtype=np.uint8))
    heat = normalise_attention(rng.random((7, 7))).normalised
    out = np.asarray(overlay(photo, heat, alpha=0.5, height=160), dtype=np.float64)
    size = (120, 160)
    base = np.asarray(photo.resize(size, Image.Resampling.BICUBIC), dtype=np.float64)
    colour = colormaps["inferno"](np.clip(upsample(heat, size), 0, 1))[..., :3] * 255.0
    reference = 0.5 * base + 0.5 * colour
    assert out.shape == reference.shape
    assert np.abs(out - reference).max() <= 3.0  # half of one colour-table step, plus rounding


def test_overlay_on_a_prescaled_photo_is_the_same_picture():
    photo = Image.new("RGB", (60, 80), (10, 200, 90))
    heat = np.eye(7)
    scaled = display_photo(photo, 320)
    assert scaled.shape == (320, 240, 3) and scaled.dtype == np.uint8
    assert np.array_equal(np.asarray(overlay(scaled, heat)), np.asarray(overlay(photo, heat)))
    with pytest.raises(ValueError):
        overlay(np.zeros((320, 240)), heat)  # not RGB


def test_encode_jpeg_gives_a_small_faithful_jpeg():
    picture = overlay(Image.new("RGB", (60, 80), (128, 128, 128)), np.eye(7))
    data = encode_jpeg(picture)
    assert data[:3] == b"\xff\xd8\xff"  # JPEG start-of-image marker
    assert len(data) < 60_000
    back = Image.open(io.BytesIO(data))
    assert back.format == "JPEG" and back.size == picture.size
    assert np.abs(np.asarray(back, dtype=float) - np.asarray(picture, dtype=float)).mean() < 3.0


def test_highlight_segments_cover_the_text_and_name_overlaps():
    text = "Roadster Men Navy Blue Shirt"
    segments = highlight_segments(text, [Span(0, 8, "brand"), Span(13, 22, "colour"), Span(18, 28, "article_type")])
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


def _render(figure) -> np.ndarray:
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3]


def test_arm_chart_draws_the_threshold_where_tau_is():
    """Rendered, the dashed red line sits at tau_R on the score axis; the legend stays above the bars."""
    scores = {"brand": 0.93, "gender": 0.97, "article_type": 0.99, "colour": 0.88, "pattern": 0.31}
    for tau in (0.25, 0.5, 0.8):
        figure = arm_chart(scores, tau, [n for n, s in scores.items() if s > tau])
        pixels = _render(figure).astype(int)
        red = np.round(np.array(to_rgb(THRESHOLD_COLOUR)) * 255).astype(int)
        is_red = np.abs(pixels - red).sum(axis=2) < 40
        ax = figure.axes[0]
        height = pixels.shape[0]
        expected_row = height - ax.transData.transform((0, tau))[1]  # display y counts from the bottom
        rows = np.flatnonzero(is_red.sum(axis=1) > 0.3 * pixels.shape[1] * ax.get_position().width)
        assert rows.size, f"no threshold line drawn for tau={tau}"
        assert abs(rows.mean() - expected_row) <= 2.0
        ymin, ymax = ax.get_ylim()
        assert ymin == 0.0 and 1.0 < ymax
        # the legend box starts above the highest bar's value label (no bar or label under it)
        legend_bottom = ax.get_legend().get_window_extent().y0
        assert legend_bottom > ax.transData.transform((0, 1.0))[1]
        assert [t.get_text() for t in ax.get_xticklabels()] == list(scores)


def test_arm_chart_png_has_the_figure_size():
    figure = arm_chart({"brand": 0.9, "gender": 0.1, "colour": 0.6}, 0.5, ["brand", "colour"])
    with io.BytesIO() as out:
        figure.savefig(out, format="png")
        picture = Image.open(io.BytesIO(out.getvalue()))
    width, height = figure.get_size_inches() * figure.dpi
    assert picture.size == (round(width), round(height))
