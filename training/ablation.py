"""Train the paper's variants on one split with the same seeds and print one table (Tables 6 and 7).

    python -m training.ablation --train T.jsonl --valid V.jsonl --test C.jsonl \
        [--variants text-only,frozen,v-irc,v-irc+arm,v-irc+tem,dram] [--seeds 13,14,15] [--policies prototype]
    python -m training.ablation --table runs/a.json runs/b.json   # one table from runs made in parallel

Also reports the slice of titles with two or more colour words (`meta.n_colour_words >= 2`),
where only the photo tells which colour is the catalogue's base colour.
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
from pathlib import Path

from dram.nn.config import VARIANTS, DramConfig
from training.common import attribute_set, load_data, run_cli, setup_logging
from training.loop import TrainSettings, predict, prepare, score
from training.options import JobSettings, settings_from
from training.train import add_model_arguments, add_training_arguments, config_from, train_model, train_settings_from

log = logging.getLogger("training.ablation")
NO_ARM = "(no ARM)"
METRICS = ("cls_f1", "tag_f1", "precision", "recall", "slice_tag_f1", "slice_colour_f1")


def colour_slice(listings) -> list[int]:
    return [i for i, l in enumerate(listings) if l.meta.get("n_colour_words", 0) >= 2]


def run(args: argparse.Namespace) -> list[dict]:
    train = load_data(args.train, "train")[: args.max_train]
    valid = load_data(args.valid, "valid") if args.valid else []
    test = load_data(args.test, "test")
    attributes = args.attributes.split(",") if args.attributes else attribute_set(train)
    rows = []
    for variant in args.variants.split(","):
        # Without ARM the policy changes nothing: train those variants once per seed, not once per policy.
        uses_arm = DramConfig.for_variant(variant, attributes).use_arm
        for policy in args.policies.split(",") if uses_arm else [NO_ARM]:
            for seed in [int(s) for s in args.seeds.split(",")]:
                args.seed = seed
                if uses_arm:
                    args.arm_policy = policy
                config = config_from(args, attributes, variant)
                log.info("== %s (%s policy), seed %d", variant, policy, seed)
                model, tokenizer, metrics = train_model(config, train, valid, train_settings_from(args), args.device,
                                                        precision=args.precision)
                data = prepare(model, tokenizer, test, args.cache_dir)
                predictions = predict(model, tokenizer, data, progress=True)
                overall = score(model, data, predictions)
                sliced = score(model, data, predictions, subset=colour_slice(data.listings))
                rows.append({"variant": variant, "policy": policy, "seed": seed,
                             "cls_f1": overall["cls_f1"], "tag_f1": overall["tag_f1"],
                             "precision": overall["precision"], "recall": overall["recall"],
                             "slice_n": sliced["n_listings"], "slice_tag_f1": sliced["tag_f1"],
                             "slice_colour_f1": sliced["per_attribute"].get("colour", {}).get("f1", 0.0),
                             "per_attribute_tag_f1": {a: m["f1"] for a, m in overall["per_attribute"].items()},
                             "train_minutes": metrics["train"]["train_minutes"]})
                log.info("%s", rows[-1])
                if args.json:
                    args.json.write_text(json.dumps(rows, indent=2))
    return rows


def table(rows: list[dict]) -> str:
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["variant"], row["policy"]), []).append(row)
    head = "| variant | ARM policy | seeds | CLS-F1 | TAG-F1 | P | R | 2+ colours TAG-F1 | 2+ colours colour F1 | train min |"
    lines = [head, "|---" * 10 + "|"]
    for (variant, policy), group in groups.items():
        cells = []
        for metric in METRICS:
            values = [100 * r[metric] for r in group]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.2f} ± {spread:.2f}")
        minutes = statistics.mean(r["train_minutes"] for r in group)
        lines.append(f"| {variant} | {policy} | {len(group)} | " + " | ".join(cells) + f" | {minutes:.1f} |")
    slice_n = rows[0]["slice_n"] if rows else 0
    lines.append(f"\nmean ± standard deviation over seeds, in %; the colour slice has {slice_n} test listings.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path)
    parser.add_argument("--valid", type=Path)
    parser.add_argument("--test", type=Path)
    parser.add_argument("--table", nargs="+", type=Path, metavar="JSON",
                        help="print the table of runs saved with --json, and train nothing")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--policies", default=DramConfig.arm_policy, help="ARM policies, e.g. prototype,dynet,bert")
    parser.add_argument("--seeds", default=",".join(str(TrainSettings.seed + n) for n in range(3)),
                        help="one run per seed (default: the training seed and the next two)")
    parser.add_argument("--max-train", type=int, help="use at most this many training listings")
    parser.add_argument("--json", type=Path, help="write every run's metrics here as they finish")
    add_model_arguments(parser)
    add_training_arguments(parser)
    args = parser.parse_args()
    setup_logging()
    if args.table:
        print(table([row for path in args.table for row in json.loads(path.read_text())]))
        return
    if not (args.train and args.test):
        parser.error("--train and --test are required (or --table to print saved runs)")
    settings_from(JobSettings, args).apply()
    print(table(run(args)))


if __name__ == "__main__":
    run_cli(main)
