"""The Model tab's tables from metrics.json, as a trained model and a fine-tune write it, and its versions chart."""
from __future__ import annotations

import math

from ui.metrics_tables import attribute_table, overall_table, per_attribute_split
from store.agreement import ALL_ATTRIBUTES, AgreementRow
from ui.model_tab import agreement_table, history_plot


def evaluation(tag_f1: float, colour_tp: int = 9) -> dict:
    """`training.loop.evaluate`'s shape, two attributes."""
    counts = {"f1": tag_f1, "precision": 0.9, "recall": 0.8, "tp": colour_tp, "fp": 1, "fn": 1}
    return {"n_listings": 10, "cls_f1": 0.95, "tag_f1": tag_f1, "precision": 0.9, "recall": 0.8,
            "per_attribute": {"brand": {**counts, "tp": 4}, "colour": counts},
            "value": {"f1": 0.97, "precision": 0.98, "recall": 0.96,
                      "per_attribute": {"brand": {"f1": 1.0, "precision": 1.0, "recall": 1.0}}}}


TRAINED = {"train": {"listings": 30, "best_epoch": 4, "history": [{"epoch": 1}]},
           "valid": evaluation(0.9), "test": evaluation(0.925), "build_minutes": 6.3}
FINETUNED = {"finetune": {"corrections": 12}, "old": {"heldout": evaluation(0.98)},
             "new": {"heldout": evaluation(0.97), "corrections": evaluation(0.99)}, "promotion": {"promoted": True}}


def test_a_trained_model_has_a_row_per_split_in_percent() -> None:
    table = overall_table(TRAINED)
    assert table["split"].tolist() == ["validation", "test"]
    test = table.iloc[1].to_dict()
    assert test == {"split": "test", "listings": 10, "TAG-F1": 92.5, "TAG P": 90.0, "TAG R": 80.0, "CLS-F1": 95.0,
                    "value F1": 97.0, "value P": 98.0, "value R": 96.0}


def test_per_attribute_rows_are_on_the_test_split() -> None:
    assert per_attribute_split(TRAINED) == "test"
    table = attribute_table(TRAINED)
    assert table["attribute"].tolist() == ["brand", "colour"]
    brand, colour = (row.to_dict() for _, row in table.iterrows())
    assert brand["gold spans"] == 5 and brand["TAG-F1"] == 92.5 and brand["value F1"] == 100.0
    assert colour["gold spans"] == 10 and math.isnan(colour["value F1"])  # no value figures for it: blank, not 0


def test_a_fine_tune_shows_its_replay_and_correction_figures() -> None:
    assert overall_table(FINETUNED)["split"].tolist() == [
        "replay test (model before)", "replay test", "held-out corrections"]
    assert per_attribute_split(FINETUNED) == "replay test"
    assert attribute_table(FINETUNED)["TAG-F1"].tolist() == [97.0, 97.0]


def test_no_metrics_give_empty_tables() -> None:
    assert overall_table({}).empty and attribute_table({}).empty and per_attribute_split({}) is None


def test_the_chart_keeps_the_versions_in_registration_order() -> None:
    rows = [{"version": f"#{n} v{n}", "figure": "test split", "TAG-F1": 90.0 + n} for n in (2, 10)]
    plot = history_plot([{"version": "#1 default", "figure": "test split", "TAG-F1": 98.0}, *rows])
    assert plot.sort == ["#1 default", "#2 v2", "#10 v10"]  # not "#10" before "#2" as text would sort


def test_the_agreement_table_shows_f1_in_percent_with_its_counts() -> None:
    table = agreement_table([AgreementRow("colour", 2, 4, 1, 0.5), AgreementRow(ALL_ATTRIBUTES, 3, 0, 0, None)])
    assert table.to_dict("records")[0] == {"attribute": "colour", "listings": 2, "spans": 4, "agreed spans": 1, "F1": 50.0}
    assert math.isnan(table["F1"].iloc[1]) and agreement_table([]).columns.tolist()[-1] == "F1"
