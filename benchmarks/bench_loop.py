"""Simulated annotators teach the model a category it never saw: the feedback loop, measured.

    python -m benchmarks.bench_loop [--data ../shared/data/wdc-pave] [--out runs/loop] [--seeds 13,14,15]
        [--rounds 25,50,100,188] [--orders uncertainty,random,coverage,diversity] [--start CKPT] [--reference CKPT]
        [--train-args "..."] [--finetune-args "--epochs 2"] [--threads N] [--gather-only]

The scenario of issue 11 on WDC-PAVE, through the real store and the real commands:

- start: `python -m training.train` with the defaults on train_large without its Jewelry listings
  (the four other categories). Their seeded tenth for validation is written out, so the fine-tunes
  replay the rest and use that tenth as their replay test.
- pool: the Jewelry listings of train_large in a fresh SQLite store per run, unlabelled. The gold
  labels play the annotator for each listing the queue serves; the first time the annotator marks an
  attribute the model does not have, they add it to the store's attribute set (what `python -m store
  add-attribute` does).
- rounds: cumulative corrections (25, 50, 100, all 188). Each round runs `python -m training.finetune`
  from the previous round's checkpoint, passed explicitly (`--promote`, so the store's active version
  follows the chain whatever the promotion gate said); the new version's predictions for the rest of
  the pool are stored and the queue re-ordered by them.
- orders: `uncertainty` is the app's review queue (`Store.review_queue`): the smallest |R_a - tau_R|
  over the attribute scores of the serving model, ties broken by its least confident span. Attributes
  the model does not have yet have no score and contribute nothing; until the first fine-tune the
  queue orders Jewelry listings by the start model's uncertainty about the attributes it has: the two
  Jewelry shares (Brand, Product Type) and the other categories' ("is this a Color?"). `random` is a
  seeded shuffle of the pool. `coverage` and `diversity` read only the texts (benchmarks/queue_orders.py):
  the listing whose unseen words are the most common in the pool, or the one least like anything
  reviewed; the seeded shuffle breaks their ties.
- reference: `training.train` with the defaults on all of train_large.
- measured on the test split: value F1 (slot rule, `dram.metrics.SlotScorer`) on the Jewelry
  listings and on the listings of the four other categories, for the start model, every round and
  the reference; and each fine-tune's minutes.

Seeds: the start and the reference model are trained once, with --start-seed (each costs 20-45
minutes on 2 CPU cores), which also carves their validation tenth; every seed runs its own fine-tune
chains (the fine-tune's seed: held-out split, replay sample, batch order) and its own random order. A start or reference checkpoint that
exists in OUT is reused, and so is a finished chain (its chain.json): run one process per order or
seed on the same OUT, then once more with all of them to gather the table and the curves.
Writes OUT/results.json (every round: its corrections, the listings added, the fine-tune it came
from), OUT/results.md and the curves OUT/jewelry.png and OUT/old-categories.png.
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import shlex
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.bench_open_schema import run
from benchmarks.queue_orders import coverage_order, diversity_order
from dram.checkpoint import load_checkpoint
from dram.data.listings import Listing
from dram.data.readers import read_listings
from dram.files import write_atomically
from dram.inference import Extractor
from dram.nn.config import DramConfig
from store import Store, open_store
from training.common import split_validation
from training.loop import predict, prepare, score

ROOT = Path(__file__).resolve().parent.parent
ORDERS = ("uncertainty", "random", "coverage", "diversity")
ANNOTATOR = "simulated annotator"
log = logging.getLogger("bench_loop")


@dataclass
class Scenario:
    """The files and listings one benchmark run works on."""

    category: str  # the category the start model never saw
    start_train: Path  # the other categories, less their validation tenth: the start model's and the replay's
    start_valid: Path  # that tenth: the start model's validation and the fine-tunes' replay test
    full_train: Path  # everything: the reference model's
    pool: list[Listing]  # the category's training listings, the annotator's work
    test: list[Listing]


def split_scenario(data: Path, category: str, out: Path, seed: int) -> Scenario:
    """Write the start model's files (the records as they are, other categories only) and read the pool."""
    out.mkdir(parents=True, exist_ok=True)
    full_train = data / "train_large.jsonl"
    lines = [line for line in full_train.read_text(encoding="utf-8").splitlines() if line.strip()]
    others = [line for line in lines if json.loads(line).get("category") != category]
    if len(others) == len(lines):
        raise SystemExit(f"error: no listing of {full_train} has the category {category!r}.")
    train, valid = split_validation(others, seed=seed)
    start_train, start_valid = out / "start-train.jsonl", out / "start-valid.jsonl"
    # Another process's fine-tune may be reading them: it sees the old text or the new, never half.
    for path, records in ((start_train, train), (start_valid, valid)):
        write_atomically(path, lambda partial: partial.write_text("\n".join(records) + "\n", encoding="utf-8"))
    pool = [l for l in read_listings(full_train)[0] if l.meta.get("category") == category]
    test = read_listings(data / "test.jsonl")[0]
    return Scenario(category, start_train, start_valid, full_train, pool, test)


def train(train_file: Path, valid_file: Path | None, out: Path, seed: int, extra: list[str]) -> Path:
    """`training.train` with the defaults (and `extra`), unless `out` holds a checkpoint already."""
    if (out / "config.json").exists():
        log.info("reusing %s", out)
        return out
    command = [sys.executable, "-m", "training.train", "--train", str(train_file), "--out", str(out),
               "--seed", str(seed), *extra]
    if valid_file is not None:
        command += ["--valid", str(valid_file)]
    log.info("training %s", out)
    run(command, out.with_name(out.name + ".log"))
    return out


def measure(checkpoint: Path, test: list[Listing], category: str, cache_dir: Path | None) -> dict:
    """Value F1 (slot rule) on the test listings of `category` and on those of every other category."""
    model, tokenizer, _ = load_checkpoint(checkpoint)
    data = prepare(model, tokenizer, test, cache_dir)
    predictions = predict(model, tokenizer, data, progress=False)
    inside = [i for i, l in enumerate(data.listings) if l.meta.get("category") == category]
    outside = [i for i, l in enumerate(data.listings) if l.meta.get("category") != category]
    return {"target_value_f1": score(model, data, predictions, subset=inside)["value"]["f1"],
            "others_value_f1": score(model, data, predictions, subset=outside)["value"]["f1"],
            "value_f1": score(model, data, predictions)["value"]["f1"]}


def measured_once(checkpoint: Path, scenario: Scenario, out: Path, cache_dir: Path | None) -> dict:
    """`measure`, kept in OUT/measured.json so that every process sharing OUT scores the start and
    the reference once (keyed by the checkpoint's folder, weights file time and category)."""
    weights = max((p.stat().st_mtime for p in checkpoint.glob("*.safetensors")), default=0.0)
    key = f"{checkpoint.resolve()}|{weights}|{scenario.category}"
    kept = out / "measured.json"
    known = json.loads(kept.read_text()) if kept.exists() else {}
    if key not in known:
        known[key] = measure(checkpoint, scenario.test, scenario.category, cache_dir)
        latest = json.loads(kept.read_text()) if kept.exists() else {}  # another process may have added some
        figures = json.dumps({**latest, **known}, indent=2)
        write_atomically(kept, lambda partial: partial.write_text(figures))
    return known[key]


def record_predictions(store: Store, checkpoint: Path, version_id: int, listing_ids: list[int]) -> None:
    """The serving version's output on the listings still waiting: what the review queue orders by."""
    extractor = Extractor.load(checkpoint)
    listings = [store.get_listing(i) for i in listing_ids]
    results = extractor.extract_batch([(l.text, None) for l in listings])
    for listing, result in zip(listings, results):
        if isinstance(result, Exception):
            raise SystemExit(f"the model could not read pool listing {listing.external_id}: {result}")
        store.add_prediction(listing.id, version_id, result.spans, result.attribute_scores,
                             result.tau_r)


def annotate(store: Store, listing_ids: list[int], gold: dict[int, Listing], model_attributes: list[str]) -> None:
    """The annotator marks the gold spans, adding to the store's attribute set any attribute that is new."""
    for listing_id in listing_ids:
        spans = gold[listing_id].spans
        known = set(model_attributes) | set(store.attributes())
        for attribute in sorted({s.attribute for s in spans} - known):
            store.add_attribute(attribute, added_by=ANNOTATOR)
        store.save_correction(listing_id, ANNOTATOR, spans,
                              allowed_attributes=[*model_attributes, *store.attributes()])


def next_batch(store: Store, order: str, waiting_in_random_order: list[int], count: int, tau_r: float,
               texts: dict[int, str]) -> list[int]:
    """The next `count` listings the queue serves."""
    if order == "uncertainty":
        return [item.listing_id for item in store.review_queue(tau_r, limit=count)]
    corrected = {c.listing_id for c in store.all_corrections()}
    waiting = [i for i in waiting_in_random_order if i not in corrected]
    if order == "random":
        return waiting[:count]
    text_order = coverage_order if order == "coverage" else diversity_order
    return text_order([(i, texts[i]) for i in waiting], [texts[i] for i in sorted(corrected)], count)


def run_chain(scenario: Scenario, start: Path, seed: int, order: str, rounds: list[int], out: Path,
              finetune_args: list[str], cache_dir: Path | None) -> list[dict]:
    """One seed and queue order: every round's corrections, fine-tune and test figures (in a new folder).

    A finished chain leaves its rows in OUT/chain.json and is read back instead of run again, so
    chains can run in separate processes (one per order or seed) and a last run gathers them. A
    finished chain is read back as far as its rounds are the ones asked for: a queue order compared
    only up to 50 corrections joins a table that goes on to 188."""
    finished = out / "chain.json"
    if finished.exists():
        rows = json.loads(finished.read_text())
        rows = rows[:min(len(rows), len(rounds))]
        if [r["corrections"] for r in rows] == rounds[:len(rows)]:
            log.info("reusing the finished chain %s (%s corrections)", out, ", ".join(str(r["corrections"]) for r in rows))
            return rows
        raise SystemExit(f"error: {out} holds a chain of other rounds; move it away to run this one.")
    if out.exists():
        raise SystemExit(f"error: {out} holds an unfinished chain from an earlier run; move it away to run it again.")
    out.mkdir(parents=True)
    db_url = f"sqlite:///{out / 'store.sqlite'}"
    rows = []
    with open_store(db_url) as store:
        gold = {store.add_listing(l.text, external_id=l.id): l for l in scenario.pool}
        version_id = store.register_model_version(start.name, start.resolve(), {}, activate=True)
    waiting_in_random_order = random.Random(seed).sample(sorted(gold), len(gold))
    current, done = start, 0
    for target in rounds:
        config = DramConfig.load(current / "config.json")
        with open_store(db_url) as store:
            if order == "uncertainty":
                corrected = {c.listing_id for c in store.all_corrections()}
                record_predictions(store, current, version_id, [i for i in gold if i not in corrected])
            batch = next_batch(store, order, waiting_in_random_order, target - done, config.tau_r,
                               {i: l.text for i, l in gold.items()})
            annotate(store, batch, gold, config.attributes)
        following = out / f"round-{target}"
        run([sys.executable, "-m", "training.finetune", "--from", str(current), "--db", db_url,
                     "--out", str(following), "--replay", str(scenario.start_train),
                     "--heldout", str(scenario.start_valid), "--seed", str(seed), "--promote", *finetune_args],
                    out / f"round-{target}.log")
        with open_store(db_url) as store:
            version_id = store.active_model_version().id
        written = json.loads((following / "metrics.json").read_text())
        metrics = written["finetune"]
        rows.append({"seed": seed, "order": order, "corrections": target, "checkpoint": str(following),
                     "finetuned_from": metrics["source"], "added": [gold[i].id for i in batch],
                     "new_attributes": metrics["new_attributes"], "finetune_minutes": metrics["minutes"],
                     # what the promotion gate said on its own (the chain goes on with --promote either way)
                     "flagged_listings": written["suspicion"]["flagged_listings"],
                     "gate_failed": written["promotion"]["failed"],
                     **measure(following, scenario.test, scenario.category, cache_dir)})
        log.info("%s seed %d, %d corrections: %s", order, seed, target,
                 {k: round(v, 4) for k, v in rows[-1].items() if k.endswith("f1")})
        current, done = following, target
    finished.write_text(json.dumps(rows, indent=2))
    return rows


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def curves(rows: list[dict]) -> dict[str, dict[int, dict[str, tuple[float, float]]]]:
    """order -> corrections -> figure -> (mean, sd over seeds)."""
    out: dict[str, dict[int, dict[str, tuple[float, float]]]] = {}
    for order in dict.fromkeys(r["order"] for r in rows):
        for n in sorted({r["corrections"] for r in rows if r["order"] == order}):
            mine = [r for r in rows if r["order"] == order and r["corrections"] == n]
            out.setdefault(order, {})[n] = {key: mean_sd([r[key] for r in mine])
                                            for key in ("target_value_f1", "others_value_f1", "finetune_minutes")}
    return out


def summary_table(rows: list[dict], start: dict, reference: dict, category: str) -> str:
    """Markdown: value F1 (%) per round and order, mean +- sd over seeds, with the start and the reference."""
    by_order = curves(rows)
    orders = list(by_order)
    head = ["corrections"] + [f"{category} ({o})" for o in orders] + [f"old categories ({o})" for o in orders] + \
           [f"fine-tune minutes ({o})" for o in orders]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    lines.append("| 0 (start) | " + " | ".join([f"{start['target_value_f1'] * 100:.2f}"] * len(orders) +
                                               [f"{start['others_value_f1'] * 100:.2f}"] * len(orders) +
                                               ["—"] * len(orders)) + " |")
    for n in sorted({r["corrections"] for r in rows}):
        cells = []
        for key, scale in (("target_value_f1", 100), ("others_value_f1", 100), ("finetune_minutes", 1)):
            for o in orders:
                if n not in by_order[o]:
                    cells.append("—")  # this order's chains stopped before n
                    continue
                m, sd = by_order[o][n][key]
                cells.append(f"{m * scale:.2f} ± {sd * scale:.2f}")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines.append("| reference (all of train_large) | " + " | ".join(
        [f"{reference['target_value_f1'] * 100:.2f}"] * len(orders) +
        [f"{reference['others_value_f1'] * 100:.2f}"] * len(orders) + ["—"] * len(orders)) + " |")
    return "\n".join(lines)


def gate_table(rows: list[dict]) -> str:
    """Markdown: per order and round, the listings flagged as suspicious and how many seeds' versions the
    promotion gate would have promoted by itself, with the first reason of a refusal."""
    lines = ["| order | corrections | flagged listings (per seed) | promoted by the gate | refused because |",
             "|---|---:|---|---|---|"]
    for order in dict.fromkeys(r["order"] for r in rows):
        for n in sorted({r["corrections"] for r in rows if r["order"] == order}):
            mine = [r for r in rows if r["order"] == order and r["corrections"] == n and "gate_failed" in r]
            if not mine:
                continue
            refused = [r["gate_failed"][0] for r in mine if r["gate_failed"]]
            lines.append(f"| {order} | {n} | {', '.join(str(r['flagged_listings']) for r in mine)} | "
                         f"{len(mine) - len(refused)} of {len(mine)} | {refused[0] if refused else '—'} |")
    return "\n".join(lines)


def plot(rows: list[dict], start: dict, reference: dict, category: str, out: Path) -> list[Path]:
    """Learning curves (mean +- sd over seeds) against the number of corrections, one PNG per test subset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_order = curves(rows)
    files = []
    for key, title, name in (("target_value_f1", f"{category} (the new category)", category.lower()),
                             ("others_value_f1", "the categories the start model knew", "old-categories")):
        figure, axes = plt.subplots(figsize=(6, 4))
        for order, points in by_order.items():
            xs = [0, *points]
            means = [start[key] * 100, *(points[n][key][0] * 100 for n in points)]
            sds = [0.0, *(points[n][key][1] * 100 for n in points)]
            axes.errorbar(xs, means, yerr=sds, marker="o", capsize=3, label=f"queue: {order}")
        axes.axhline(reference[key] * 100, color="grey", linestyle="--", label="reference (all of train_large)")
        if key == "target_value_f1":
            axes.axhline(0.9 * reference[key] * 100, color="grey", linestyle=":", label="90% of the reference")
        axes.set_xlabel("corrections")
        axes.set_ylabel("test value F1 (%)")
        axes.set_title(f"Value F1 on {title}")
        axes.legend(fontsize=8)
        figure.tight_layout()
        path = out / f"{name}.png"
        figure.savefig(path, dpi=120)
        plt.close(figure)
        files.append(path)
    return files


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "wdc-pave",
                        help="folder with train_large.jsonl and test.jsonl")
    parser.add_argument("--category", default="Jewelry", help="the category the start model never sees")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "loop")
    parser.add_argument("--seeds", default="13,14,15", help="one fine-tune chain per seed and order")
    parser.add_argument("--start-seed", type=int, default=13,
                        help="the start and reference models' seed, and their validation tenth's: the same for "
                             "every process that shares OUT")
    parser.add_argument("--rounds", default="25,50,100,188", help="cumulative corrections per round (capped at the pool)")
    parser.add_argument("--orders", default=",".join(ORDERS))
    parser.add_argument("--start", type=Path, help="start checkpoint (default: trained, or reused from OUT/start)")
    parser.add_argument("--reference", type=Path, help="reference checkpoint (default: trained, or OUT/reference)")
    parser.add_argument("--train-args", default="", help="more training.train flags, e.g. '--max-minutes 30'")
    parser.add_argument("--finetune-args", default="", help="more training.finetune flags, e.g. '--epochs 1'")
    parser.add_argument("--cache-dir", type=Path, help="region feature cache for the measurements")
    parser.add_argument("--gather-only", action="store_true",
                        help="run no chain: gather the finished ones in OUT into the table and the curves")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    seeds = [int(s) for s in args.seeds.split(",")]
    orders = args.orders.split(",")
    unknown = sorted(set(orders) - set(ORDERS))
    if unknown:
        raise SystemExit(f"error: unknown queue order {unknown}; choose from {', '.join(ORDERS)}.")
    scenario = split_scenario(args.data, args.category, args.out, args.start_seed)
    rounds = sorted({min(int(n), len(scenario.pool)) for n in args.rounds.split(",")})
    train_args = shlex.split(args.train_args)
    start = args.start or train(scenario.start_train, scenario.start_valid, args.out / "start", args.start_seed,
                                train_args)
    reference = args.reference or train(scenario.full_train, None, args.out / "reference", args.start_seed, train_args)
    start_figures, reference_figures = (measured_once(checkpoint, scenario, args.out, args.cache_dir)
                                        for checkpoint in (start, reference))
    rows = []
    for seed in seeds:
        for order in orders:
            chain = args.out / f"{order}-seed{seed}"
            if args.gather_only and not (chain / "chain.json").exists():
                log.warning("--gather-only: no finished chain %s; left out of the table", chain)
                continue
            rows += run_chain(scenario, start, seed, order, rounds, chain, shlex.split(args.finetune_args),
                              args.cache_dir)
    results = {"category": args.category, "pool": len(scenario.pool), "rounds": rounds, "seeds": seeds,
               "start": {"checkpoint": str(start), **start_figures},
               "reference": {"checkpoint": str(reference), **reference_figures}, "rounds_measured": rows}
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    table = summary_table(rows, start_figures, reference_figures, args.category)
    (args.out / "results.md").write_text(table + "\n\n" + gate_table(rows) + "\n")
    pictures = plot(rows, start_figures, reference_figures, args.category, args.out)
    print(table + "\n\n" + gate_table(rows))
    print("curves:", ", ".join(str(p) for p in pictures))


if __name__ == "__main__":
    main()
