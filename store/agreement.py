"""Agreement between two annotators per attribute: span-level F1 between their verdicts, with the counts behind it.

F1 between two annotators is symmetric: 2 x spans both marked / (spans the first marked + spans the
second marked), a span being the same characters with the same attribute. A listing counts for an
attribute when either of the two marked a value of it; the row over all attributes counts every
listing compared, even one where both said "no values" (its F1 then rests on the others).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Collection, Iterable

from dram.data.spans import Span

ALL_ATTRIBUTES = "all attributes"


@dataclass(frozen=True)
class AgreementRow:
    attribute: str  # or ALL_ATTRIBUTES
    listings: int  # listings compared where either annotator marked this attribute
    spans: int  # spans the two marked together (a span both marked counts twice)
    agreed_spans: int  # spans both marked
    f1: float | None  # None when neither marked any span

    def line(self) -> str:
        """'colour: F1 85.7% (14 spans, 7 listings)', how the export reports it."""
        f1 = "no spans" if self.f1 is None else f"F1 {100 * self.f1:.1f}%"
        return f"{self.attribute}: {f1} ({self.spans} spans, {self.listings} listings)"


def _row(attribute: str, listings: int, spans: int, agreed: int) -> AgreementRow:
    return AgreementRow(attribute, listings, spans, agreed, 2 * agreed / spans if spans else None)


def agreement_rows(pairs: Iterable[tuple[Collection[Span], Collection[Span]]]) -> list[AgreementRow]:
    """One row per attribute (by name), then the row over all attributes; `pairs` are the two verdicts per listing."""
    listings: Counter[str] = Counter()
    spans: Counter[str] = Counter()
    agreed: Counter[str] = Counter()
    compared = 0
    for first, second in pairs:
        compared += 1
        first, second = {s.bare() for s in first}, {s.bare() for s in second}
        listings.update({s.attribute for s in first | second})
        spans.update(s.attribute for s in first)
        spans.update(s.attribute for s in second)
        agreed.update(s.attribute for s in first & second)
    rows = [_row(a, listings[a], spans[a], agreed[a]) for a in sorted(listings)]
    if compared:
        rows.append(_row(ALL_ATTRIBUTES, compared, sum(spans.values()), sum(agreed.values())))
    return rows
