"""What changed between two model versions on the same listings: values whose attribute moved.

TAG-F1 on held-out data that carries the same mistake as the training corrections cannot see a
systematic relabelling; counting the words the old model gave one attribute and the new one gives
another ('27 values moved colour -> brand') can, whatever the labels say.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable

from dram.data.spans import Span


def moved_values(old: Iterable[list[Span]], new: Iterable[list[Span]]) -> Counter[tuple[str, str]]:
    """(old attribute, new attribute) -> values: the same characters, per listing, that the old model
    gave the old attribute and the new model gives the new one instead (no longer the old one)."""
    moved: Counter[tuple[str, str]] = Counter()
    for before, after in zip(old, new):
        now: dict[tuple[int, int], set[str]] = {}
        for span in after:
            now.setdefault((span.start, span.end), set()).add(span.attribute)
        for span in before:
            attributes = now.get((span.start, span.end), set())
            if span.attribute not in attributes:
                moved.update((span.attribute, to) for to in attributes)
    return moved


def moved_summary(moved: Counter[tuple[str, str]]) -> str:
    """'27 values moved colour -> brand; 1 value moved brand -> colour', most first ('nothing moved')."""
    if not moved:
        return "nothing moved"
    return "; ".join(f"{n} value{'s' if n != 1 else ''} moved {a} -> {b}" for (a, b), n in moved.most_common())


def values_per_attribute(predictions: Iterable[list[Span]]) -> Counter[str]:
    """How many values a model gives each attribute on a set of listings."""
    return Counter(span.attribute for spans in predictions for span in spans)


def attribute_table(old: dict[str, dict], new: dict[str, dict], old_values: Counter[str],
                    new_values: Counter[str]) -> str:
    """Markdown, one row per attribute: old vs new TAG-F1 on the replay test (`old`/`new`: its
    per-attribute figures) and the values each model gives it on the flagged listings."""
    rows = ["| attribute | replay test TAG-F1 old | new | change | values on flagged listings old | new |",
            "|---|---:|---:|---:|---:|---:|"]
    for attribute in sorted({*old, *new, *old_values, *new_values}):
        f1_old, f1_new = old.get(attribute, {}).get("f1"), new.get(attribute, {}).get("f1")
        change = f"{f1_new - f1_old:+.4f}" if f1_old is not None and f1_new is not None else "—"
        rows.append(f"| {attribute} | {_figure(f1_old)} | {_figure(f1_new)} | {change} | "
                    f"{old_values[attribute]} | {new_values[attribute]} |")
    return "\n".join(rows)


def _figure(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "—"
