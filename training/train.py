"""Train a DRAM model: `python -m training.train --train A.jsonl --valid B.jsonl --out DIR [--variant dram]`."""
from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from pathlib import Path

import torch

from dram.checkpoint import build_model, pick_device, save_checkpoint
from dram.config import ARM_POLICIES, CLASSIFIER_POOLING, VARIANTS, DramConfig
from dram.value_lookup import ValueLookup
from training.common import attribute_set, load_data, run_cli, setup_logging, split_validation
from training.loop import DEFAULT_CACHE, TrainSettings, evaluate, fit, prepare

log = logging.getLogger("training.train")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", choices=VARIANTS,
                        help="default: dram, or text-only when no training listing has a photo")
    parser.add_argument("--no-image", action="store_true", help="text-only (same as --variant text-only)")
    parser.add_argument("--decoder", choices=("arm", "joint"),
                        help="arm: ARM selects attributes, one B-I-O BiLSTM+CRF per attribute (the paper); "
                             "joint: one BiLSTM+CRF over every attribute's tags (default: the variant's; "
                             "joint when no training listing has a photo)")
    parser.add_argument("--arm-policy", choices=ARM_POLICIES, default=DramConfig.arm_policy)
    parser.add_argument("--tau-r", type=float, default=DramConfig.tau_r)
    parser.add_argument("--classifier-pooling", choices=CLASSIFIER_POOLING, default=DramConfig.classifier_pooling,
                        help="what the attribute classifier reads: [CLS] (the paper) or the mean over tokens")
    parser.add_argument("--loss-lambda", type=float, default=DramConfig.loss_lambda,
                        help="weight of the attribute classifier's BCE in the loss")
    parser.add_argument("--text-encoder", default="minilm", help="'minilm', 'mpnet' (after scripts/install_mpnet.sh) or a local BERT-style folder")
    parser.add_argument("--image-encoder", default="efficientnet-lite0",
                        help="'efficientnet-lite0' or 'torchvision:<arch>:<weights.pth>'")
    parser.add_argument("--finetune-image-encoder", action="store_true",
                        help="train the CNN jointly (decodes photos every step: for a GPU)")
    parser.add_argument("--frozen-fraction", type=float,
                        help="keep the word embeddings and this share of the lower encoder layers as pretrained "
                             f"(default {DramConfig.frozen_fraction}; {TEXT_ONLY_PROFILE['frozen_fraction']} "
                             "when no training listing has a photo)")
    parser.add_argument("--value-prior", action=argparse.BooleanOptionalAction, default=DramConfig.value_prior,
                        help="the decoder also reads which words are values seen in training (a dictionary "
                             "saved with the checkpoint)")
    parser.add_argument("--attributes", help="comma-separated attribute set (default: those in the training data)")
    parser.add_argument("--max-tokens", type=int, default=DramConfig.max_tokens,
                        help="sub-word tokens per window; longer texts are read in overlapping windows")


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=int, help="passes over the data (default: about "
                        f"{TrainSettings.target_steps} steps, {TrainSettings.min_epochs} to {TrainSettings.max_epochs} "
                        "epochs, stopping early on the validation set)")
    parser.add_argument("--patience", type=int, default=TrainSettings.patience,
                        help="stop after this many epochs without a better validation TAG-F1 (0: never)")
    parser.add_argument("--batch-size", type=int, default=TrainSettings.batch_size)
    parser.add_argument("--lr-encoder", type=float, help=f"default {TrainSettings.lr_encoder} "
                        f"({TEXT_ONLY_PROFILE['lr_encoder']} when no training listing has a photo)")
    parser.add_argument("--lr-heads", type=float, default=TrainSettings.lr_heads)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--max-minutes", type=float, help="stop training after this many minutes")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="region feature cache")
    parser.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch")


# Without photos, nothing trainable sits below the language model: its frozen lower half is computed
# once (3 of MiniLM's 6 layers: about 1.5x faster steps on a CPU), the upper half learns at twice
# the paper's rate, and one CRF tags every attribute. Chosen on WDC-PAVE's validation split
# (BENCHMARKS.md, open schema); explicit flags win.
TEXT_ONLY_PROFILE = {"variant": "text-only", "decoder": "joint", "frozen_fraction": 0.5, "lr_encoder": 1e-4}


def apply_text_only_profile(args: argparse.Namespace) -> None:
    for name, value in TEXT_ONLY_PROFILE.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    log.info("no training listing has a photo: the text-only model (%s decoder, %.0f%% of the encoder frozen, "
             "encoder learning rate %g)", args.decoder, 100 * args.frozen_fraction, args.lr_encoder)


def settings_from(args: argparse.Namespace) -> TrainSettings:
    return TrainSettings(epochs=args.epochs, patience=args.patience or None, batch_size=args.batch_size,
                         lr_encoder=args.lr_encoder or TrainSettings.lr_encoder, lr_heads=args.lr_heads,
                         seed=args.seed, max_minutes=args.max_minutes, cache_dir=args.cache_dir)


def config_from(args: argparse.Namespace, attributes: list[str], variant: str | None = None) -> DramConfig:
    variant = variant or ("text-only" if args.no_image else args.variant or "dram")
    decoder = {} if getattr(args, "decoder", None) is None else {"use_arm": args.decoder == "arm"}
    return DramConfig.for_variant(variant, attributes, **decoder, arm_policy=args.arm_policy, tau_r=args.tau_r,
                                  loss_lambda=args.loss_lambda, classifier_pooling=args.classifier_pooling,
                                  text_encoder=args.text_encoder, image_encoder=args.image_encoder,
                                  max_tokens=args.max_tokens,
                                  frozen_fraction=DramConfig.frozen_fraction if args.frozen_fraction is None
                                  else args.frozen_fraction,
                                  value_prior=args.value_prior,
                                  freeze_image_encoder=not args.finetune_image_encoder)


def train_model(config: DramConfig, train, valid, settings: TrainSettings, device: str | None = None,
                progress: bool = True):
    """Build, prepare data, fit; returns (model, tokenizer, metrics)."""
    torch.manual_seed(settings.seed)
    model, tokenizer = build_model(config)
    model.to(pick_device(device))
    if config.value_prior:
        model.value_lookup = ValueLookup.from_listings(train)
    train_data = prepare(model, tokenizer, train, settings.cache_dir, training=True)
    valid_data = prepare(model, tokenizer, valid, settings.cache_dir) if valid else None
    result = fit(model, tokenizer, train_data, valid_data, settings, progress=progress)
    metrics = {"train": {"listings": len(train_data), **result}}
    if valid_data is not None:
        metrics["valid"] = evaluate(model, tokenizer, valid_data)
    config.train = {**asdict(settings), "cache_dir": str(settings.cache_dir)}
    return model, tokenizer, metrics


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
    if args.threads:
        torch.set_num_threads(args.threads)
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
    model, tokenizer, metrics = train_model(config, train, valid, settings_from(args), args.device)
    save_checkpoint(model, tokenizer, args.out, metrics)
    summary = metrics.get("valid", {})
    log.info("saved %s  valid TAG-F1 %s", args.out, f"{summary['tag_f1']:.4f}" if summary else "n/a")
    brief = {k: v for k, v in summary.items() if k not in ("per_attribute", "value")}
    if "value" in summary:
        brief["value"] = {k: v for k, v in summary["value"].items() if k != "per_attribute"}
    print(json.dumps({"checkpoint": str(args.out), "valid": brief}))


if __name__ == "__main__":
    run_cli(main)
