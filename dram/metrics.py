"""CLS-F1 (attribute existence, micro) and TAG-F1 (exact span + attribute), as in the paper."""
from __future__ import annotations

from dataclasses import dataclass, field


class _PrecisionRecall:
    """P, R and F1 from (correct, answered, expected) counts."""

    def _counts(self) -> tuple[int, int, int]:
        raise NotImplementedError

    @property
    def precision(self) -> float:
        correct, answered, _ = self._counts()
        return correct / answered if answered else 0.0

    @property
    def recall(self) -> float:
        correct, _, expected = self._counts()
        return correct / expected if expected else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass
class Counts(_PrecisionRecall):
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, gold: set, predicted: set) -> None:
        self.tp += len(gold & predicted)
        self.fp += len(predicted - gold)
        self.fn += len(gold - predicted)

    def _counts(self) -> tuple[int, int, int]:
        return self.tp, self.tp + self.fp, self.tp + self.fn

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



def normalise_value(value: str) -> str:
    """The slot rule compares values case-insensitively with whitespace collapsed."""
    return " ".join(value.lower().split())


@dataclass
class SlotCounts(_PrecisionRecall):
    """ExtractGPT's counts: NN (gold n/a, no answer), NV (gold n/a, an answer), VN (gold value, no
    answer), VC (answer is one of the gold values), VW (answer differs)."""

    nn: int = 0
    nv: int = 0
    vn: int = 0
    vc: int = 0
    vw: int = 0

    def add(self, gold: list[str], answer: str | None) -> None:
        if not gold:
            if answer is None:
                self.nn += 1
            else:
                self.nv += 1
        elif answer is None:
            self.vn += 1
        elif normalise_value(answer) in {normalise_value(g) for g in gold}:
            self.vc += 1
        else:
            self.vw += 1

    def _counts(self) -> tuple[int, int, int]:
        return self.vc, self.nv + self.vc + self.vw, self.vn + self.vc + self.vw

    def as_dict(self) -> dict:
        return {"f1": self.f1, "precision": self.precision, "recall": self.recall,
                "NN": self.nn, "NV": self.nv, "VN": self.vn, "VC": self.vc, "VW": self.vw}


@dataclass
class SlotScorer:
    """The value-level metric of the attribute-extraction literature: one slot per labelled attribute
    of each listing, answered by the system's single most confident value; micro-averaged.
    Answers for attributes a listing was not labelled with are not counted."""

    total: SlotCounts = field(default_factory=SlotCounts)
    per_attribute: dict[str, SlotCounts] = field(default_factory=dict)

    def add(self, slots: dict[str, list[str]], answers: dict[str, str]) -> None:
        for attribute, gold in slots.items():
            answer = answers.get(attribute)
            self.total.add(gold, answer)
            self.per_attribute.setdefault(attribute, SlotCounts()).add(gold, answer)

    def summary(self) -> dict:
        return {**self.total.as_dict(),
                "per_attribute": {a: c.as_dict() for a, c in sorted(self.per_attribute.items())}}


def best_answers(spans) -> dict[str, str]:
    """Each attribute's most confident extracted value (spans with .attribute, .text, .confidence)."""
    best: dict[str, tuple[float, str]] = {}
    for span in spans:
        if span.attribute not in best or span.confidence > best[span.attribute][0]:
            best[span.attribute] = (span.confidence, span.text)
    return {a: text for a, (_, text) in best.items()}


def format_slot_report(summary: dict) -> str:
    lines = [f"value F1 (slot rule) {summary['f1']:.4f}  P {summary['precision']:.4f}  R {summary['recall']:.4f}  "
             + "  ".join(f"{k} {summary[k]}" for k in ("NN", "NV", "VN", "VC", "VW")),
             f"{'attribute':<28}{'F1':>8}{'P':>8}{'R':>8}{'NN':>6}{'NV':>6}{'VN':>6}{'VC':>6}{'VW':>6}"]
    for attribute, c in summary["per_attribute"].items():
        lines.append(f"{attribute[:27]:<28}{c['f1']:>8.4f}{c['precision']:>8.4f}{c['recall']:>8.4f}"
                     + "".join(f"{c[k]:>6}" for k in ("NN", "NV", "VN", "VC", "VW")))
    return "\n".join(lines)
