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

from dram.data.listings import Listing
from dram.data.readers import read_listing_file
from dram.nn.model import DramModel
from training.common import add_checkpoint_arguments, open_checkpoint, run_cli, setup_logging
from training.loop import ListingPrediction, predict, prepare
from training.options import DEFAULT_CACHE, add_options, settings_from

NO_WORDS = "the text has no words the model can read"


@dataclass
class PredictSettings:
    engine: str = field(default="local", metadata={
        "help": "local: this process; ray: a Ray actor pool (local Ray, or RAY_ADDRESS)", "choices": ("local", "ray")})
    workers: int | None = field(default=None, metadata={
        "help": "ray: actors", "default_help": "one per GPU, else one per two CPUs"})
    batch_size: int = field(default=64, metadata={
        "help": "listings per model call (a listing longer than the model's window counts once per window)"})


def predict_listings(model: DramModel, tokenizer, listings: list[Listing], tau_r: float | None = None,
                     batch_size: int = 64, cache_dir: Path | None = DEFAULT_CACHE,
                     progress: bool = False) -> list[ListingPrediction | None]:
    """Each listing's spans and attribute scores, in order (None for one without readable words),
    decoded as the app decodes them (`dram.decoding`)."""
    data = prepare(model, tokenizer, listings, cache_dir)
    predicted = dict(zip(map(id, data.listings), predict(model, tokenizer, data, tau_r, batch_size, progress)))
    return [predicted.get(id(listing)) for listing in listings]


def prediction_record(listing_id: str | None, prediction: ListingPrediction | None, problem: str = "") -> dict:
    """One output line: {"id", "spans", "attribute_scores"} (scores to 4 places, as the app gives them),
    with an "error" instead for a row that could not be read (`problem`) or a listing the model could not read."""
    record: dict = {"id": listing_id, "spans": [], "attribute_scores": {}}
    if prediction is None:
        record["error"] = problem or NO_WORDS
        return record
    spans, scores = prediction
    record.update(spans=[s.to_dict() for s in spans], attribute_scores={a: round(v, 4) for a, v in scores.items()})
    return record


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
