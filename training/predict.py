"""Extract attributes for a file of listings: `python -m training.predict --checkpoint DIR --input C.jsonl --output P.jsonl`.

One line per listing: {"id", "spans": [{"start", "end", "attribute", "text", "confidence"}], "attribute_scores"}.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from dram.checkpoint import load_checkpoint
from training.common import load_data, run_cli, setup_logging
from training.loop import DEFAULT_CACHE, predict, prepare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--input", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--tau-r", type=float)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--device")
    args = parser.parse_args()
    setup_logging()
    model, tokenizer, _ = load_checkpoint(args.checkpoint, args.device)
    data = prepare(model, tokenizer, load_data(args.input, "input"), args.cache_dir)
    predictions = predict(model, tokenizer, data, args.tau_r, progress=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("w") as out:
        for listing, (spans, scores) in zip(data.listings, predictions):
            record = {"id": listing.id, "spans": [asdict(s) for s in spans],
                      "attribute_scores": {a: round(v, 4) for a, v in scores.items()}}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"wrote {len(predictions)} predictions to {args.output}")


if __name__ == "__main__":
    run_cli(main)
