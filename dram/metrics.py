"""CLS-F1 (attribute existence, micro) and TAG-F1 (exact span + attribute), as in the paper."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, gold: set, predicted: set) -> None:
        self.tp += len(gold & predicted)
        self.fp += len(predicted - gold)
        self.fn += len(gold - predicted)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict:
        return {"f1": self.f1, "precision": self.precision, "recall": self.recall,
                "tp": self.tp, "fp": self.fp, "fn": self.fn}


@dataclass
class ExtractionScorer:
    """Accumulates listings; gold and predicted spans are (start, end, attribute) tuples."""

    cls: Counts = field(default_factory=Counts)
    tag: Counts = field(default_factory=Counts)
    per_attribute: dict[str, Counts] = field(default_factory=dict)
    n_listings: int = 0

    def add(self, gold_spans: set[tuple[int, int, str]], predicted_spans: set[tuple[int, int, str]],
            predicted_attributes: set[str]) -> None:
        self.n_listings += 1
        self.cls.add({s[2] for s in gold_spans}, predicted_attributes)
        self.tag.add(gold_spans, predicted_spans)
        for attribute in {s[2] for s in gold_spans | predicted_spans}:
            counts = self.per_attribute.setdefault(attribute, Counts())
            counts.add({s for s in gold_spans if s[2] == attribute}, {s for s in predicted_spans if s[2] == attribute})

    def summary(self) -> dict:
        return {
            "n_listings": self.n_listings,
            "cls_f1": self.cls.f1,
            "tag_f1": self.tag.f1,
            "precision": self.tag.precision,
            "recall": self.tag.recall,
            "per_attribute": {a: c.as_dict() for a, c in sorted(self.per_attribute.items())},
        }


def format_report(summary: dict) -> str:
    lines = [f"listings {summary['n_listings']}  CLS-F1 {summary['cls_f1']:.4f}  TAG-F1 {summary['tag_f1']:.4f}  "
             f"P {summary['precision']:.4f}  R {summary['recall']:.4f}",
             f"{'attribute':<16}{'TAG-F1':>8}{'P':>8}{'R':>8}{'gold':>7}"]
    for attribute, c in summary["per_attribute"].items():
        lines.append(f"{attribute:<16}{c['f1']:>8.4f}{c['precision']:>8.4f}{c['recall']:>8.4f}{c['tp'] + c['fn']:>7}")
    return "\n".join(lines)

