"""Helpers the command-line jobs share: logging, reading data files, loading checkpoints for data."""
from __future__ import annotations

import argparse
import logging
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from dram.data.listings import Listing
from dram.data.readers import read_listings
from dram.errors import CheckpointError, DramInputError
from dram.nn.encoders import stay_offline
from training.options import JobSettings, add_options, settings_from

log = logging.getLogger("training")


def add_checkpoint_arguments(parser: argparse.ArgumentParser) -> None:
    """--checkpoint and the job's options (--device, --threads, --cache-dir), as every job that reads a
    checkpoint takes them."""
    parser.add_argument("--checkpoint", required=True, type=Path)
    add_options(parser, JobSettings)


def open_checkpoint(args: argparse.Namespace) -> tuple[Any, Any, JobSettings]:
    """(model, tokenizer, job settings) for a job given `add_checkpoint_arguments`: the checkpoint on
    --device, with --threads and --encoder-engine applied to the process."""
    from dram.checkpoint import load_checkpoint

    job = settings_from(JobSettings, args)
    job.apply()
    model, tokenizer, _ = load_checkpoint(args.checkpoint, job.device, job.precision, job.encoder_engine)
    return model, tokenizer, job


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def load_data(path: str | Path, what: str) -> list[Listing]:
    """Read a data file in any supported format, log what was skipped, stop clearly if nothing is left."""
    path = Path(path)
    if not path.exists():
        raise SystemExit(f"error: the {what} file {path} does not exist.")
    listings, report = read_listings(path)
    log.info("%s: %s", what, report.summary())
    if not listings:
        raise SystemExit(f"error: no usable listings in {path} ({report.summary()}).")
    return listings


def split_validation(listings: list[Listing], fraction: float = 0.1, *, seed: int,
                     minimum: int = 10) -> tuple[list[Listing], list[Listing]]:
    """A share of the training listings, dealt by `seed` (the training's), kept aside to pick the best
    epoch and stop early. Too few listings to spare (fewer than 2 x minimum) trains on all of them
    without validation."""
    if len(listings) < 2 * minimum:
        return listings, []
    order = list(range(len(listings)))
    random.Random(seed).shuffle(order)
    n_valid = max(minimum, round(fraction * len(listings)))
    held = set(order[:n_valid])
    return ([l for i, l in enumerate(listings) if i not in held], [l for i, l in enumerate(listings) if i in held])


def training_and_held_out(train_path: Path, held_out_path: Path | None, *,
                          seed: int) -> tuple[list[Listing], list[Listing]]:
    """A checkpoint's training listings and the labelled ones to check it on: those of `held_out_path`,
    else the validation split `training.train` kept aside with the checkpoint's `seed` (then the
    training listings are the rest, as it trained on them)."""
    train = load_data(train_path, "train")
    if held_out_path:
        return train, load_data(held_out_path, "held out")
    train, held_out = split_validation(train, seed=seed)
    log.info("checking on the validation split of %s (seed %d): %d listings", train_path, seed, len(held_out))
    return train, held_out


def attribute_set(listings: list[Listing]) -> list[str]:
    """Attributes in the data, most frequent first (a stable order for the checkpoint's label map)."""
    counts = Counter(s.attribute for l in listings for s in l.spans)
    return [a for a, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def check_attributes(model_attributes: list[str], listings: list[Listing], strict: bool = False) -> None:
    """A checkpoint trained on another attribute set: say so plainly instead of scoring nonsense."""
    data_attrs = set(attribute_set(listings))
    unknown = sorted(data_attrs - set(model_attributes))
    if not unknown:
        return
    message = (f"the data has attributes the model was not trained on: {', '.join(unknown)} "
               f"(model: {', '.join(model_attributes)}).")
    if strict or not data_attrs & set(model_attributes):
        raise SystemExit(f"error: {message} Use a checkpoint trained on this attribute set, or retrain.")
    log.warning("%s Their spans are ignored.", message)


def run_cli(main) -> None:
    """Run a job offline, turning the errors users can fix into one clear line instead of a traceback."""
    stay_offline()
    try:
        main()
    except (DramInputError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
