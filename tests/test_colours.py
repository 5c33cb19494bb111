"""Highlight colours: CIEDE2000 against published reference pairs, WCAG contrast, and the per-listing rule."""
from __future__ import annotations

import itertools
import random

import pytest

from ui.colours import (
    MIN_CONTRAST,
    MIN_DELTA_E,
    TEXT_COLOUR,
    contrast,
    delta_e_2000,
    home_colours,
    listing_colours,
    palette,
    to_lab,
)


@pytest.mark.parametrize("first, second, expected", [  # Sharma, Wu and Dalal (2005), Table 1
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, -1.3802, -84.2814), (50.0, 0.0, -82.7485), 1.0000),
    ((50.0, 2.5, 0.0), (50.0, 0.0, -2.5), 4.3065),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((22.7233, 20.0904, -46.6940), (23.0331, 14.9730, -42.5619), 2.0373),
])
def test_delta_e_2000_matches_the_reference_pairs(first, second, expected: float) -> None:
    assert delta_e_2000(first, second) == pytest.approx(expected, abs=1e-4)


def test_contrast_and_lab_of_known_colours() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    assert to_lab("#ffffff") == pytest.approx((100.0, 0.0, 0.0), abs=0.01)


def test_every_palette_colour_keeps_dark_text_readable() -> None:
    assert len(palette()) > 50
    assert all(contrast(c, TEXT_COLOUR) >= MIN_CONTRAST for c in palette())


def test_attributes_in_one_listing_differ_by_delta_e_20_even_with_51_attributes() -> None:
    attributes = [f"attribute {i}" for i in range(51)]  # WDC-PAVE's schema size
    home = home_colours(attributes)
    rng = random.Random(13)
    for size in range(2, 11):
        for _ in range(40):
            present = rng.sample(attributes, size)
            colours = listing_colours(present, home)
            assert set(colours) == set(present)
            for a, b in itertools.combinations(present, 2):
                assert delta_e_2000(to_lab(colours[a]), to_lab(colours[b])) >= MIN_DELTA_E, (size, a, b)


def test_an_attribute_keeps_its_home_colour_when_nothing_clashes() -> None:
    home = home_colours(["brand", "colour", "gender"])
    assert listing_colours(["gender", "brand"], home) == {"gender": home["gender"], "brand": home["brand"]}
