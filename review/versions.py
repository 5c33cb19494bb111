"""Model versions as the app shows them: the dropdown's choices and the promotion table."""
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
