"""TAG-F1 and CLS-F1 across tau_R values for one checkpoint (the paper's Figure 6).

    python -m training.sweep_tau --checkpoint DIR --data C.jsonl [--taus 0.1,0.2,...,0.9]

The encoders run once per batch; only ARM and the CRF run again for each tau_R.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from training.common import (
    add_checkpoint_arguments,
    check_attributes,
    load_data,
    open_checkpoint,
    run_cli,
    setup_logging,
)
from training.loop import TAU_GRID, prepare, sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_checkpoint_arguments(parser)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--taus", default=",".join(map(str, TAU_GRID)))
    args = parser.parse_args()
    setup_logging()
    model, tokenizer, job = open_checkpoint(args)
    listings = load_data(args.data, "data")
    check_attributes(model.config.attributes, listings)
    data = prepare(model, tokenizer, listings, job.cache_dir)
    results = sweep(model, tokenizer, data, [float(t) for t in args.taus.split(",")], progress=True)
    print("| tau_R | CLS-F1 | TAG-F1 | P | R |\n|---|---|---|---|---|")
    for tau, s in results.items():
        print(f"| {tau:.2f} | {100 * s['cls_f1']:.2f} | {100 * s['tag_f1']:.2f} | "
              f"{100 * s['precision']:.2f} | {100 * s['recall']:.2f} |")


if __name__ == "__main__":
    run_cli(main)
