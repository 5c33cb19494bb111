"""Where the recall goes: every slot the model misses, put down to exactly one cause (issue 22).

    python -m benchmarks.recall_breakdown --checkpoint runs/titles-large-s13 \
        --train data/wdc-titles/train_large.jsonl [--data labelled.jsonl] [--examples misses.jsonl] [--threads 1]

A missed slot is one the slot rule counts against recall: an attribute labelled with values whose
answer (the most confident extracted value) is none (VN) or none of them (VW). Without --data it
scores the listings `training.train` held out of --train for validation with the checkpoint's seed,
and reads the training values from the rest, exactly as that run split them; so the test split is
never looked at. The first rule of `CAUSES` that holds names the cause, so the order decides
between causes that hold together: what makes the value impossible to extract first (not in the
text, an attribute the model lacks), then what the model extracted instead (another value ranked
higher, wrong bounds, the words under another attribute), then what the data gave it (glued
values, an attribute never decoded, few examples, an unseen value), and a wrong answer elsewhere last.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dram.data.listings import Listing, locate_values
from dram.data.spans import Span
from dram.metrics import best_answers, normalise_value
from training.common import add_checkpoint_arguments, open_checkpoint, run_cli, setup_logging, training_and_held_out
from training.loop import predict, prepare

RARE_SLOTS = 20  # an attribute with a value in fewer training listings than this has "few examples"


@dataclass(frozen=True)
class Evidence:
    """What the rules know beyond the one listing: the model, its training data, its whole output."""

    trained_attributes: frozenset[str]
    one_tag_per_word: bool  # the joint decoder gives each word one attribute
    training_values: dict[str, set[str]]  # attribute -> its normalised training values
    training_slots: Counter  # attribute -> training listings with a value of it
    started: frozenset[str]  # attributes the decoder extracted anywhere in the scored file

    @classmethod
    def gather(cls, trained_attributes: list[str], one_tag_per_word: bool, training: list[Listing],
               predictions: list[list[Span]]) -> "Evidence":
        values: dict[str, set[str]] = {}
        slots: Counter = Counter()
        for listing in training:
            for attribute, gold in listing.target_values().items():
                if gold:
                    slots[attribute] += 1
                    values.setdefault(attribute, set()).update(normalise_value(v) for v in gold)
        return cls(frozenset(trained_attributes), one_tag_per_word, values, slots,
                   frozenset(s.attribute for spans in predictions for s in spans))


@dataclass(frozen=True)
class Miss:
    """One missed slot: the listing, the attribute, its gold values and what the model extracted."""

    listing: Listing
    attribute: str
    gold: list[str]
    predicted: list[Span]

    @property
    def gold_spans(self) -> list[Span]:
        return [s for s in self.listing.spans if s.attribute == self.attribute]

    @property
    def answer(self) -> str | None:
        return best_answers(self.predicted).get(self.attribute)

    def predicted_for(self, attribute: str) -> list[Span]:
        return [s for s in self.predicted if s.attribute == attribute]


def _not_in_text(miss: Miss, evidence: Evidence) -> bool:
    return not locate_values(miss.listing.text, {miss.attribute: miss.gold})[0]


def _untrained_attribute(miss: Miss, evidence: Evidence) -> bool:
    return miss.attribute not in evidence.trained_attributes


def _ranked_below(miss: Miss, evidence: Evidence) -> bool:
    gold = {normalise_value(v) for v in miss.gold}
    return any(normalise_value(s.text) in gold for s in miss.predicted_for(miss.attribute))


def _too_long(miss: Miss, evidence: Evidence) -> bool:
    return any(p.start <= g.start and g.end <= p.end for p in miss.predicted_for(miss.attribute) for g in miss.gold_spans)


def _too_short(miss: Miss, evidence: Evidence) -> bool:
    return any(g.start <= p.start and p.end <= g.end for p in miss.predicted_for(miss.attribute) for g in miss.gold_spans)


def _crossing(miss: Miss, evidence: Evidence) -> bool:
    return any(p.overlaps(g) for p in miss.predicted_for(miss.attribute) for g in miss.gold_spans)


def _shared_words(miss: Miss, evidence: Evidence) -> bool:
    others = [s for s in miss.listing.spans if s.attribute != miss.attribute]
    return evidence.one_tag_per_word and bool(miss.gold_spans) and all(
        any(g.overlaps(o) for o in others) for g in miss.gold_spans)


def _wrong_attribute(miss: Miss, evidence: Evidence) -> bool:
    return any(p.attribute != miss.attribute and p.overlaps(g) for p in miss.predicted for g in miss.gold_spans)


def _glued(miss: Miss, evidence: Evidence) -> bool:
    text = miss.listing.text

    def touches(span: Span) -> bool:
        return (span.start > 0 and text[span.start - 1].isalnum()) or (span.end < len(text) and text[span.end].isalnum())
    return bool(miss.gold_spans) and all(touches(g) for g in miss.gold_spans)


def _never_started(miss: Miss, evidence: Evidence) -> bool:
    return miss.attribute not in evidence.started


def _rare_attribute(miss: Miss, evidence: Evidence) -> bool:
    return evidence.training_slots[miss.attribute] < RARE_SLOTS


def _unseen_value(miss: Miss, evidence: Evidence) -> bool:
    seen = evidence.training_values.get(miss.attribute, set())
    return not any(normalise_value(v) in seen for v in miss.gold)


def _distractor(miss: Miss, evidence: Evidence) -> bool:
    return miss.answer is not None


Rule = Callable[[Miss, Evidence], bool]
# (cause, what it means, rule), in the order they are tried.
CAUSES: list[tuple[str, str, Rule]] = [
    ("not in text", "no gold value is written in the text on tagging-unit boundaries", _not_in_text),
    ("attribute not trained", "the attribute has no value in the training data, so the model lacks it", _untrained_attribute),
    ("ranked below another value", "the model extracted a gold value but answered with a more confident other value", _ranked_below),
    ("boundary: too long", "an extracted value of the attribute holds a gold value and more words", _too_long),
    ("boundary: too short", "an extracted value of the attribute is part of a gold value", _too_short),
    ("boundary: crossing", "an extracted value of the attribute overlaps a gold value, crossing one of its ends", _crossing),
    ("words shared with another attribute", "every gold occurrence shares words with another attribute's gold value; the joint decoder tags a word once", _shared_words),
    ("wrong attribute", "a gold value's words were extracted under another attribute", _wrong_attribute),
    ("glued to codes or units", "every gold occurrence touches a letter or digit outside it (\"25KPAGE\", \"13w\")", _glued),
    ("attribute never started", "the decoder extracts the attribute nowhere in the scored file", _never_started),
    (f"few examples (< {RARE_SLOTS} training listings)", "the attribute has a value in few training listings", _rare_attribute),
    ("value never seen in training", "no gold value was a training value of the attribute", _unseen_value),
    ("distractor", "answered with another span of the attribute, overlapping no gold value", _distractor),
]
OTHER = "other"


def cause_of(miss: Miss, evidence: Evidence) -> str:
    """The first cause in `CAUSES` whose rule holds, else "other"."""
    return next((name for name, _, rule in CAUSES if rule(miss, evidence)), OTHER)


def missed_slots(listing: Listing, predicted: list[Span]) -> list[Miss]:
    """The slots with gold values whose answer is none of them (VN and VW of the slot rule)."""
    answers = best_answers(predicted)
    misses = []
    for attribute, gold in listing.target_values().items():
        answer = answers.get(attribute)
        if gold and (answer is None or normalise_value(answer) not in {normalise_value(v) for v in gold}):
            misses.append(Miss(listing, attribute, gold, predicted))
    return misses


def breakdown_table(causes: list[str], n_valued_slots: int) -> str:
    """Markdown: each cause's count, share of the misses and the recall points it costs."""
    counts = Counter(causes)
    lines = ["| cause | missed slots | share of misses | recall points |", "|---|--:|--:|--:|"]
    for name in [c for c, _, _ in CAUSES] + [OTHER]:
        if counts[name]:
            lines.append(f"| {name} | {counts[name]} | {100 * counts[name] / len(causes):.1f}% | "
                         f"{100 * counts[name] / n_valued_slots:.2f} |")
    lines.append(f"| all misses | {len(causes)} | 100% | {100 * len(causes) / n_valued_slots:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_checkpoint_arguments(parser)
    parser.add_argument("--train", required=True, type=Path,
                        help="the file the checkpoint was trained from (with --data, all of it is read as training values)")
    parser.add_argument("--data", type=Path, help="labelled listings to score (default: the run's own validation split of --train)")
    parser.add_argument("--examples", type=Path, help="write every miss with its cause here (JSONL, grouped by cause)")
    args = parser.parse_args()
    setup_logging()
    model, tokenizer, job = open_checkpoint(args)
    training, labelled = training_and_held_out(args.train, args.data, seed=model.config.train["seed"])
    data = prepare(model, tokenizer, labelled, job.cache_dir)
    predictions = [spans for spans, _ in predict(model, tokenizer, data, progress=True)]
    evidence = Evidence.gather(model.config.attributes, not model.config.use_arm, training, predictions)
    misses = [m for listing, spans in zip(data.listings, predictions) for m in missed_slots(listing, spans)]
    causes = [cause_of(m, evidence) for m in misses]
    n_valued = sum(1 for listing in data.listings for gold in listing.target_values().values() if gold)
    print(f"slots with a value: {n_valued}; missed: {len(misses)} (recall {100 * (1 - len(misses) / n_valued):.2f})\n")
    print(breakdown_table(causes, n_valued))
    print("\n" + "\n".join(f"- {name}: {meaning}" for name, meaning, _ in CAUSES))
    if args.examples:
        order = {name: i for i, (name, _, _) in enumerate(CAUSES)}
        rows = sorted(zip(causes, misses), key=lambda pair: order.get(pair[0], len(order)))
        with args.examples.open("w", encoding="utf-8") as out:
            for cause, miss in rows:
                out.write(json.dumps({"cause": cause, "id": miss.listing.id, "attribute": miss.attribute,
                                      "gold": miss.gold, "answer": miss.answer,
                                      "extracted": [f"{s.attribute}: {s.text}" for s in miss.predicted],
                                      "text": miss.listing.text}, ensure_ascii=False) + "\n")
        print(f"\nwrote {len(misses)} misses with their causes to {args.examples}")


if __name__ == "__main__":
    run_cli(main)
