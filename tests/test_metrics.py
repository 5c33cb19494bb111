"""CLS-F1 and TAG-F1 (with P and R), worked out by hand on a small example."""
from __future__ import annotations

import pytest

from dram.metrics import Counts, ExtractionScorer, format_report


def _example() -> ExtractionScorer:
    scorer = ExtractionScorer()
    # Listing 1: colour right, material's span one character short.
    scorer.add({(0, 3, "colour"), (4, 10, "material")}, {(0, 3, "colour"), (4, 9, "material")},
               {"colour", "material"})
    # Listing 2: colour right, a spurious brand.
    scorer.add({(0, 4, "colour")}, {(0, 4, "colour"), (5, 8, "brand")}, {"colour", "brand"})
    # Listing 3: a gold size missed entirely, and not selected either.
    scorer.add({(2, 4, "size")}, set(), set())
    return scorer


def test_tag_f1_precision_recall_by_hand() -> None:
    summary = _example().summary()
    # TAG: tp = 2 (both colours), fp = 2 (short material, brand), fn = 2 (material, size).
    assert summary["precision"] == pytest.approx(2 / 4)
    assert summary["recall"] == pytest.approx(2 / 4)
    assert summary["tag_f1"] == pytest.approx(0.5)
    assert summary["n_listings"] == 3


def test_cls_f1_by_hand() -> None:
    scorer = _example()
    # CLS: listing 1 tp 2; listing 2 tp 1, fp 1 (brand); listing 3 fn 1 (size).
    assert (scorer.cls.tp, scorer.cls.fp, scorer.cls.fn) == (3, 1, 1)
    assert scorer.summary()["cls_f1"] == pytest.approx(2 * 0.75 * 0.75 / 1.5)


def test_per_attribute_counts() -> None:
    per = _example().summary()["per_attribute"]
    assert list(per) == ["brand", "colour", "material", "size"]  # sorted
    assert per["colour"] == {"f1": 1.0, "precision": 1.0, "recall": 1.0, "tp": 2, "fp": 0, "fn": 0}
    assert (per["material"]["tp"], per["material"]["fp"], per["material"]["fn"]) == (0, 1, 1)
    assert per["material"]["f1"] == 0.0
    assert (per["brand"]["fp"], per["brand"]["precision"], per["brand"]["recall"]) == (1, 0.0, 0.0)
    assert (per["size"]["fn"], per["size"]["recall"]) == (1, 0.0)


def test_same_offsets_in_different_listings_count_separately() -> None:
    scorer = ExtractionScorer()
    scorer.add({(0, 3, "colour")}, {(0, 3, "colour")}, {"colour"})
    scorer.add({(0, 3, "colour")}, set(), set())
    assert (scorer.tag.tp, scorer.tag.fn) == (1, 1)
    assert scorer.summary()["recall"] == pytest.approx(0.5)


def test_empty_scorer_and_empty_listings_give_zeros_not_errors() -> None:
    empty = ExtractionScorer().summary()
    assert empty == {"n_listings": 0, "cls_f1": 0.0, "tag_f1": 0.0, "precision": 0.0, "recall": 0.0,
                     "per_attribute": {}}
    scorer = ExtractionScorer()
    scorer.add(set(), set(), set())
    summary = scorer.summary()
    assert summary["n_listings"] == 1 and summary["tag_f1"] == 0.0 and summary["per_attribute"] == {}
    # Predictions with no gold at all: precision 0, recall 0 (nothing to recall).
    scorer.add(set(), {(0, 1, "colour")}, {"colour"})
    assert scorer.summary()["per_attribute"]["colour"]["fp"] == 1
    assert scorer.summary()["precision"] == 0.0 and scorer.summary()["cls_f1"] == 0.0


def test_counts_perfect_and_f1_harmonic_mean() -> None:
    counts = Counts()
    counts.add({1, 2, 3}, {1, 2, 3})
    assert counts.f1 == 1.0
    counts = Counts(tp=1, fp=0, fn=3)
    assert counts.precision == 1.0 and counts.recall == 0.25
    assert counts.f1 == pytest.approx(2 * 1.0 * 0.25 / 1.25)


def test_format_report_shows_headline_and_attributes() -> None:
    report = format_report(_example().summary())
    first = report.splitlines()[0]
    assert "listings 3" in first and "CLS-F1 0.7500" in first and "TAG-F1 0.5000" in first
    assert "P 0.5000" in first and "R 0.5000" in first
    colour = next(line for line in report.splitlines() if line.startswith("colour"))
    assert colour.split() == ["colour", "1.0000", "1.0000", "1.0000", "2"]


def test_slot_rule_counts_and_scores_by_hand() -> None:
    from dram.metrics import SlotScorer

    scorer = SlotScorer()
    # Listing 1: colour right (case and spaces differ), brand n/a and unanswered (NN),
    # size answered wrongly (VW), material missed (VN).
    scorer.add({"colour": ["Navy  Blue", "navy"], "brand": [], "size": ["XL"], "material": ["cotton"]},
               {"colour": "navy blue", "size": "L", "fit": "slim"})  # fit is not a slot: not counted
    # Listing 2: brand n/a but answered (NV), colour right.
    scorer.add({"brand": [], "colour": ["red"]}, {"brand": "Acme", "colour": "Red"})
    summary = scorer.summary()
    assert (summary["NN"], summary["NV"], summary["VN"], summary["VC"], summary["VW"]) == (1, 1, 1, 2, 1)
    assert summary["precision"] == pytest.approx(2 / (1 + 2 + 1))  # VC / (NV + VC + VW)
    assert summary["recall"] == pytest.approx(2 / (1 + 2 + 1))  # VC / (VN + VC + VW)
    assert summary["f1"] == pytest.approx(0.5)
    assert summary["per_attribute"]["brand"]["NV"] == 1 and "fit" not in summary["per_attribute"]


def test_best_answers_take_each_attributes_most_confident_span() -> None:
    from dram.data.spans import Span
    from dram.metrics import best_answers

    spans = [Span(0, 3, "colour", "Red", 0.6), Span(9, 13, "colour", "Blue", 0.9),
             Span(4, 8, "brand", "Acme", 0.5)]
    assert best_answers(spans) == {"colour": "Blue", "brand": "Acme"}
