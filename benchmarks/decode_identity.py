"""Whether a change to the decode path left its answers exactly as they were (issue 24).

    # in a checkout of the code before the change (e.g. `git worktree add /tmp/before main`):
    cd /tmp/before && PYTHONPATH=. python <this file> dump before.json
    # in the changed checkout:
    python -m benchmarks.decode_identity dump after.json
    python -m benchmarks.decode_identity compare before.json after.json

`dump` extracts every listing of the data file three ways (one by one with its photo, in batches
with photos, in batches without), and a batch of five listings of several windows each (100 titles
joined) between five of one window, and writes each listing's spans, span confidences and ARM scores
unrounded (the model's float32 values, before `Extraction` rounds them for display), plus the TEM
attention's sum and maximum. `compare` asks for the same spans and words (the model's word-level
spans too), and scores, confidences and attention within --tolerance (default 1e-6).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch


def dump(checkpoint: Path, data: Path, out: Path, batch_size: int) -> None:
    from dram.decoding import decode_listings
    from dram.inference import Extractor
    from dram.nn.model import EncoderOutput

    torch.set_num_threads(1)
    extractor = Extractor.load(checkpoint, "cpu", "fp32")
    listings = read_listing_list(data)

    word_spans = {}

    def decoded(items, label):
        """The listings' `DecodedListing`s; the model's word-level spans (confidences unrounded) kept too."""
        encoded = extractor.encode_many(items)
        joined = EncoderOutput.concat([e.encoded for e in encoded])
        _, raw = extractor.model.decode(joined, extractor.config.tau_r)
        word_spans.setdefault(label, []).append([[d.listing, d.attribute, d.first_word, d.end_word, d.confidence]
                                                 for d in raw])
        return decode_listings(extractor.model, [e.windows for e in encoded], joined, extractor.config.tau_r,
                               photos=[e.has_image for e in encoded])

    ids = [l.id for l in listings]
    runs = {"single with photo": (ids, [decoded([(l.text, l.image)], "single with photo")[0] for l in listings])}
    for label, photos in (("batches with photos", True), ("batches without photos", False)):
        items = [(l.text, l.image if photos else None) for l in listings]
        runs[label] = ids, [d for start in range(0, len(items), batch_size)
                            for d in decoded(items[start:start + batch_size], label)]
    # Listings of several windows (100 titles joined, the first one's photo) between one-window ones.
    mixed = [item for k in range(5) for item in (
        (f"long {k}", "\n".join(l.text for l in listings[100 * k:100 * (k + 1)]), listings[100 * k].image),
        (listings[k].id, listings[k].text, listings[k].image))]
    runs["long and short listings in one batch"] = ([i for i, _, _ in mixed],
                                                    decoded([(t, p) for _, t, p in mixed], "long and short"))
    record = {label: [_record(i, d) for i, d in zip(*run)] for label, run in runs.items()}
    out.write_text(json.dumps({"listings": record, "word spans": word_spans}))


def _record(listing_id: str, d) -> dict:
    return {"id": listing_id,
            "spans": [[s.start, s.end, s.attribute, s.text, s.confidence] for s in d.spans],
            "scores": d.scores, "words": [[w.start, w.end] for w in d.words],
            "attention": None if d.attention is None else [float(d.attention.sum()), float(d.attention.max())]}


def differences(before: dict, after: dict, tolerance: float) -> list[str]:
    """Every listing whose spans, words, scores, confidences or attention differ, in words."""
    found = []
    for label, calls in before["word spans"].items():
        for call, (old, new) in enumerate(zip(calls, after["word spans"][label], strict=True)):
            if [s[:4] for s in old] != [s[:4] for s in new]:
                found.append(f"{label}, decode call {call}: the model's word spans differ")
            elif any(not math.isclose(a[4], b[4], abs_tol=tolerance) for a, b in zip(old, new)):
                found.append(f"{label}, decode call {call}: an unrounded span confidence differs")
    for label, listings in before["listings"].items():
        for old, new in zip(listings, after["listings"][label], strict=True):
            where = f"{label}, listing {old['id']}"
            if [s[:4] for s in old["spans"]] != [s[:4] for s in new["spans"]] or old["words"] != new["words"]:
                found.append(f"{where}: spans or words differ")
            elif any(not math.isclose(a[4], b[4], abs_tol=tolerance) for a, b in zip(old["spans"], new["spans"])):
                found.append(f"{where}: a span confidence differs")
            if old["scores"].keys() != new["scores"].keys() or any(
                    not math.isclose(v, new["scores"][k], abs_tol=tolerance) for k, v in old["scores"].items()):
                found.append(f"{where}: ARM scores differ")
            if (old["attention"] is None) != (new["attention"] is None) or (old["attention"] and any(
                    not math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)
                    for a, b in zip(old["attention"], new["attention"]))):
                found.append(f"{where}: TEM attention differs")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("dump")
    make.add_argument("out", type=Path)
    make.add_argument("--checkpoint", type=Path, default=Path("models/default"))
    make.add_argument("--data", type=Path, default=Path("assets/myntra-small/test.jsonl"))
    make.add_argument("--batch-size", type=int, default=32)
    check = commands.add_parser("compare")
    check.add_argument("before", type=Path)
    check.add_argument("after", type=Path)
    check.add_argument("--tolerance", type=float, default=1e-6)
    args = parser.parse_args()
    if args.command == "dump":
        dump(args.checkpoint, args.data, args.out, args.batch_size)
        return
    before, after = (json.loads(p.read_text()) for p in (args.before, args.after))
    found = differences(before, after, args.tolerance)
    n = sum(len(v) for v in before["listings"].values())
    n_spans = sum(len(s) for v in before["listings"].values() for l in v for s in [l["spans"]])
    print("\n".join(found[:50]))
    print(f"{len(found)} differences in {n} decoded listings ({n_spans} spans; {', '.join(before['listings'])}), "
          f"tolerance {args.tolerance}")
    sys.exit(1 if found else 0)


def read_listing_list(path: Path) -> list:
    """The listings of a JSONL file, with the reader of the code being run (it was renamed)."""
    try:
        from dram.data.readers import read_listings
    except ImportError:  # a checkout before the readers were one
        from dram.data.listings import read_jsonl
        return read_jsonl(path)[0]
    return read_listings(path, "jsonl")[0]


if __name__ == "__main__":
    main()
