"""Does fine-tuning on corrections fix a systematic error, and how long does it take?

1. Find the error the model makes most systematically: predict the bundled VALID split, group the
   gold values it misses by (attribute, value) and take the value missed most often (at least
   --min-miss-rate of its occurrences).
2. Correct it as an annotator would: ~50 TRAIN listings with that value go into a fresh store
   (listing, photo, the model's prediction, then the gold spans as the correction).
3. Fine-tune (training.finetune) and report, on the TEST split, that error's rate and the overall
   TAG-F1 before and after.
4. Time fine-tuning on 200 corrections (seeded TRAIN sample) with the default settings.

    python benchmarks/bench_finetune.py --checkpoint models/default [--timing-only]

Prints markdown tables; work files go to a temporary folder (or --work).
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dram.checkpoint import load_checkpoint  # noqa: E402
from dram.data.listings import Listing  # noqa: E402
from dram.data.spans import Span  # noqa: E402
from dram.nn.config import DramConfig  # noqa: E402
from store import Store, open_store  # noqa: E402
from training.common import load_data, setup_logging  # noqa: E402
from training.finetune import EPOCHS, FinetuneResult, FinetuneSettings, comparison_table, finetune  # noqa: E402
from training.loop import DEFAULT_CACHE, PreparedData, TrainSettings, predict, prepare  # noqa: E402

log = logging.getLogger("bench_finetune")
BUNDLE = ROOT / "assets" / "myntra-small"
Value = tuple[str, str]  # (attribute, lower-cased gold text)


@dataclass
class Misses:
    seen: Counter[Value]
    missed: Counter[Value]

    def rate(self, value: Value) -> float:
        return self.missed[value] / self.seen[value] if self.seen[value] else float("nan")


def gold_values(item: Listing) -> list[tuple[Value, Span]]:
    return [((s.attribute, item.span_text(s).lower()), s) for s in item.spans]


def misses(data: PreparedData, predictions: list) -> Misses:
    """How often each gold (attribute, value) occurs and how often its exact span is not predicted."""
    seen, missed = Counter(), Counter()
    for item, (spans, _) in zip(data.listings, predictions):
        predicted = {(s.start, s.end, s.attribute) for s in spans}
        for value, span in gold_values(item):
            seen[value] += 1
            missed[value] += (span.start, span.end, span.attribute) not in predicted
    return Misses(seen, missed)


def predictions_of(checkpoint: Path, listings: list[Listing], cache: Path) -> tuple[PreparedData, list]:
    model, tokenizer, _ = load_checkpoint(checkpoint)
    data = prepare(model, tokenizer, listings, cache)
    return data, predict(model, tokenizer, data, progress=True)


def pick_error(found: Misses, train: list[Listing], min_seen: int, min_rate: float, min_train: int) -> Value:
    """The most often missed value that is missed systematically and that TRAIN has enough listings of."""
    in_train = Counter(v for item in train for v, _ in gold_values(item))
    candidates = [v for v in found.missed if found.seen[v] >= min_seen and found.rate(v) >= min_rate
                  and in_train[v] >= min_train]
    if not candidates:
        raise SystemExit("error: no systematic error found; lower --min-miss-rate or --min-seen.")
    return max(candidates, key=lambda v: (found.missed[v], found.rate(v)))


def fill_store(store: Store, checkpoint: Path, listings: list[Listing], cache: Path) -> None:
    """Each listing as the app stores it (with the model's prediction), then corrected to its gold spans."""
    version = store.register_model_version(checkpoint.name, checkpoint.resolve(), {})
    tau_r = DramConfig.load(checkpoint / "config.json").tau_r
    data, predicted = predictions_of(checkpoint, listings, cache)
    for item, (spans, scores) in zip(data.listings, predicted):
        photo = item.image.read_bytes() if item.image else None
        listing_id = store.add_listing(item.text, photo, external_id=item.id)
        prediction_id = store.add_prediction(listing_id, version, [vars(s) for s in spans], scores, tau_r)
        store.save_correction(listing_id, "benchmark", item.spans, prediction_id=prediction_id)


def run_finetune(checkpoint: Path, corrections: list[Listing], args: argparse.Namespace, name: str,
                 test: list[Listing], train: list[Listing]) -> FinetuneResult:
    with open_store(f"sqlite:///{args.work / name}.sqlite") as store:
        fill_store(store, checkpoint, corrections, args.cache_dir)
        settings = TrainSettings(epochs=args.epochs, seed=args.seed, cache_dir=args.cache_dir)
        return finetune(checkpoint, store, args.work / name, train, test, settings,
                        FinetuneSettings(replay_size=args.replay_size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--corrections", type=int, default=50, help="listings corrected for the error")
    parser.add_argument("--timing-corrections", type=int, default=200)
    parser.add_argument("--min-seen", type=int, default=5, help="occurrences in VALID for an error to count")
    parser.add_argument("--min-miss-rate", type=float, default=0.3)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--replay-size", type=int, default=FinetuneSettings.replay_size)
    parser.add_argument("--seed", type=int, default=TrainSettings.seed)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--work", type=Path, help="folder for the stores and checkpoints (default: temporary)")
    parser.add_argument("--timing-only", action="store_true", help="only step 4")
    args = parser.parse_args()
    setup_logging()
    args.work = args.work or Path(tempfile.mkdtemp(prefix="bench-finetune-"))
    train, valid, test = (load_data(BUNDLE / f"{s}.jsonl", s) for s in ("train", "valid", "test"))

    command = " ".join(["python", *sys.argv])
    print(f"\n`{command}`\n")
    if not args.timing_only:
        report_fix(args, train, valid, test)
    report_timing(args, train, test)


def report_fix(args: argparse.Namespace, train: list[Listing], valid: list[Listing], test: list[Listing]) -> None:
    """Steps 1-3: the most systematic error, corrected and fine-tuned on."""
    error = pick_error(misses(*predictions_of(args.checkpoint, valid, args.cache_dir)), train, args.min_seen,
                       args.min_miss_rate, args.corrections // 2)
    showing = [item for item in train if error in {v for v, _ in gold_values(item)}]
    corrections = random.Random(args.seed).sample(showing, min(args.corrections, len(showing)))
    log.info("error: %s %r missed; %d TRAIN listings show it, %d corrected", *error, len(showing), len(corrections))
    fixed = run_finetune(args.checkpoint, corrections, args, "fix", test, train)

    before = misses(*predictions_of(args.checkpoint, test, args.cache_dir))
    after = misses(*predictions_of(fixed.checkpoint, test, args.cache_dir))
    old, new = fixed.metrics["old"]["heldout"], fixed.metrics["new"]["heldout"]
    print(f"Systematic error: **{error[0]} = {error[1]!r}** missed in {before.missed[error]} of {before.seen[error]} "
          f"TEST listings by {args.checkpoint}; {len(corrections)} TRAIN listings corrected "
          f"({fixed.metrics['finetune']['train_corrections']} trained on, "
          f"{fixed.metrics['finetune']['heldout_corrections']} held out), {fixed.metrics['finetune']['replay']} "
          f"replayed, {args.epochs} epochs.\n")
    print("| TEST split | before | after |\n|---|---:|---:|")
    print(f"| {error[0]} {error[1]!r} miss rate | {before.rate(error):.1%} ({before.missed[error]}/{before.seen[error]}) "
          f"| {after.rate(error):.1%} ({after.missed[error]}/{after.seen[error]}) |")
    for key in ("tag_f1", "cls_f1", "precision", "recall"):
        print(f"| {key} | {old[key]:.4f} | {new[key]:.4f} |")
    print(f"| fine-tuning minutes (train only / total) | | {fixed.metrics['finetune']['train_minutes']:.2f} / "
          f"{fixed.metrics['finetune']['minutes']:.2f} |\n")
    print(comparison_table(fixed.metrics))
    print(f"promoted: {fixed.metrics['promotion']['promoted']} {'; '.join(fixed.metrics['promotion']['failed'])}\n")


def report_timing(args: argparse.Namespace, train: list[Listing], test: list[Listing]) -> None:
    """Step 4: a fine-tune on `--timing-corrections` corrections, timed."""
    timing_set = random.Random(args.seed).sample(train, args.timing_corrections)
    timed_start, load_before = time.monotonic(), os.getloadavg()[0]
    timed = run_finetune(args.checkpoint, timing_set, args, "timing", test, train)
    timed_total, load_after = (time.monotonic() - timed_start) / 60, os.getloadavg()[0]
    facts = timed.metrics["finetune"]
    print(f"\nTiming with {args.timing_corrections} corrections ({facts['train_corrections']} trained on "
          f"{facts['correction_weight']} times an epoch + {facts['replay']} replayed, {args.epochs} epochs, goal <= 3 "
          "min on 2 CPU cores):\n")
    print("| step | minutes |\n|---|---:|")
    print(f"| fit | {facts['train_minutes']:.2f} |\n| finetune() incl. loading and old/new evaluation | "
          f"{facts['minutes']:.2f} |\n| with filling the store (predictions) | {timed_total:.2f} |")
    print(f"\n1-minute load average {load_before:.1f} before, {load_after:.1f} after, on {os.cpu_count()} CPUs "
          "(other jobs on the machine slow every step above).")

if __name__ == "__main__":
    main()
