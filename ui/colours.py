"""Highlight colours an annotator can tell apart: within one listing, every two attributes' colours
differ by CIEDE2000 >= 20, and dark text stays readable on each (WCAG contrast >= 4.5:1).

A fixed list of light colours is put in farthest-first order once, so an attribute keeps its colour
from listing to listing; only when two attributes present in the same listing come out too alike
does the later one take the free colour farthest from those already on screen.
"""
from __future__ import annotations

import colorsys
import functools
import math
from typing import Iterable, Mapping, Sequence

TEXT_COLOUR = "#111827"
MIN_DELTA_E = 20.0
MIN_CONTRAST = 4.5

Lab = tuple[float, float, float]


def _linear(channel: float) -> float:
    return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4


def _rgb(hex_colour: str) -> tuple[float, float, float]:
    value = hex_colour.lstrip("#")
    return tuple(int(value[i : i + 2], 16) / 255 for i in (0, 2, 4))  # type: ignore[return-value]


def luminance(hex_colour: str) -> float:
    """WCAG relative luminance."""
    r, g, b = (_linear(c) for c in _rgb(hex_colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(first: str, second: str) -> float:
    """WCAG contrast ratio between two colours (1 to 21)."""
    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@functools.cache
def to_lab(hex_colour: str) -> Lab:
    """sRGB to CIELAB under D65."""
    r, g, b = (_linear(c) for c in _rgb(hex_colour))
    x = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047
    y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b
    z = (0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 216 / 24389 else (24389 / 27 * t + 16) / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def delta_e_2000(first: Lab, second: Lab) -> float:
    """CIEDE2000 colour difference (Sharma, Wu and Dalal's formulation)."""
    l1, a1, b1 = first
    l2, a2, b2 = second
    c_mean = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2
    g = 0.5 * (1 - math.sqrt(c_mean**7 / (c_mean**7 + 25**7)))
    a1p, a2p = a1 * (1 + g), a2 * (1 + g)
    c1p, c2p = math.hypot(a1p, b1), math.hypot(a2p, b2)
    h1p = math.degrees(math.atan2(b1, a1p)) % 360 if c1p else 0.0
    h2p = math.degrees(math.atan2(b2, a2p)) % 360 if c2p else 0.0
    dl, dc = l2 - l1, c2p - c1p
    dh = 0.0
    if c1p * c2p:
        dh = h2p - h1p
        dh = dh - 360 if dh > 180 else dh + 360 if dh < -180 else dh
    dH = 2 * math.sqrt(c1p * c2p) * math.sin(math.radians(dh / 2))
    l_mean, cp_mean = (l1 + l2) / 2, (c1p + c2p) / 2
    if not c1p * c2p:
        h_mean = h1p + h2p
    elif abs(h1p - h2p) <= 180:
        h_mean = (h1p + h2p) / 2
    else:
        h_mean = (h1p + h2p + 360) / 2 if h1p + h2p < 360 else (h1p + h2p - 360) / 2
    t = (1 - 0.17 * math.cos(math.radians(h_mean - 30)) + 0.24 * math.cos(math.radians(2 * h_mean))
         + 0.32 * math.cos(math.radians(3 * h_mean + 6)) - 0.20 * math.cos(math.radians(4 * h_mean - 63)))
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / math.sqrt(20 + (l_mean - 50) ** 2)
    s_c = 1 + 0.045 * cp_mean
    s_h = 1 + 0.015 * cp_mean * t
    r_t = (-2 * math.sqrt(cp_mean**7 / (cp_mean**7 + 25**7))
           * math.sin(math.radians(60 * math.exp(-(((h_mean - 275) / 25) ** 2)))))
    return math.sqrt((dl / s_l) ** 2 + (dc / s_c) ** 2 + (dH / s_h) ** 2 + r_t * (dc / s_c) * (dH / s_h))


def _hex(r: float, g: float, b: float) -> str:
    return "#" + "".join(f"{round(c * 255):02x}" for c in (r, g, b))


@functools.cache
def palette() -> tuple[str, ...]:
    """Light colours readable under dark text, farthest-first: any prefix is as spread out as it can be."""
    candidates = [_hex(*colorsys.hls_to_rgb(hue / 360, light, saturation))
                  for hue in range(0, 360, 10) for light in (0.62, 0.72, 0.82, 0.9) for saturation in (0.95, 0.7, 0.45)]
    candidates += ["#e5e7eb", "#cbd5e1"]  # greys, for a listing with many attributes
    readable = sorted({c for c in candidates if contrast(c, TEXT_COLOUR) >= MIN_CONTRAST})
    labs = {c: to_lab(c) for c in readable}
    ordered = ["#fde68a"] if "#fde68a" in labs else [readable[0]]
    labs.setdefault(ordered[0], to_lab(ordered[0]))
    nearest = {c: delta_e_2000(labs[c], labs[ordered[0]]) for c in readable if c != ordered[0]}
    while nearest:
        pick = max(nearest, key=lambda c: (nearest[c], c))
        ordered.append(pick)
        del nearest[pick]
        for c in nearest:
            nearest[c] = min(nearest[c], delta_e_2000(labs[c], labs[pick]))
    return tuple(ordered)


def home_colours(attributes: Sequence[str]) -> dict[str, str]:
    """Each attribute's usual colour, by its place in the model's (then the store's) attribute list."""
    colours = palette()
    return {a: colours[i % len(colours)] for i, a in enumerate(attributes)}


def listing_colours(present: Iterable[str], home: Mapping[str, str]) -> dict[str, str]:
    """Colours for the attributes present in one listing, every two at least MIN_DELTA_E apart (up to
    ten attributes; the palette holds no more at that distance, and each highlight also carries its
    name). Each keeps its home colour unless it is too near one already given; then it takes the free
    colour farthest from those. Where that greedy pass still leaves two too close, the listing takes
    the palette's first colours, which are spread the furthest."""
    present = list(dict.fromkeys(present))
    given: dict[str, str] = {}
    for attribute in present:
        colour = home.get(attribute)
        if colour is None or _nearest(colour, given.values()) < MIN_DELTA_E:
            free = [c for c in palette() if c not in given.values()]
            colour = max(free, key=lambda c: _nearest(c, given.values())) if free else palette()[0]
        given[attribute] = colour
    if all(_nearest(given[a], [given[b] for b in present[:i]]) >= MIN_DELTA_E for i, a in enumerate(present)):
        return given
    spread = list(palette()[: len(present)])
    keep = {a: given[a] for a in present if given[a] in spread}
    rest = iter(c for c in spread if c not in keep.values())
    return {a: keep.get(a) or next(rest) for a in present}


def _nearest(colour: str, others: Iterable[str]) -> float:
    return min((_distance(*sorted((colour, o))) for o in others), default=math.inf)


@functools.cache
def _distance(first: str, second: str) -> float:
    return delta_e_2000(to_lab(first), to_lab(second))
