"""The store's listings and spans in Label Studio's shapes and back: the labeling config, UTF-16
offsets, prediction and annotation regions, and an annotation's result read into checked spans."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from datetime import datetime, timezone
from typing import Any, Iterable
from xml.sax.saxutils import quoteattr

from dram.data.spans import Span
from store.errors import CorrectionError
from store.records import PredictionInfo

FROM_NAME = "label"  # the <Labels> control
TEXT_NAME = "text"  # the <Text> object
IMAGE_NAME = "image"  # the <Image> object


def labeling_config(attributes: Iterable[str]) -> str:
    """Photo on top, then the listing text with one label per attribute."""
    labels = "\n".join(f"    <Label value={quoteattr(a)}/>" for a in attributes)
    return (
        "<View>\n"
        f'  <Image name="{IMAGE_NAME}" value="${IMAGE_NAME}" maxWidth="480px"/>\n'
        f'  <Labels name="{FROM_NAME}" toName="{TEXT_NAME}">\n{labels}\n  </Labels>\n'
        f'  <Text name="{TEXT_NAME}" value="${TEXT_NAME}"/>\n'
        "</View>"
    )


def label_values(config: str) -> list[str]:
    """The attributes a project's labeling config has labels for."""
    return [label.get("value", "") for label in ElementTree.fromstring(config).iter("Label")]


def to_ls_offset(text: str, index: int) -> int:
    """Label Studio counts text offsets in UTF-16 code units (JavaScript strings), Python in code points."""
    return len(text[:index].encode("utf-16-le")) // 2


def from_ls_offset(text: str, offset: int) -> int:
    units = 0
    for index, char in enumerate(text):
        if units >= offset:
            return index
        units += 2 if ord(char) > 0xFFFF else 1
    # Past the end: an index the span validation rejects instead of silently clamping.
    return len(text) if units >= offset else len(text) + 1


def region(text: str, span: Span, region_id: str) -> dict[str, Any]:
    region: dict[str, Any] = {
        "id": region_id,
        "from_name": FROM_NAME,
        "to_name": TEXT_NAME,
        "type": "labels",
        "value": {
            "start": to_ls_offset(text, span.start),
            "end": to_ls_offset(text, span.end),
            "text": text[span.start:span.end],
            "labels": [span.attribute],
        },
    }
    if span.confidence is not None:
        region["score"] = span.confidence
    return region


def prediction_payload(text: str, prediction: PredictionInfo) -> dict[str, Any]:
    confidences = [1.0 if s.confidence is None else s.confidence for s in prediction.spans]
    return {
        "result": [region(text, s, f"p{prediction.id}-{i}") for i, s in enumerate(prediction.spans)],
        "model_version": prediction.model_version_name or "unregistered-model",
        "score": min(confidences, default=1.0),
    }


def prediction_key(result: list[Any], model_version: str | None) -> str:
    """Which store prediction a Label Studio prediction is: its regions are named after the store's
    prediction id ("p12-0"); one without regions is known only by its model version."""
    first = result[0] if result else None
    region_id = str((first.get("id") if isinstance(first, dict) else getattr(first, "id", "")) or "")
    match = re.match(r"p(\d+)-", region_id)
    return f"p{match.group(1)}" if match else f"empty:{model_version or 'unregistered-model'}"


class AnnotationRefused(CorrectionError):
    """An annotation that is not a well-formed set of text labels with known attributes; nothing was stored."""


def whole_number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def spans_from_result(text: str, result: Any, allowed: set[str], where: str) -> list[Span]:
    """The spans of an annotation's result, or `AnnotationRefused` saying what to fix in Label Studio.

    An empty result is the annotator saying "no values here" (no spans); anything that is not a
    text label with whole-number offsets and a known attribute is refused, never half-imported.
    """
    if result is None:
        return []
    if not isinstance(result, list):
        raise AnnotationRefused(f"{where}: its result is not a list of regions; open it in Label Studio, "
                                "submit it again and import again.")
    spans = []
    for number, region in enumerate(result, start=1):
        if not isinstance(region, dict):
            raise AnnotationRefused(f"{where}: region {number} is not a region object; open the annotation in "
                                    "Label Studio, submit it again and import again.")
        kind = region.get("type")
        if kind != "labels" or region.get("from_name") != FROM_NAME or region.get("to_name") != TEXT_NAME:
            raise AnnotationRefused(
                f"{where}: region {number} is a {kind!r} result from {region.get('from_name')!r}, not a text label "
                f"on the listing text, which is all DRAM stores. Delete that region in Label Studio (label the "
                "words instead) and import again.")
        value = region.get("value") if isinstance(region.get("value"), dict) else {}
        labels = value.get("labels")
        start, end = whole_number(value.get("start")), whole_number(value.get("end"))
        if start is None or end is None:
            raise AnnotationRefused(
                f"{where}: region {number} ({value.get('text')!r}) has no whole-number start and end offsets in "
                f"the text (start={value.get('start')!r}, end={value.get('end')!r}); redraw the region in Label "
                "Studio and import again.")
        if not isinstance(labels, list) or not labels or not all(isinstance(label, str) for label in labels):
            raise AnnotationRefused(f"{where}: region {number} ({value.get('text')!r}) has no label; pick an "
                                    "attribute for it in Label Studio and import again.")
        for label in labels:
            if label not in allowed:
                raise AnnotationRefused(
                    f"{where}: label {label!r} is not one of the store's attributes ({', '.join(sorted(allowed))}). "
                    f"If it is a new attribute, add it to the store (`python -m store add-attribute {label}`, or "
                    f"Store.add_attribute({label!r})) and import again; otherwise relabel the region in Label Studio.")
            spans.append(Span(from_ls_offset(text, start), from_ls_offset(text, end), label))
    return spans


def timestamp(value: Any) -> datetime | None:
    """Label Studio's ISO time (e.g. '2026-12-01T14:26:12.918437Z') in UTC, or None if absent or unreadable."""
    try:
        return datetime.fromisoformat(str(value)).astimezone(timezone.utc) if value else None
    except ValueError:
        return None
