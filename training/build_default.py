"""Build the default model the app loads: `python -m training.build_default [--out models/default]`.

Trains DRAM (MiniLM + EfficientNet-Lite0, both from installed packages) on the bundled real
Myntra subset in assets/myntra-small, then extracts one bundled example to show it works.
About 5 minutes on 2 CPU cores (4.9 measured from a fresh clone, BENCHMARKS.md).
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Callable

from dram.checkpoint import save_checkpoint
from dram.inference import Extractor
from dram.nn.config import DramConfig
from dram.nn.precision import RunSettings
from dram.paths import BUNDLE, DEFAULT_CHECKPOINT, ROOT
from training.common import attribute_set, load_data, run_cli, setup_logging
from training.loop import EpochCallback, TrainSettings, evaluate, prepare
from training.options import DEFAULT_CACHE, JobSettings, add_options, settings_from
from training.train import train_model

log = logging.getLogger("training.build_default")
DEFAULT_OUT = DEFAULT_CHECKPOINT  # the folder the app loads by default


def is_built(out: Path = DEFAULT_OUT) -> bool:
    return (out / "model.safetensors").exists()


def _quiet(stage: str) -> None:
    """The command line needs no stage announcements: its log and progress bars say it."""


def build(out: Path = DEFAULT_OUT, data: Path = BUNDLE, epochs: int | None = None, max_train: int | None = None,
          seed: int = TrainSettings.seed, cache_dir: Path = DEFAULT_CACHE, device: str | None = None,
          precision: str = RunSettings.precision, on_stage: Callable[[str], None] = _quiet,
          on_epoch: EpochCallback | None = None) -> dict:
    """Train, test and save the default model. `on_stage` hears "preparing", "testing" and "saving" begin and
    `on_epoch` follows the training in between: what the app shows while it builds its model."""
    started = time.monotonic()
    on_stage("preparing")
    train = load_data(data / "train.jsonl", "train")[:max_train]
    valid = load_data(data / "valid.jsonl", "valid")
    config = DramConfig.for_variant("dram", attribute_set(train))
    settings = TrainSettings(epochs=epochs, seed=seed, cache_dir=cache_dir)
    model, tokenizer, metrics = train_model(config, train, valid, settings, device, precision=precision,
                                            on_epoch=on_epoch, familiarity_source=f"{data.name}/train.jsonl")
    on_stage("testing")
    test = load_data(data / "test.jsonl", "test")
    metrics["test"] = evaluate(model, tokenizer, prepare(model, tokenizer, test, cache_dir))
    on_stage("saving")
    metrics["build_minutes"] = (time.monotonic() - started) / 60
    metrics["data"] = str(data.relative_to(ROOT) if data.is_relative_to(ROOT) else data)
    save_checkpoint(model, tokenizer, out, metrics)
    log.info("default model saved to %s in %.1f minutes; test TAG-F1 %.4f", out, metrics["build_minutes"],
             metrics["test"]["tag_f1"])
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--data", type=Path, default=BUNDLE, help="folder with train/valid/test.jsonl")
    parser.add_argument("--max-train", type=int, help="use at most this many training listings")
    add_options(parser, TrainSettings, ("epochs", "seed"))
    add_options(parser, JobSettings)
    parser.add_argument("--if-missing", action="store_true", help="do nothing when the model already exists")
    args = parser.parse_args()
    setup_logging()
    settings_from(JobSettings, args).apply()
    if args.if_missing and is_built(args.out):
        log.info("%s exists; not rebuilding (drop --if-missing to rebuild)", args.out)
    else:
        build(args.out, args.data, args.epochs, args.max_train, args.seed, args.cache_dir, args.device, args.precision)
    example = load_data(args.data / "test.jsonl", "example")[0]
    extraction = Extractor.load(args.out, args.device, args.precision).extract(example.text, example.image)
    print(json.dumps({"example": example.text, **extraction.to_dict()}, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    run_cli(main)
