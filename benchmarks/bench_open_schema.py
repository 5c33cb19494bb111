"""Open-schema quality: train with the defaults on a user's own labelled listings, score on test.

    python -m benchmarks.bench_open_schema --train ../shared/data/wdc-pave/train_large.jsonl \
        --test ../shared/data/wdc-pave/test.jsonl --seeds 13,14,15 [--out runs/open-schema] \
        [--sample N] [-- extra train flags]

Runs exactly what a user runs (`training.train` with its defaults, then `training.evaluate`),
once per seed, next to the lookup baseline (every training value matched in the test text), and
prints the value-level slot F1 (the literature's metric), TAG-F1, training minutes, the
per-attribute table and the extraction time of one listing. `--sample N` trains on a seeded random
N listings of --train instead (the learning curve), the same sample for every seed.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from dram.data.readers import read_listings
from dram.data.spans import Span
from dram.data.tagging import split_words
from dram.metrics import SlotScorer, best_answers
from dram.nn.value_lookup import ValueLookup

ROOT = Path(__file__).resolve().parent.parent


def lookup_baseline(train_path: Path, test_path: Path) -> dict:
    """The dictionary of training values as the extractor: longest match first, no overlaps."""
    train, _ = read_listings(train_path)
    test, _ = read_listings(test_path)
    lookup = ValueLookup.from_listings(train)
    scorer = SlotScorer()
    for listing in test:
        words = split_words(listing.text)
        spans = []
        for m in lookup.match(words):
            start, end = words[m.first_word].start, words[m.end_word - 1].end
            spans.append(Span(start, end, m.attribute, listing.text[start:end], m.confidence))
        scorer.add(listing.target_values(), best_answers(spans))
    return scorer.summary()


def sample_file(path: Path, n: int, out: Path, seed: int = 13) -> Path:
    """A seeded random n of the file's listings (lines), written once, for the learning curve."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if n >= len(lines):
        raise SystemExit(f"--sample {n}: {path} has only {len(lines)} listings.")
    sample = out / f"{path.stem}-sample{n}.jsonl"
    if not sample.exists():
        sample.write_text("\n".join(random.Random(seed).sample(lines, n)) + "\n", encoding="utf-8")
    return sample


def run(command: list[str], log: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with log.open("w") as out:
        done = subprocess.run(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed; see {log}")


def extraction_ms(checkpoint: Path, test_path: Path, n: int = 50) -> float:
    from dram.inference import Extractor

    extractor = Extractor.load(checkpoint)
    texts = [l.text for l in read_listings(test_path)[0][:n]]
    extractor.extract(texts[0])
    times = []
    for text in texts:
        started = time.perf_counter()
        extractor.extract(text)
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True, type=Path)
    parser.add_argument("--test", required=True, type=Path)
    parser.add_argument("--seeds", default="13,14,15")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "open-schema")
    parser.add_argument("--sample", type=int, help="train on a seeded random N listings of --train")
    parser.add_argument("extra", nargs="*", help="more training.train flags, after --")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.sample:
        args.train = sample_file(args.train, args.sample, args.out)
    baseline = lookup_baseline(args.train, args.test)
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        folder = args.out / f"seed{seed}"
        metrics = folder / "test-metrics.json"
        if not metrics.exists():
            run([sys.executable, "-m", "training.train", "--train", str(args.train), "--out", str(folder),
                 "--seed", str(seed), *args.extra], args.out / f"train-seed{seed}.log")
            run([sys.executable, "-m", "training.evaluate", "--checkpoint", str(folder), "--data", str(args.test),
                 "--json", str(metrics)], args.out / f"evaluate-seed{seed}.log")
        summary = json.loads(metrics.read_text())
        trained = json.loads((folder / "metrics.json").read_text())["train"]
        rows.append((seed, summary, trained))
        print(f"seed {seed}: value F1 {100 * summary['value']['f1']:.2f}  TAG-F1 {100 * summary['tag_f1']:.2f}  "
              f"train {trained['train_minutes']:.1f} min, best epoch {trained.get('best_epoch')}", flush=True)

    def mean_sd(values: list[float]) -> str:
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{100 * statistics.mean(values):.2f} +- {100 * sd:.2f}"

    value = [r[1]["value"] for r in rows]
    print("\n| system | value F1 | P | R | TAG-F1 | train minutes |\n|---|---|---|---|---|---|")
    print(f"| lookup of the training values | {100 * baseline['f1']:.2f} | {100 * baseline['precision']:.2f} | "
          f"{100 * baseline['recall']:.2f} | | |")
    print(f"| DRAM defaults ({len(rows)} seeds) | {mean_sd([v['f1'] for v in value])} | "
          f"{mean_sd([v['precision'] for v in value])} | {mean_sd([v['recall'] for v in value])} | "
          f"{mean_sd([r[1]['tag_f1'] for r in rows])} | "
          f"{statistics.mean(r[2]['train_minutes'] for r in rows):.1f} |")
    print("\nPer attribute (value F1, mean over seeds; lookup beside it):\n\n| attribute | slots with a value | DRAM | lookup |\n|---|---|---|---|")
    for attribute, counts in sorted(baseline["per_attribute"].items()):
        ours = [v["per_attribute"][attribute]["f1"] for v in value if attribute in v["per_attribute"]]
        valued = counts["VN"] + counts["VC"] + counts["VW"]
        print(f"| {attribute} | {valued} | {100 * statistics.mean(ours):.1f} | {100 * counts['f1']:.1f} |")
    print(f"\nextraction of one title + description listing (p50 over 50 test listings, CPU): "
          f"{extraction_ms(args.out / f'seed{rows[0][0]}', args.test):.1f} ms")


if __name__ == "__main__":
    main()
