"""Train a DRAM model: `python -m training.train --train A.jsonl --valid B.jsonl --out DIR [--variant dram]`.

`torchrun --nproc-per-node N -m training.train ...` trains the same model on N processes
(DistributedDataParallel; --batch-size stays the global batch); see training/distributed.py.
"""
from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from dram.checkpoint import build_model, pick_device, save_checkpoint
from dram.nn.category_schema import CategorySchema
from dram.nn.config import VARIANTS, DramConfig
from dram.nn.precision import RunSettings
from dram.nn.value_lookup import ValueLookup, cross_fitted
from training import distributed
from training.common import attribute_set, load_data, run_cli, setup_logging, split_validation
from training.familiarity import attach_reference, source_name
from training.loop import EpochCallback, TrainSettings, calibrate_tau, evaluate, fit, prepare, rows_within_budget
from training.options import JobSettings, add_options, options_given, settings_from
from training.value_swaps import with_swapped_copies

log = logging.getLogger("training.train")


MODEL_OPTIONS = ("text_encoder", "image_encoder", "frozen_fraction", "arm_policy", "tau_r", "classifier_pooling",
                 "loss_lambda", "max_tokens", "value_prior", "extend_to_known_values",
                 "category_schema", "span_scorer")  # the DramConfig fields a job may set


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model's options: the variant and decoder (derived settings), then DramConfig's own fields."""
    group = parser.add_argument_group("model (saved in the checkpoint's config.json)")
    group.add_argument("--variant", choices=VARIANTS,
                       help="default: dram, or text-only when no training listing has a photo")
    group.add_argument("--no-image", action="store_true", help="the text-only variant (same as --variant text-only)")
    group.add_argument("--decoder", choices=("arm", "joint"),
                       help="arm: ARM selects attributes, one B-I-O BiLSTM+CRF per attribute (the paper); "
                            "joint: one BiLSTM+CRF over every attribute's tags (default: the variant's; "
                            "joint when no training listing has a photo)")
    group.add_argument("--finetune-image-encoder", action="store_true",
                       help="train the CNN jointly (decodes photos every step: for a GPU)")
    group.add_argument("--attributes", help="comma-separated attribute set (default: those in the training data)")
    add_options(group, DramConfig, MODEL_OPTIONS)


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The training loop's options (TrainSettings) and every job's (JobSettings: --device, --threads, --cache-dir)."""
    add_options(parser.add_argument_group("training"), TrainSettings)
    add_options(parser.add_argument_group("job"), JobSettings)


# Without photos, nothing trainable sits below the language model: its frozen lower half is computed
# once (3 of MiniLM's 6 layers: about 1.5x faster steps on a CPU), the upper half learns at twice
# the paper's rate, and one CRF tags every attribute, with a span scorer voting beside it (the scorer:
# BENCHMARKS.md, "A span scorer beside the CRF"). Chosen on WDC-PAVE's validation split (BENCHMARKS.md,
# open schema); explicit flags win.
TEXT_ONLY_PROFILE = {"variant": "text-only", "decoder": "joint", "frozen_fraction": 0.5, "lr_encoder": 1e-4,
                     "span_scorer": True}


def apply_text_only_profile(args: argparse.Namespace) -> None:
    for name, value in TEXT_ONLY_PROFILE.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    log.info("no training listing has a photo: the text-only model (%s decoder%s, %.0f%% of the encoder frozen, "
             "encoder learning rate %g)", args.decoder, " and span scorer" if args.span_scorer else "",
             100 * args.frozen_fraction, args.lr_encoder)


def train_settings_from(args: argparse.Namespace) -> TrainSettings:
    return settings_from(TrainSettings, args, cache_dir=args.cache_dir)


def config_from(args: argparse.Namespace, attributes: list[str], variant: str | None = None) -> DramConfig:
    variant = variant or ("text-only" if args.no_image else args.variant or "dram")
    decoder = {} if getattr(args, "decoder", None) is None else {"use_arm": args.decoder == "arm"}
    return DramConfig.for_variant(variant, attributes, **decoder, **options_given(DramConfig, args),
                                  freeze_image_encoder=not args.finetune_image_encoder)


def train_model(config: DramConfig, train, valid, settings: TrainSettings, device: str | None = None,
                progress: bool = True, precision: str = RunSettings.precision, calibrate: bool = True,
                on_epoch: EpochCallback | None = None, familiarity_source: str | None = None):
    """Build, prepare data, fit, and with a validation split choose tau_R on it (ARM, `calibrate`) and,
    for a model to be saved, measure where its training listings sit (`training.familiarity`;
    `familiarity_source` names the training data in the warning); returns (model, tokenizer, metrics)."""
    torch.manual_seed(settings.seed)
    model, tokenizer = build_model(config, precision=precision)
    model.to(pick_device(device))
    if config.value_prior:
        model.value_lookup = ValueLookup.from_listings(train)
    if config.category_schema:
        model.schema = CategorySchema.from_listings(train)
    lookups = cross_fitted(train, seed=settings.seed) if config.value_prior else None
    rows, lookups = with_swapped_copies(train, lookups, settings.value_swap, settings.seed,
                                        room=rows_within_budget(len(train), settings))
    if len(rows) > len(train):
        log.info("%d training listings, and %d copies of them with labelled values swapped (--value-swap %g)",
                 len(train), len(rows) - len(train), settings.value_swap)
    train_data = prepare(model, tokenizer, rows, settings.cache_dir, training=settings, lookups=lookups)
    valid_data = prepare(model, tokenizer, valid, settings.cache_dir) if valid else None
    result = fit(model, tokenizer, train_data, valid_data, settings, progress=progress, on_epoch=on_epoch)
    metrics = {"train": {"listings": len(train_data), "swapped_copies": len(rows) - len(train), **result}}
    tau_r = model.config.tau_r
    if valid_data is not None and distributed.is_main():
        if calibrate and config.use_arm:
            calibration = calibrate_tau(model, tokenizer, valid_data, settings)
            tau_r, metrics["valid"], metrics["train"]["tau_r"] = calibration.chosen, calibration.valid, calibration.summary()
        else:
            metrics["valid"] = evaluate(model, tokenizer, valid_data)
        if familiarity_source is not None:
            attach_reference(model, tokenizer, train_data, valid_data, familiarity_source)
    elif distributed.is_main() and familiarity_source is not None:
        log.info("no validation listings: the checkpoint gets no familiarity reference (no unlike-listing warnings)")
    # A new config, not the built one written into: the chosen tau_R and the settings it was trained with.
    model.config = replace(model.config, tau_r=tau_r, train=train_provenance(settings))
    return model, tokenizer, metrics


def train_provenance(settings: TrainSettings, **more: Any) -> dict:
    """The training settings as the checkpoint's config keeps them (JSON: paths as text), plus `more`."""
    return {**asdict(settings), "cache_dir": str(settings.cache_dir), **more}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", required=True, type=Path)
    parser.add_argument("--valid", type=Path, help="validation file (default: a seeded tenth of --train)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--max-train", type=int, help="use at most this many training listings")
    add_model_arguments(parser)
    add_training_arguments(parser)
    args = parser.parse_args()
    setup_logging()
    job = settings_from(JobSettings, args)
    job.apply()
    job.device = distributed.setup(job.device)
    try:
        _train(args, job)
    finally:
        distributed.teardown()


def _train(args: argparse.Namespace, job: JobSettings) -> None:
    train = load_data(args.train, "train")
    if args.max_train:
        train = train[: args.max_train]
    if args.valid:
        valid = load_data(args.valid, "valid")
    else:
        train, valid = split_validation(train, seed=args.seed)
        log.info("no --valid given: %d of the training listings are kept aside for validation", len(valid))
    attributes = args.attributes.split(",") if args.attributes else attribute_set(train)
    if args.variant is None and not args.no_image and not any(l.image for l in train):
        apply_text_only_profile(args)
    config = config_from(args, attributes)
    log.info("training %s on %d listings, attributes: %s", config.variant, len(train), ", ".join(attributes))
    model, tokenizer, metrics = train_model(config, train, valid, train_settings_from(args), job.device,
                                              precision=job.precision, calibrate=args.tau_r is None,
                                              familiarity_source=source_name(args.train.resolve()))
    if not distributed.is_main():
        return  # rank 0 saves; the others are done
    metrics["train"]["processes"] = distributed.world()
    save_checkpoint(model, tokenizer, args.out, metrics)
    summary = metrics.get("valid", {})
    log.info("saved %s  valid TAG-F1 %s", args.out, f"{summary['tag_f1']:.4f}" if summary else "n/a")
    brief = {k: v for k, v in summary.items() if k not in ("per_attribute", "value")}
    if "value" in summary:
        brief["value"] = {k: v for k, v in summary["value"].items() if k != "per_attribute"}
    print(json.dumps({"checkpoint": str(args.out), "valid": brief}))


if __name__ == "__main__":
    run_cli(main)
