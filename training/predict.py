"""Extract attributes for a file of listings: `python -m training.predict --checkpoint DIR --input C.jsonl --output P.jsonl`.

One line per listing: {"id", "spans": [{"start", "end", "attribute", "text", "confidence"}], "attribute_scores"};
a row that cannot be read keeps its line, with "error" saying why.
`--engine ray` spreads a catalogue (a file, folder or glob of JSONL/CSV/Parquet) over a Ray actor
pool and writes one shard per input file into the --output folder (see training/ray_predict.py).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

from dram.data.readers import read_listing_file
from training.common import add_checkpoint_arguments, open_checkpoint, run_cli, setup_logging
from training.options import add_options, settings_from
from training.predictions import predict_listings, prediction_record


@dataclass
class PredictSettings:
    engine: str = field(default="local", metadata={
        "help": "local: this process; ray: a Ray actor pool (local Ray, or RAY_ADDRESS)", "choices": ("local", "ray")})
    workers: int | None = field(default=None, metadata={
        "help": "ray: actors", "default_help": "one per GPU, else one per two CPUs"})
    batch_size: int = field(default=64, metadata={
        "help": "listings per model call (a listing longer than the model's window counts once per window)"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_checkpoint_arguments(parser)
    parser.add_argument("--input", required=True,
                        help="a listing file; with --engine ray also a folder or a glob of JSONL/CSV/Parquet files")
    parser.add_argument("--output", required=True, type=Path,
                        help="the predictions file; with --engine ray a folder of shards, one per input file")
    parser.add_argument("--tau-r", type=float, help="threshold (default: the checkpoint's)")
    add_options(parser, PredictSettings)
    args = parser.parse_args()
    setup_logging()
    run = settings_from(PredictSettings, args)
    if run.engine == "ray":
        from training.ray_predict import predict_on_ray

        counts = predict_on_ray(args.checkpoint, args.input, args.output, workers=run.workers,
                                batch_size=run.batch_size, device=args.device, tau_r=args.tau_r,
                                precision=args.precision)
        print(f"wrote {counts['listings']} predictions in {counts['written']} shards to {args.output}"
              + (f"; {counts['skipped']} shards were already there" if counts["skipped"] else ""))
        return
    model, tokenizer, job = open_checkpoint(args)
    read = read_listing_file(args.input)
    predictions = iter(predict_listings(model, tokenizer, read.listings, args.tau_r, run.batch_size, job.cache_dir,
                                        progress=True))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("w") as out:
        for row in read.rows:  # one line per row of the input, in order, even an unusable one (with the reason)
            prediction = next(predictions) if row.listing is not None else None
            out.write(json.dumps(prediction_record(row.id or None, prediction, row.problem), ensure_ascii=False) + "\n")
    print(f"wrote {len(read.rows)} predictions to {args.output}")


if __name__ == "__main__":
    run_cli(main)
