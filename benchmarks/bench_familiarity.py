"""How often the unlike-the-training-data warning (dram.familiarity) fires, through the Extractor as the app runs it.

    python -m benchmarks.bench_familiarity --myntra-model models/default \
        [--wdc-model runs/wdc-large-s13] --wdc-test ../shared/data/wdc-pave/test.jsonl [--json out.json]

The issue's three rates: (a) false alarms of the Myntra model on the bundled Myntra test split (its
listings with their photos, as bundled; and the same titles without photos), (b) WDC-PAVE test offers
flagged by the Myntra model from their titles alone, (c) WDC-PAVE test offers (title and description,
as trained) flagged by a model trained on WDC-PAVE train_large. Both checkpoints need their
familiarity reference (training makes it; `python -m training.familiarity` adds it to an older one).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from dram.data.readers import read_listings
from dram.inference import Extractor, ImageInput
from dram.paths import BUNDLE

BOUNDS = {"a": ("<=", 0.02), "b": (">=", 0.90), "c": ("<=", 0.05)}


def flagged_share(extractor: Extractor, items: list[tuple[str, ImageInput]], foreign: bool) -> dict:
    """Share of the listings the Extractor warns about, how many it read, and the texts it got wrong
    (flagged in-domain listings, unflagged `foreign` ones)."""
    started = time.monotonic()
    results = [r for r in extractor.extract_batch(items, batch_size=32) if not isinstance(r, Exception)]
    flags = [r.unfamiliar for r in results]
    if any(flag is None for flag in flags):
        raise SystemExit(f"{extractor.path} has no familiarity reference: add it with python -m training.familiarity.")
    return {"listings": len(flags), "flagged": sum(flags), "share": sum(flags) / len(flags),
            "seconds": round(time.monotonic() - started, 1),
            "wrong": [r.text[:120] for r in results if r.unfamiliar != foreign]}


def wdc_titles(path: Path) -> list[str]:
    return [json.loads(line)["input_title"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--myntra-model", type=Path, required=True, help="a checkpoint trained on assets/myntra-small")
    parser.add_argument("--wdc-model", type=Path, help="a checkpoint trained on WDC-PAVE train_large (without: no c)")
    parser.add_argument("--wdc-test", type=Path, required=True)
    parser.add_argument("--myntra-test", type=Path, default=BUNDLE / "test.jsonl")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    myntra_test, _ = read_listings(args.myntra_test)
    wdc_test, _ = read_listings(args.wdc_test)
    myntra = Extractor.load(args.myntra_model, "cpu")
    rates = {
        "a": flagged_share(myntra, [(l.text, l.image) for l in myntra_test], foreign=False),
        "a without photos": flagged_share(myntra, [(l.text, None) for l in myntra_test], foreign=False),
        "b": flagged_share(myntra, [(title, None) for title in wdc_titles(args.wdc_test)], foreign=True),
    }
    del myntra
    if args.wdc_model:
        wdc = Extractor.load(args.wdc_model, "cpu")
        rates["c"] = flagged_share(wdc, [(l.text, None) for l in wdc_test], foreign=False)
        rates["c on Myntra test"] = flagged_share(wdc, [(l.text, None) for l in myntra_test], foreign=True)

    print("| rate | listings | flagged | share | bound |\n|---|--:|--:|--:|---|")
    for name, figures in rates.items():
        bound = BOUNDS.get(name)
        verdict = ""
        if bound:
            ok = figures["share"] <= bound[1] if bound[0] == "<=" else figures["share"] >= bound[1]
            verdict = f"{bound[0]} {bound[1]:.0%}: {'met' if ok else 'MISSED'}"
        print(f"| {name} | {figures['listings']} | {figures['flagged']} | {figures['share']:.2%} | {verdict} |")
    if args.json:  # with the texts each rate got wrong
        args.json.write_text(json.dumps(rates, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
