"""Extract attributes for a file of listings: `python -m training.predict --checkpoint DIR --input C.jsonl --output P.jsonl`.

One line per listing: {"id", "spans": [{"start", "end", "attribute", "text", "confidence"}], "attribute_scores"}.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from training.common import add_checkpoint_arguments, load_data, open_checkpoint, run_cli, setup_logging
from training.loop import predict, prepare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_checkpoint_arguments(parser)
    parser.add_argument("--input", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--tau-r", type=float)
    args = parser.parse_args()
    setup_logging()
    model, tokenizer, job = open_checkpoint(args)
    listings = load_data(args.input, "input")
    data = prepare(model, tokenizer, listings, job.cache_dir)
    predicted = dict(zip((id(l) for l in data.listings), predict(model, tokenizer, data, args.tau_r, progress=True)))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("w") as out:
        for listing in listings:  # one line per input listing, in order, even for unreadable ones
            record: dict = {"id": listing.id, "spans": [], "attribute_scores": {}}
            if id(listing) in predicted:
                spans, scores = predicted[id(listing)]
                record.update(spans=[s.to_dict() for s in spans],
                              attribute_scores={a: round(v, 4) for a, v in scores.items()})
            else:
                record["error"] = "the text has no words the model can read"
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"wrote {len(listings)} predictions to {args.output}")


if __name__ == "__main__":
    run_cli(main)
