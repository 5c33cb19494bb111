"""Model versions as the app shows them: the dropdown's choices, the promotion table and the figures over time."""
from __future__ import annotations

from typing import Any, Mapping

from store.repository import Store


def version_choices(store: Store) -> list[tuple[str, int]]:
    """Dropdown choices for the registered versions, newest first, marking the active one."""
    choices = []
    for v in reversed(store.list_model_versions()):
        tag = " (active)" if v.active else ""
        if v.metrics.get("promotion", {}).get("promoted") is False:
            tag += " (not promoted)"
        parent = f", from #{v.parent_id}" if v.parent_id else ""
        f1 = v.metrics.get("new", {}).get("heldout", {}).get("tag_f1") or v.metrics.get("test", {}).get("tag_f1")
        score = f", TAG-F1 {f1:.3f}" if isinstance(f1, float) else ""
        choices.append((f"#{v.id} {v.name}{tag}{parent}{score}", v.id))
    return choices


def _change(metrics: Mapping[str, Any], data: str) -> str:
    """'98.22 → 97.79' (TAG-F1 in %, old model → this one) on a fine-tune's held-out set, or '—'."""
    old, new = (metrics.get(side, {}).get(data, {}).get("tag_f1") for side in ("old", "new"))
    return f"{old * 100:.2f} → {new * 100:.2f}" if isinstance(old, float) and isinstance(new, float) else "—"


def version_table(store: Store) -> str:
    """Markdown table of the registered versions, newest first: promoted or not, and the figures that decided."""
    rows = ["| version | serving | promotion | replay test TAG-F1 | held-out corrections TAG-F1 | why not promoted |",
            "|---|---|---|---|---|---|"]
    for v in reversed(store.list_model_versions()):
        promotion = v.metrics.get("promotion")
        if promotion is None:
            verdict = "—"  # not from a fine-tune: nothing to promote over
        elif promotion.get("promoted"):
            verdict = "promoted (forced)" if promotion.get("forced") else "promoted"
        else:
            verdict = "not promoted"
        why = "; ".join(promotion.get("failed", [])) if promotion and not promotion.get("promoted") else ""
        name = f"#{v.id} {v.name}" + (f" (from #{v.parent_id})" if v.parent_id else "")
        rows.append(f"| {name} | {'active' if v.active else ''} | {verdict} | {_change(v.metrics, 'heldout')} | "
                    f"{_change(v.metrics, 'corrections')} | {why} |")
    return "\n".join(rows)


# Where each figure lives in a version's metrics: a fine-tune's ("new" = this version on the replay test
# and the held-out corrections) or a trained model's own test split.
HISTORY_FIGURES = {"replay test": ("new", "heldout"), "held-out corrections": ("new", "corrections"),
                   "test split": ("test",)}


def metrics_over_time(store: Store) -> list[dict[str, Any]]:
    """One row per (version, figure) that has a TAG-F1, oldest first: what the Model tab draws."""
    rows = []
    for v in store.list_model_versions():
        for figure, path in HISTORY_FIGURES.items():
            found: Any = v.metrics
            for key in path:
                found = found.get(key, {}) if isinstance(found, Mapping) else {}
            value = found.get("tag_f1") if isinstance(found, Mapping) else None
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                rows.append({"version": f"#{v.id} {v.name}", "created": v.created, "figure": figure,
                             "TAG-F1": round(100 * value, 2)})
    return rows
