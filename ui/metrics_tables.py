"""A checkpoint's metrics.json as the Model tab's two tables: each evaluated split, and per attribute.

metrics.json nests `evaluate`'s figures under the split they were measured on: "valid" and "test" for
a trained model, "old"/"new" x "heldout"/"corrections" for a fine-tune. Any dict holding TAG-F1 and
CLS-F1 is one evaluation, so a new kind of split shows up without a change here.
"""
from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

SPLIT_NAMES = {"valid": "validation", "test": "test", "new / heldout": "replay test",
               "new / corrections": "held-out corrections", "old / heldout": "replay test (model before)",
               "old / corrections": "held-out corrections (model before)"}
# The per-attribute table shows one split: the first of these the checkpoint has.
PER_ATTRIBUTE_SPLITS = ("test", "replay test", "held-out corrections", "validation")
OVERALL_COLUMNS = ["split", "listings", "TAG-F1", "TAG P", "TAG R", "CLS-F1", "value F1", "value P", "value R"]
ATTRIBUTE_COLUMNS = ["attribute", "gold spans", "TAG-F1", "TAG P", "TAG R", "value F1", "value P", "value R"]


def evaluations(metrics: Mapping[str, Any], path: tuple[str, ...] = ()) -> dict[str, Mapping[str, Any]]:
    """Every evaluation in metrics.json by its split's readable name, in the file's order."""
    found: dict[str, Mapping[str, Any]] = {}
    for key, value in metrics.items():
        if not isinstance(value, Mapping):
            continue
        where = (*path, key)
        if "tag_f1" in value and "cls_f1" in value:
            name = " / ".join(where)
            found[SPLIT_NAMES.get(name, name)] = value
        else:
            found.update(evaluations(value, where))
    return found


def _percent(value: Any) -> float | None:
    return round(100 * value, 2) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def overall_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """One row per evaluated split, figures in %: TAG (spans), CLS (attributes present) and value (slot) F1."""
    rows = []
    for split, ev in evaluations(metrics).items():
        value = ev.get("value", {})
        rows.append([split, ev.get("n_listings"), *map(_percent, (ev["tag_f1"], ev.get("precision"), ev.get("recall"),
                                                                   ev["cls_f1"], value.get("f1"),
                                                                   value.get("precision"), value.get("recall")))])
    return pd.DataFrame(rows, columns=OVERALL_COLUMNS)


def per_attribute_split(metrics: Mapping[str, Any]) -> str | None:
    """The split the per-attribute table shows, or None when nothing was evaluated."""
    found = evaluations(metrics)
    return next((s for s in PER_ATTRIBUTE_SPLITS if s in found), next(iter(found), None))


def attribute_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """One row per attribute on `per_attribute_split`, figures in %: its spans (TAG) and its values (slot rule)."""
    split = per_attribute_split(metrics)
    if split is None:
        return pd.DataFrame(columns=ATTRIBUTE_COLUMNS)
    ev = evaluations(metrics)[split]
    values = ev.get("value", {}).get("per_attribute", {})
    rows = []
    for attribute, tag in ev.get("per_attribute", {}).items():
        value = values.get(attribute, {})
        gold = tag.get("tp", 0) + tag.get("fn", 0)
        rows.append([attribute, gold, *map(_percent, (tag.get("f1"), tag.get("precision"), tag.get("recall"),
                                                      value.get("f1"), value.get("precision"), value.get("recall")))])
    return pd.DataFrame(rows, columns=ATTRIBUTE_COLUMNS)
