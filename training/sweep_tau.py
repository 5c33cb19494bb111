"""TAG-F1 and CLS-F1 across tau_R values for one checkpoint (the paper's Figure 6).

    python -m training.sweep_tau --checkpoint DIR --data C.jsonl [--taus 0.1,0.2,...,0.9]

The encoders run once per batch; only ARM and the CRF run again for each tau_R.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from dram.nn.model import DramModel
from training.common import (
    add_checkpoint_arguments,
    check_attributes,
    load_data,
    open_checkpoint,
    run_cli,
    setup_logging,
)
from training.loop import PreparedData, decode_batch, encoded_batches, merge_windows, prepare, score


def sweep(model: DramModel, tokenizer, data: PreparedData, taus: list[float], batch_size: int = 64) -> dict[float, dict]:
    predictions: dict[float, list] = {tau: [] for tau in taus}
    for index, encoded in encoded_batches(model, tokenizer, data, batch_size, progress=True, desc="sweep"):
        for tau in taus:
            predictions[tau] += decode_batch(model, data, index, encoded, tau)
    return {tau: score(model, data, merge_windows(data, predictions[tau]), tau) for tau in taus}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_checkpoint_arguments(parser)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--taus", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9")
    args = parser.parse_args()
    setup_logging()
    model, tokenizer, job = open_checkpoint(args)
    listings = load_data(args.data, "data")
    check_attributes(model.config.attributes, listings)
    data = prepare(model, tokenizer, listings, job.cache_dir)
    results = sweep(model, tokenizer, data, [float(t) for t in args.taus.split(",")])
    print("| tau_R | CLS-F1 | TAG-F1 | P | R |\n|---|---|---|---|---|")
    for tau, s in results.items():
        print(f"| {tau:.2f} | {100 * s['cls_f1']:.2f} | {100 * s['tag_f1']:.2f} | "
              f"{100 * s['precision']:.2f} | {100 * s['recall']:.2f} |")


if __name__ == "__main__":
    run_cli(main)
