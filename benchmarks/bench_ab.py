"""Speed of this tree against an older commit, in interleaved runs on the same machine (A/B).

    python -m benchmarks.bench_ab --old 98dd6e1 [--runs 5] [--checkpoint models/default]
    python -m benchmarks.bench_ab --old main --old-checkpoint A --checkpoint B --data test.jsonl --categories --calls 0

The older commit is checked out into a temporary git worktree beside this one, sharing this tree's
`.venv` and the same checkpoint (or `--old-checkpoint`: a model of the old tree's defaults against
one of the new's, where a change alters what training makes). Each run measures both trees, the order alternating (old, new, then
new, old, ...), so slow minutes of a shared machine fall on both alike:
1. one listing with its photo, p50 over `--single` listings (`Extractor.extract`, after a warm-up);
2. batch extraction with photos over the whole data file (`Extractor.extract_batch`, after 128 listings'
   warm-up), listings/s;
3. the app's `/extract` p50 over `--calls` calls, each tree's `app.py` started once (0: not measured).
`--categories` gives the batch each listing's `category` (a model that learned its categories' schemas).
Each figure is measured in a fresh process of its tree; the tables give every run and the medians.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_app import sequential  # noqa: E402
from tests.app_server import launch_app, stop_app  # noqa: E402

# Run inside each tree: uses only what both trees have (Extractor.load/extract/extract_batch) and
# reads the data file itself, so a moved reader does not change what is timed.
MEASURE = """
import json, statistics, sys, time
from pathlib import Path
import torch
torch.set_num_threads({threads})
from dram.inference import Extractor
data = Path({data!r})
rows = [json.loads(line) for line in data.read_text().splitlines() if line.strip()]
items = [(r["text"], str(data.parent / r["image"]) if r.get("image") else None) for r in rows]
categories = [r.get("category") for r in rows] if {categories} else None
extractor = Extractor.load({checkpoint!r})
for text, image in items[:5]:
    extractor.extract(text, image)
times = []
for text, image in items[:{single}]:
    started = time.perf_counter()
    extractor.extract(text, image)
    times.append(1000 * (time.perf_counter() - started))
extractor.extract_batch(items[:128], batch_size=32, categories=categories and categories[:128])  # warm-up
started = time.perf_counter()
extractor.extract_batch(items, batch_size=32, categories=categories)
rate = len(items) / (time.perf_counter() - started)
print(json.dumps({{"single_p50_ms": statistics.median(times), "batch_per_s": rate}}))
"""


def measure_model(tree: Path, checkpoint: Path, args: argparse.Namespace) -> dict:
    code = MEASURE.format(threads=args.threads, data=str(args.data.resolve()), checkpoint=str(checkpoint.resolve()),
                          single=args.single, categories=args.categories)
    done = subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True, text=True,
                          env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    if done.returncode:
        raise SystemExit(f"measuring {checkpoint} in {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def old_tree(rev: str, where: Path) -> Path:
    tree = where / "old"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev], cwd=ROOT, check=True, capture_output=True)
    (tree / ".venv").symlink_to(ROOT / ".venv")
    return tree


def table(rows: list[tuple[str, int, dict]]) -> str:
    out = ["| run | tree | one listing with photo p50 ms | batch with photos listings/s | /extract p50 ms |",
           "|---|---|--:|--:|--:|"]
    ms = lambda value: "" if value is None else f"{value:.0f}"
    out += [f"| {run} | {name} | {r['single_p50_ms']:.1f} | {r['batch_per_s']:.1f} | {ms(r['extract_p50_ms'])} |"
            for name, run, r in rows]
    for name in ("old", "new"):
        mine = [r for n, _, r in rows if n == name]
        medians = [statistics.median(r[k] for r in mine) for k in ("single_p50_ms", "batch_per_s")]
        app = [r["extract_p50_ms"] for r in mine if r["extract_p50_ms"] is not None]
        out.append(f"| **median** | **{name}** | **{medians[0]:.1f}** | **{medians[1]:.1f}** | "
                   f"**{ms(statistics.median(app) if app else None)}** |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", required=True, help="the commit to compare against")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--old-checkpoint", type=Path, help="the old tree's checkpoint (default: --checkpoint)")
    parser.add_argument("--categories", action="store_true", help="give the batch each listing's category")
    parser.add_argument("--data", type=Path, default=ROOT / "assets" / "myntra-small" / "test.jsonl")
    parser.add_argument("--single", type=int, default=100)
    parser.add_argument("--calls", type=int, default=30, help="/extract calls a run (0: the app is not measured)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as scratch:
        where = Path(scratch)
        trees = {"old": old_tree(args.old, where), "new": ROOT}
        checkpoints = {"old": args.old_checkpoint or args.checkpoint, "new": args.checkpoint}
        apps = {name: launch_app(checkpoints[name].resolve(), where / f"{name}.log", tree=tree,
                                 env={"DRAM_DB_URL": f"sqlite:///{where / name}.sqlite"})
                for name, tree in trees.items()} if args.calls else {}
        rows = []
        try:
            for run in range(1, args.runs + 1):
                for name in (("old", "new") if run % 2 else ("new", "old")):
                    result = measure_model(trees[name], checkpoints[name], args)
                    result["extract_p50_ms"] = (1000 * statistics.median(sequential(apps[name][0], args.calls, "/extract"))
                                                if args.calls else None)
                    rows.append((name, run, result))
                    print(f"run {run} {name}: {result}", flush=True)
        finally:
            for _, process in apps.values():
                stop_app(process)
            subprocess.run(["git", "worktree", "remove", "--force", str(trees["old"])], cwd=ROOT, check=False)
    print(table(rows))


if __name__ == "__main__":
    main()
