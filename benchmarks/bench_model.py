"""Extraction speed of a checkpoint, every engine side by side in one process, against the fp32 floor.

    python -m benchmarks.bench_model [--checkpoint models/default] [--data assets/myntra-small/test.jsonl]
        [--engines torch:fp32,torch:bf16,onnx,onnx-int8,auto] [--threads 2] [--single 100] [--warmup 20]
        [--chunks 32,8]   # batch throughput for each CNN chunk size of the torch engines
        [--device cuda]   # on a GPU: --engines torch:fp32,torch:auto

The floor is the two encoders' bare fp32 forward passes (the torch CNN on the listing's photo tensor,
the torch text encoder on its token ids) under `inference_mode`, timed on the same listings as the
rest. Per engine: one listing at a time with its photo, text only and with the photo as a 1000x1000
JPEG (p50/p95 over `--single` listings after `--warmup`), batch extraction with photos of every
listing in `--data` (listings/s after one warm-up batch; one batch per core as `extract_batch` runs
by default, and one batch at a time on all the cores), and against the torch fp32 batch run the
share of listings with the same spans, the largest ARM score difference and TAG-F1 on the data's
gold spans. The machine line gives the CPU, its bf16/int8 instruction flags and the load average
before and after, since timings on a shared machine are only indicative.
"""
from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from PIL import Image

from dram.data.images import load_image
from dram.data.listings import Listing
from dram.data.readers import read_listings
from dram.inference import Extraction, Extractor
from dram.metrics import ExtractionScorer
from dram.nn.batching import collate
from training.options import JobSettings, add_options

ENGINES = "torch:fp32,torch:bf16,onnx,onnx-int8,auto"
FLAGS = ("avx512_bf16", "amx_bf16", "avx512_vnni", "avx_vnni", "amx_int8")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def machine_line() -> str:
    """The CPU's model, the bf16/int8 instructions it has, and the cores torch may use."""
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    have = ", ".join(f for f in FLAGS if f in flags) or "none"
    return f"{model}; bf16/int8 flags: {have}; {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def timed(run: Callable[[object], object], inputs: list, warmup: int) -> list[float]:
    """Milliseconds of `run` on each input, after `warmup` untimed calls (cycling through the inputs)."""
    for i in range(warmup):
        run(inputs[i % len(inputs)])
    times = []
    for item in inputs:
        started = time.perf_counter()
        run(item)
        times.append(1000 * (time.perf_counter() - started))
    return times


def row(label: str, times: list[float]) -> str:
    return f"| {label} | {statistics.median(times):.1f} ms | {percentile(times, 0.95):.1f} ms | {len(times)} |"


def floor_times(extractor: Extractor, listings: list[Listing], warmup: int) -> list[float]:
    """The bare fp32 torch encoders on each listing's tensors: the CNN on its photo, BERT on its ids."""
    model = extractor.model
    inputs = []
    for listing in listings:
        [windows], _ = extractor._prepare_texts([listing.text])
        pixels = model.image_encoder.preprocess(load_image(listing.image), extractor.config.image_size)[None]
        batch = collate(windows[:1], [True], pixels=pixels, pad_id=extractor.tokenizer.pad_token_id or 0)
        inputs.append((pixels, batch.input_ids, batch.attention_mask.long()))

    def bare(tensors: tuple) -> None:
        pixels, ids, mask = tensors
        model.image_encoder(pixels)
        model.text_encoder(input_ids=ids, attention_mask=mask)

    with torch.inference_mode():
        return timed(bare, inputs, warmup)


def big_photos(listings: list[Listing], folder: Path, side: int = 1000) -> list[Path]:
    """Each listing's photo resized to side x side and saved as a JPEG, as a phone or studio shot comes."""
    paths = []
    for listing in listings:
        path = folder / f"{listing.id}.jpg"
        load_image(listing.image).resize((side, side), Image.BICUBIC).save(path, quality=90)
        paths.append(path)
    return paths


def spans_of(extraction: Extraction) -> set[tuple[int, int, str]]:
    return {(s.start, s.end, s.attribute) for s in extraction.spans}


def agreement(reference: list[Extraction], other: list[Extraction]) -> tuple[float, float]:
    """(share of listings with the same spans as `reference`, largest ARM score difference)."""
    same = sum(spans_of(a) == spans_of(b) for a, b in zip(reference, other)) / len(reference)
    gap = max(abs(a.attribute_scores[k] - b.attribute_scores[k]) for a, b in zip(reference, other)
              for k in a.attribute_scores)
    return same, gap


def tag_f1(listings: list[Listing], extractions: list[Extraction], attributes: list[str]) -> float:
    scorer = ExtractionScorer()
    for listing, extraction in zip(listings, extractions):
        gold = {(s.start, s.end, s.attribute) for s in listing.spans if s.attribute in attributes}
        scorer.add(gold, spans_of(extraction), set(extraction.selected))
    return scorer.summary()["tag_f1"]


def batch_rate(extractor: Extractor, items: list, batch_size: int, workers: int | None = None) -> tuple[float, list]:
    # Warm-up: kernels, caches and the one-thread sessions, a batch for each core.
    extractor.extract_batch(items[:batch_size * os.cpu_count()], batch_size=batch_size, workers=workers)
    started = time.perf_counter()
    results = extractor.extract_batch(items, batch_size=batch_size, workers=workers)
    return len(items) / (time.perf_counter() - started), results


def batch_variants(extractor: Extractor, chunks: str | None) -> list[tuple[str, Callable[[], None], int | None]]:
    """The batch run's ways: one batch per core (the default), then one batch at a time on all the
    cores; for the torch engine, each of the CNN's chunk sizes `--chunks` too."""
    cnn = extractor.model.image_encoder
    ways = [(", one batch per core", lambda: None, None), (", one batch at a time on all the cores", lambda: None, 1)]
    if extractor.model.onnx is None and chunks and cnn is not None:
        ways += [(f", CNN chunk {c}, one batch per core", lambda c=int(c): setattr(cnn, "chunk_size", c), None)
                 for c in chunks.split(",")]
    return ways


def measure(extractor: Extractor, listings: list[Listing], big: list[Path], args: argparse.Namespace) -> tuple[list[str], list]:
    """One engine's rows, and its batch extractions for the comparison with fp32."""
    few = listings[: args.single]
    with_photo = timed(lambda l: extractor.extract(l.text, l.image), few, args.warmup)
    text_only = timed(lambda l: extractor.extract(l.text), few, args.warmup)
    large = timed(lambda pair: extractor.extract(pair[0].text, pair[1]), list(zip(few, big)), min(args.warmup, len(big)))
    rows = [row("one listing with photo", with_photo), row("one listing, text only", text_only),
            row("one listing, 1000x1000 JPEG photo", large)]
    items = [(l.text, l.image) for l in listings]
    results = []
    for label, configure, workers in batch_variants(extractor, args.chunks):
        configure()
        rate, batch_results = batch_rate(extractor, items, args.batch_size, workers)
        results = results or batch_results  # the default way's, for the comparisons
        rows.append(f"| batch with photos (batch {args.batch_size}{label}) | {rate:.1f} listings/s | | {len(items)} |")
    return rows, results


def engine_report(spec: str, args: argparse.Namespace, listings: list[Listing], big: list[Path],
                  reference: list | None) -> tuple[list[str], list]:
    engine, _, precision = spec.partition(":")
    extractor = Extractor.load(args.checkpoint, args.device, precision or "auto", engine)
    chosen = extractor.model.onnx.engine if extractor.model.onnx is not None else "torch"
    rows, results = measure(extractor, listings, big, args)
    quality = f"TAG-F1 {100 * tag_f1(listings, results, extractor.attributes):.2f}"
    if reference is not None:
        same, gap = agreement(reference, results)
        quality += f"; against torch fp32: the same spans on {100 * same:.1f}% of {len(results)}, ARM scores at most {gap:.4f} apart"
    header = [f"\n**{spec}** (runs: {chosen}, precision {precision or 'auto'}; {quality})", ""]
    return header + ["| measurement | p50 | p95 | n |", "|---|---|---|---|"] + rows, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=Path("models/default"))
    parser.add_argument("--data", type=Path, default=Path("assets/myntra-small/test.jsonl"))
    parser.add_argument("--engines", default=ENGINES, help="engine[:precision] to compare, comma-separated; "
                        "the first is the reference for the span agreement (default: %(default)s)")
    parser.add_argument("--single", type=int, default=100, help="listings timed one by one")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls before each timed series")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--chunks", default=None, help="CNN chunk sizes to compare in the torch engine's batch run")
    add_options(parser, JobSettings, ("device", "threads"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads or 2)
    listings, _ = read_listings(args.data, "jsonl")
    listings = [l for l in listings if l.image is not None]
    load_before = os.getloadavg()
    lines, reference = [], None
    with tempfile.TemporaryDirectory() as folder:
        big = big_photos(listings[: args.single], Path(folder))
        fp32 = Extractor.load(args.checkpoint, args.device, "fp32", "torch")
        floor = floor_times(fp32, listings[: args.single], args.warmup)
        del fp32
        for spec in args.engines.split(","):
            rows, results = engine_report(spec, args, listings, big, reference)
            lines += rows
            reference = reference if reference is not None else results
            gc.collect()
    print(f"machine: {machine_line()}; load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after")
    print("\n| the fp32 floor: bare CNN + text encoder forward passes | p50 | p95 | n |\n|---|---|---|---|")
    print(row("floor, one listing with photo", floor))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
