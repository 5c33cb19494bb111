"""Corrections checked before they teach (issue 21, item 3), measured both ways.

    python -m benchmarks.bench_suspicion probe [--checkpoint models/default] [--out runs/suspicion-probe]
        [--finetune-args "--threads 1"]
    python -m benchmarks.bench_suspicion jewelry --start CKPT [--data ../shared/data/wdc-pave] [--out runs/suspicion-jewelry]
        [--finetune-args "--threads 1"] [--no-finetune]

- probe: the issue's systematic junk. The first 30 listings of the bundled valid split that have a
  colour, their gold spans with every colour relabelled brand, saved as corrections in a fresh
  SQLite store; `python -m training.finetune` with the defaults. Reports how many of the 30 are
  flagged, whether the version was promoted and what moved.
- jewelry: the false alarms. The 188 Jewelry listings of the feedback loop (benchmarks/bench_loop.py's
  scenario and annotator: gold spans, new attributes added as the annotator meets them) as
  corrections of the loop's start model (trained without Jewelry); how many are flagged, then one
  fine-tune round on all of them through the command without --promote: does the gate pass it?
Writes OUT/results.json and prints it.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import asdict, replace
from pathlib import Path

from benchmarks.bench_loop import annotate, split_scenario
from benchmarks.bench_open_schema import run
from dram.data.listings import Listing
from dram.data.readers import read_listings
from dram.inference import Extractor
from dram.paths import BUNDLE, DEFAULT_CHECKPOINT, ROOT
from review.suspicion import check_corrections, suspicion_table
from store import Store, open_store

PROBE_SIZE = 30


def probe_corrections(count: int = PROBE_SIZE, source: Path = BUNDLE / "valid.jsonl") -> list[Listing]:
    """The first `count` listings with a colour, every colour span relabelled brand (the issue's probe)."""
    coloured = [l for l in read_listings(source)[0] if any(s.attribute == "colour" for s in l.spans)][:count]
    return [replace(l, spans=sorted(replace(s, attribute="brand") if s.attribute == "colour" else s for s in l.spans))
            for l in coloured]


def save_corrections(store: Store, listings: list[Listing], annotator: str = "probe") -> None:
    """Each listing (with its photo) into the store, its spans saved as a correction."""
    for item in listings:
        photo = Path(item.image).read_bytes() if item.image else None
        listing_id = store.add_listing(item.text, photo=photo, external_id=item.id)
        store.save_correction(listing_id, annotator, item.spans)


def finetune_command(source: Path, db_url: str, out: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "training.finetune", "--from", str(source), "--db", db_url, "--out", str(out), *extra]


def last_json_line(log: Path) -> dict:
    """The fine-tune's summary: the last line of its output that is a JSON object."""
    lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


def flag_rate(store: Store, checkpoint: Path) -> dict:
    flags = check_corrections(store, Extractor.load(checkpoint))
    print(suspicion_table(flags))
    return {"corrections": len(store.current_corrections()), "flagged_corrections": len({f.listing_id for f in flags}),
            "flagged_spans": len(flags), "flags": [asdict(f) for f in flags]}


def probe(checkpoint: Path, out: Path, finetune_args: list[str]) -> dict:
    out.mkdir(parents=True, exist_ok=False)
    db_url = f"sqlite:///{out / 'store.sqlite'}"
    with open_store(db_url) as store:
        save_corrections(store, probe_corrections())
    log = out / "finetune.log"
    run(finetune_command(checkpoint, db_url, out / "model", finetune_args), log)
    summary = last_json_line(log)
    return {"probe": PROBE_SIZE, **{k: summary[k] for k in ("flagged", "promoted", "failed", "moved_on_flagged",
                                                             "minutes")}}


def jewelry(start: Path, data: Path, out: Path, finetune_args: list[str], finetune: bool) -> dict:
    out.mkdir(parents=True, exist_ok=False)
    scenario = split_scenario(data, "Jewelry", out, seed=13)
    db_url = f"sqlite:///{out / 'store.sqlite'}"
    attributes = json.loads((start / "config.json").read_text())["attributes"]
    with open_store(db_url) as store:
        gold = {store.add_listing(l.text, external_id=l.id): l for l in scenario.pool}
        annotate(store, list(gold), gold, attributes)
        results = flag_rate(store, start)
    if finetune:
        log = out / "finetune.log"
        run(finetune_command(start, db_url, out / "model", ["--replay", str(scenario.start_train), "--heldout",
                                                           str(scenario.start_valid), *finetune_args]), log)
        summary = last_json_line(log)
        results["finetune"] = {k: summary[k] for k in ("flagged", "promoted", "failed", "moved_on_flagged", "minutes")}
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("probe", "jewelry"))
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="probe: the model to fine-tune")
    parser.add_argument("--start", type=Path, help="jewelry: the loop's start model (bench_loop's OUT/start)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "wdc-pave")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--finetune-args", default="", help="more training.finetune flags, e.g. '--threads 1'")
    parser.add_argument("--no-finetune", action="store_true", help="jewelry: count the flags only")
    args = parser.parse_args(argv)
    out = args.out or ROOT / "runs" / f"suspicion-{args.what}"
    extra = shlex.split(args.finetune_args)
    if args.what == "probe":
        results = probe(args.checkpoint, out, extra)
    else:
        if args.start is None:
            raise SystemExit("error: jewelry needs --start, the loop's start model (python -m benchmarks.bench_loop).")
        results = jewelry(args.start, args.data, out, extra, not args.no_finetune)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if k != "flags"}, indent=2))


if __name__ == "__main__":
    main()
