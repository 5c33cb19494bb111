"""What a text encoder or a decoder costs on a CPU, side by side in one run: CPU time of one
training step (16 listings, the text-only profile: lower half of the encoder frozen and cached) and
of extracting one listing, for freshly built models over the same listings.

    python -m benchmarks.bench_cost --data ../shared/data/wdc-pave/train.jsonl \
        --models minilm/joint,minilm/arm-dynet,minilm/arm-prototype,minilm/arm-bert,mpnet/joint

CPU time of the process with one torch thread (time.process_time), not wall time: it is what the
work costs one core, whatever else the machine runs; alone on one core it is the wall time.
Extraction is timed for the joint decoder only: an untrained ARM selects about half of the
attributes, so its decoding time would say nothing about a trained one.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from dram.checkpoint import build_model
from dram.data.readers import read_listings
from dram.inference import Extractor
from dram.nn.config import DramConfig
from dram.nn.value_lookup import ValueLookup
from training.common import attribute_set
from training.loop import TrainSettings, make_batch, prepare


def fresh_model(spec: str, attributes: list[str], lookup: ValueLookup):
    encoder, decoder = spec.split("/")
    arm = decoder.startswith("arm")
    config = DramConfig.for_variant("text-only", attributes, use_arm=arm, text_encoder=encoder, frozen_fraction=0.5,
                                    **({"arm_policy": decoder.split("-", 1)[1]} if arm else {}))
    torch.manual_seed(0)
    model, tokenizer = build_model(config)
    model.value_lookup = lookup
    return model, tokenizer


def cpu_seconds(work) -> float:
    started = time.process_time()
    work()
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="labelled listings (attributes and steps)")
    parser.add_argument("--models", default="minilm/joint,minilm/arm-dynet,mpnet/joint",
                        help="comma-separated encoder/decoder: decoder joint or arm-<policy>")
    parser.add_argument("--listings", type=int, default=32, help="listings extracted one by one")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    listings = read_listings(args.data)[0]
    attributes = attribute_set(listings)
    lookup = ValueLookup.from_listings(listings)
    print(f"{platform.machine()}, 1 torch thread, CPU time; {len(attributes)} attributes of {args.data.name}")
    print("| encoder / decoder | training step of 16 listings, CPU s | extraction of one listing, CPU ms (p50) |")
    print("|---|--:|--:|")
    for spec in args.models.split(","):
        model, tokenizer = fresh_model(spec, attributes, lookup)
        data = prepare(model, tokenizer, listings[: 16 * args.steps], None, training=TrainSettings())
        model.train()
        steps = []
        for step in range(args.steps):
            batch = make_batch(data, list(range(16 * step, min(16 * (step + 1), len(data.texts)))),
                               tokenizer.pad_token_id or 0)
            steps.append(cpu_seconds(lambda: model.loss(model.encode(batch), batch)[0].backward()))
            model.zero_grad(set_to_none=True)
        extract = "-"
        if not model.config.use_arm:
            extractor = Extractor(model.eval(), tokenizer)
            extractor.extract(listings[0].text)
            times = [1000 * cpu_seconds(lambda: extractor.extract(l.text)) for l in listings[: args.listings]]
            extract = f"{statistics.median(times):.0f}"
        print(f"| {spec} | {statistics.median(steps):.2f} | {extract} |", flush=True)


if __name__ == "__main__":
    main()
