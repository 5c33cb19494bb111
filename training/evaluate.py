"""Evaluate a checkpoint: `python -m training.evaluate --checkpoint DIR --data C.jsonl [--json OUT]`.

Prints CLS-F1, TAG-F1, precision and recall, overall and per attribute, and the value-level slot
metric of the attribute-extraction literature (each labelled attribute answered by the most
confident extracted value; n/a labels count as slots too).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from dram.metrics import format_report, format_slot_report
from training.common import add_checkpoint_arguments, check_attributes, load_data, open_checkpoint, run_cli, setup_logging
from training.loop import evaluate, prepare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_checkpoint_arguments(parser)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--tau-r", type=float, help="threshold (default: the checkpoint's)")
    parser.add_argument("--json", type=Path, help="also write the metrics to this file")
    parser.add_argument("--ignore-photos", "--no-image", action="store_true", dest="ignore_photos",
                        help="read the text only, as if the listings had no photos (--no-image: the old name)")
    parser.add_argument("--min-colour-words", type=int,
                        help="only listings whose title has at least this many colour words (Myntra's meta field)")
    args = parser.parse_args()
    setup_logging()
    model, tokenizer, job = open_checkpoint(args)
    listings = load_data(args.data, "data")
    if args.min_colour_words:
        listings = [l for l in listings if l.meta.get("n_colour_words", 0) >= args.min_colour_words]
        if not listings:
            raise SystemExit("error: no listing has that many colour words (is this Myntra data from prepare_myntra?)")
    check_attributes(model.config.attributes, listings)
    data = prepare(model, tokenizer, listings, job.cache_dir, use_images=not args.ignore_photos)
    summary = evaluate(model, tokenizer, data, args.tau_r, progress=True)
    print(format_report(summary))
    print()
    print(format_slot_report(summary["value"]))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    run_cli(main)
