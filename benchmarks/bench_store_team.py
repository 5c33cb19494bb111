"""A team on one store: N annotator processes, each taking listings from the review queue and saving.

Every process runs the app's own review path (`review.queue.next_item`, which claims the listing
for the annotator, then `review.queue.save_verdict`), the way the Annotate tab does on Load next /
Save, against one store: a real PostgreSQL server started for the run (tests/postgres_server.py)
and a SQLite file. Afterwards it counts corrections lost (a save that returned but is not in the
store), listings saved twice, and listings handed to two annotators.

    .venv/bin/python benchmarks/bench_store_team.py [--annotators 8] [--saves 50] [--backends postgresql,sqlite]

Prints the markdown table that BENCHMARKS.md keeps.
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dram.data.spans import Span  # noqa: E402
from dram.nn.config import DramConfig  # noqa: E402
from review.queue import next_item, save_verdict  # noqa: E402
from store import open_store  # noqa: E402
from tests.postgres_server import running_postgres  # noqa: E402

TAU = DramConfig.tau_r  # the threshold a model is served with by default
ATTRIBUTES = ["colour", "material"]
TEXT = "Red cotton shirt with short sleeves"


def _fill(url: str, count: int) -> None:
    with open_store(url) as store:
        for i in range(count):
            listing = store.add_listing(f"{TEXT} #{i}", external_id=f"bench-{i}")
            store.add_prediction(listing, None, [{"start": 0, "end": 3, "attribute": "colour", "confidence": 0.6}],
                                 {"colour": 0.9, "material": (i % 97) / 100}, TAU)


def _annotator(url: str, name: str, saves: int, barrier, out) -> None:
    handed, saved, errors = [], [], []
    with open_store(url) as store:
        barrier.wait()  # everyone starts together
        for n in range(saves):
            try:
                item = next_item(store, TAU, name)
                if item is None:
                    break
                handed.append(item.listing_id)
                if n % 5 == 4:  # an edit: add the material, as the Annotate tab's "Add value" does
                    item = item.with_spans([*item.spans, Span(4, 10, "material")])
                save_verdict(store, name, item, skip=n % 10 == 9, attributes=ATTRIBUTES)
                saved.append(item.listing_id)
            except Exception as err:  # counted and shown: a benchmark reports failures, it does not hide them
                errors.append(f"{type(err).__name__}: {err}")
    out.put((name, handed, saved, errors))


def run(url: str, annotators: int, saves: int) -> dict[str, float | int]:
    _fill(url, annotators * saves)
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(annotators + 1), context.Queue()
    processes = [context.Process(target=_annotator, args=(url, f"annotator-{a}", saves, barrier, out))
                 for a in range(annotators)]
    for process in processes:
        process.start()
    barrier.wait()
    started = time.perf_counter()
    results = [out.get(timeout=600) for _ in processes]
    seconds = time.perf_counter() - started
    for process in processes:
        process.join(timeout=60)
    handed = Counter(listing for _, h, _, _ in results for listing in h)
    saved = [(name, listing) for name, _, s, _ in results for listing in s]
    with open_store(url) as store:
        stored = Counter((c.annotator, c.listing_id) for c in store.all_corrections())
        per_listing = Counter(c.listing_id for c in store.all_corrections())
    return {
        "saves returned": len(saved),
        "stored": sum(stored.values()),
        "lost": sum(1 for pair in saved if stored[pair] == 0),
        "saved twice": sum(1 for n in per_listing.values() if n > 1),
        "claimed by two": sum(1 for n in handed.values() if n > 1),
        "errors": sum(len(e) for *_, e in results),
        "seconds": seconds,
        "saves/s": len(saved) / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotators", type=int, default=8)
    parser.add_argument("--saves", type=int, default=50)
    parser.add_argument("--backends", default="postgresql,sqlite")
    args = parser.parse_args()
    rows = []
    for backend in args.backends.split(","):
        if backend == "postgresql":
            with running_postgres() as server:
                rows.append((backend, run(server.create_database("bench"), args.annotators, args.saves)))
        else:
            with tempfile.TemporaryDirectory() as folder:
                rows.append((backend, run(f"sqlite:///{Path(folder) / 'team.sqlite'}", args.annotators, args.saves)))
    print(f"{args.annotators} annotator processes x {args.saves} saves each (Load next + Save through review.queue)\n")
    print("| store | saves returned | stored | lost | saved twice | listings claimed by two | errors | time | saves/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for backend, r in rows:
        print(f"| {backend} | {r['saves returned']} | {r['stored']} | {r['lost']} | {r['saved twice']} | "
              f"{r['claimed by two']} | {r['errors']} | {r['seconds']:.1f}s | {r['saves/s']:.1f} |")


if __name__ == "__main__":
    main()
