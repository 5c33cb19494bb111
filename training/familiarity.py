"""A checkpoint's familiarity reference (dram.familiarity) from its own training listings, the threshold
from its validation listings. Every job that saves a checkpoint calls `attach_reference`;
`python -m training.familiarity --checkpoint DIR --train FILE [--valid FILE]` adds the reference to a
checkpoint saved before it existed (without --valid: the seeded tenth `training.train` kept aside).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
from collections import Counter
from pathlib import Path

import numpy as np

from dram.data.listings import Listing
from dram.familiarity import REFERENCE_FILE, FamiliaritySettings, build_reference, listing_embedding
from dram.nn.model import DramModel
from training.common import add_checkpoint_arguments, open_checkpoint, run_cli, setup_logging, training_and_held_out
from training.loop import PreparedData, TrainSettings, encoded_batches, prepare

log = logging.getLogger("training.familiarity")


def listing_embeddings(model: DramModel, tokenizer, data: PreparedData) -> np.ndarray:
    """(listings, H): each listing of `data` where the encoder puts it, as the Extractor computes it."""
    rows: list[np.ndarray] = []
    for _, encoded in encoded_batches(model, tokenizer, data, desc="familiarity"):
        rows += list(encoded.pooled.float().cpu().numpy())
    windows: list[list[np.ndarray]] = [[] for _ in data.listings]
    for row, owner in zip(rows, data.listing_of):
        windows[owner].append(row)
    return np.stack([listing_embedding(np.stack(w)) for w in windows])


def source_name(path: Path) -> str:
    """A data file as the warning names it: its folder and name ('myntra-small/train.jsonl')."""
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def describe(listings: list[Listing], source: str) -> str:
    """What the model learned from, in a merchandiser's words: '3,000 listings of train.jsonl, mostly Apparel, ...'."""
    words = f"{len(listings):,} listings of {source}"
    categories = Counter(c for c in (l.category() for l in listings) if c)
    if categories:
        top = [name for name, _ in categories.most_common(3)]
        words += ", mostly " + (", ".join(top[:-1]) + " and " + top[-1] if len(top) > 1 else top[0])
    return words


def attach_reference(model: DramModel, tokenizer, train: PreparedData, valid: PreparedData, source: str,
                     settings: FamiliaritySettings | None = None) -> None:
    """Set `model.familiarity` from the prepared training and validation data (saved with the checkpoint)."""
    model.familiarity = build_reference(listing_embeddings(model, tokenizer, train),
                                        listing_embeddings(model, tokenizer, valid),
                                        describe(train.listings, source), settings)
    log.info("familiarity reference: %d training listings kept, threshold %.4f (the %.0f%% quantile of %d "
             "validation listings)", len(model.familiarity.points), model.familiarity.threshold,
             100 * model.familiarity.settings.quantile, len(valid))


def add_reference(model: DramModel, tokenizer, checkpoint: Path, train: list[Listing], valid: list[Listing],
                  source: str, cache_dir: Path | None = None) -> dict:
    """Compute the reference of `model`, loaded from `checkpoint`, and write it into that folder
    (atomically: a reader sees the old file or the new one); returns a summary."""
    attach_reference(model, tokenizer, prepare(model, tokenizer, train, cache_dir),
                     prepare(model, tokenizer, valid, cache_dir), source)
    partial = checkpoint / f".{REFERENCE_FILE}.partial"
    model.familiarity.save(partial)
    os.replace(partial, checkpoint / REFERENCE_FILE)
    return {"checkpoint": str(checkpoint), "threshold": model.familiarity.threshold,
            "reference_listings": len(model.familiarity.points), "learned_from": model.familiarity.learned_from}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_checkpoint_arguments(parser)
    parser.add_argument("--train", required=True, type=Path, help="the data file the checkpoint was trained on")
    parser.add_argument("--valid", type=Path,
                        help="its validation file (default: the seeded tenth of --train that training.train kept aside)")
    args = parser.parse_args()
    setup_logging()
    model, tokenizer, job = open_checkpoint(args)
    train, valid = training_and_held_out(args.train, args.valid, seed=model.config.train.get("seed", TrainSettings.seed))
    print(json.dumps(add_reference(model, tokenizer, args.checkpoint, train, valid, source_name(args.train.resolve()),
                                   job.cache_dir)))


if __name__ == "__main__":
    run_cli(main)
