"""Extraction speed of a checkpoint on this machine: one listing with photo (p50/p95) and batch throughput.

    python -m benchmarks.bench_model [--checkpoint models/default] [--data assets/myntra-small/test.jsonl]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from dram.inference import Extractor
from dram.listings import read_jsonl


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=Path("models/default"))
    parser.add_argument("--data", type=Path, default=Path("assets/myntra-small/test.jsonl"))
    parser.add_argument("--single", type=int, default=100, help="listings timed one by one")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    extractor = Extractor.load(args.checkpoint)
    listings, _ = read_jsonl(args.data)
    for listing in listings[:5]:  # warm-up
        extractor.extract(listing.text, listing.image)
    rows = []
    for label, with_photo in (("with photo", True), ("text only", False)):
        times = []
        for listing in listings[: args.single]:
            started = time.perf_counter()
            extractor.extract(listing.text, listing.image if with_photo else None)
            times.append(1000 * (time.perf_counter() - started))
        rows.append(f"| one listing, {label} | {statistics.median(times):.1f} ms | {percentile(times, 0.95):.1f} ms | {len(times)} |")
    items = [(l.text, l.image) for l in listings]
    started = time.perf_counter()
    extractor.extract_batch(items, batch_size=args.batch_size)
    rate = len(items) / (time.perf_counter() - started)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
          f"{torch.get_num_threads()}, device {extractor.device}")
    print("| measurement | p50 | p95 | n |\n|---|---|---|---|")
    print("\n".join(rows))
    print(f"| batch extraction with photos (batch {args.batch_size}) | {rate:.1f} listings/s | | {len(items)} |")


if __name__ == "__main__":
    main()
