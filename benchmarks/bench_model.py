"""Extraction speed of a checkpoint on this machine: one listing with photo (p50/p95) and batch throughput.

    python -m benchmarks.bench_model [--checkpoint models/default] [--data assets/myntra-small/test.jsonl]
        [--chunks 32,8]   # batch throughput for each CNN chunk size, side by side in one run
        [--device cuda] [--precision bf16]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from dram.data.readers import read_listings
from dram.inference import Extractor
from training.options import JobSettings, add_options


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=Path("models/default"))
    parser.add_argument("--data", type=Path, default=Path("assets/myntra-small/test.jsonl"))
    parser.add_argument("--single", type=int, default=100, help="listings timed one by one")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--chunks", default=None,
                        help="comma-separated CNN chunk sizes to compare in batch extraction (default: the encoder's)")
    add_options(parser, JobSettings, ("device", "precision"))
    args = parser.parse_args()
    extractor = Extractor.load(args.checkpoint, args.device, args.precision)
    listings, _ = read_listings(args.data, "jsonl")
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
    cnn = extractor.model.image_encoder
    chunks = [int(c) for c in args.chunks.split(",")] if args.chunks else [cnn.chunk_size if cnn else 0]
    for chunk in chunks:
        if cnn is not None:
            cnn.chunk_size = chunk
        started = time.perf_counter()
        extractor.extract_batch(items, batch_size=args.batch_size)
        rate = len(items) / (time.perf_counter() - started)
        rows.append(f"| batch extraction with photos (batch {args.batch_size}, CNN chunk {chunk}) | "
                    f"{rate:.1f} listings/s | | {len(items)} |")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
          f"{torch.get_num_threads()}, device {extractor.device}, precision {args.precision}")
    print("| measurement | p50 | p95 | n |\n|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
