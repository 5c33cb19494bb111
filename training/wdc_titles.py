"""The titles-only view of WDC-PAVE: `python -m training.wdc_titles --source ../shared/data/wdc-pave --out data/wdc-titles`.

Many catalogues have a title and nothing else; this view asks how DRAM does on one (issue 22).
Each offer keeps `input_title` alone and, per attribute, the values whose `pid` includes 0 (written
in the title). A value written only in the description (`pid` [1]) is dropped; an attribute left
with no value loses its slot rather than becoming n/a, because people checked the whole offer, not
the title, so "the title has no value" was never labelled. `{"n/a": 1}` labels stay as they are
(checked and absent in the whole offer, so absent in the title too). Every offer is kept, in the
source order, so `training.train`'s seeded validation split holds out the same offers in both views.

The output is the source's `target_scores` JSONL (the reader detects it), one file per source
file; rebuilding overwrites them with the same bytes.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from dram.files import write_atomically

SPLITS = ("train", "train_large", "test")
TITLE = 0  # the `pid` of the title; 1 is the description


@dataclass
class ViewCounts:
    """What the view kept and dropped from one file, for BENCHMARKS.md."""

    listings: int = 0
    values_kept: int = 0
    values_dropped: int = 0  # written in the description only
    slots_dropped: int = 0  # attributes whose every value was dropped
    na_slots: int = 0


def is_na(value: str) -> bool:
    return value.strip().lower() == "n/a"


def title_offer(offer: dict, counts: ViewCounts) -> dict:
    """One offer with its title alone and the values written in it."""
    scores: dict[str, dict] = {}
    for attribute, values in offer["target_scores"].items():
        if any(is_na(value) for value in values):
            scores[attribute] = values
            counts.na_slots += 1
            continue
        in_title = {value: score for value, score in values.items() if TITLE in score.get("pid", [])}
        counts.values_kept += len(in_title)
        counts.values_dropped += len(values) - len(in_title)
        if in_title:
            scores[attribute] = in_title
        else:
            counts.slots_dropped += 1
    counts.listings += 1
    return {k: scores if k == "target_scores" else v for k, v in offer.items() if k != "input_description"}


def build_split(source: Path, out: Path) -> ViewCounts:
    counts = ViewCounts()
    lines = [json.dumps(title_offer(json.loads(line), counts), ensure_ascii=False)
             for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    text = "\n".join(lines) + "\n"
    write_atomically(out, lambda staging: staging.write_text(text, encoding="utf-8"))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, type=Path, help="the WDC-PAVE folder (train/train_large/test.jsonl)")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print("| file | listings | values kept | description-only values dropped | slots dropped | n/a slots |")
    print("|---|--:|--:|--:|--:|--:|")
    for split in SPLITS:
        c = build_split(args.source / f"{split}.jsonl", args.out / f"{split}.jsonl")
        print(f"| {split} | {c.listings} | {c.values_kept} | {c.values_dropped} | {c.slots_dropped} | {c.na_slots} |")


if __name__ == "__main__":
    main()
