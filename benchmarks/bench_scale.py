"""Overhead of the scale-out engines on this machine: torchrun 1 vs 2 processes, Ray vs single-process predict.

A 2-core machine cannot show scaling, only what each engine costs; on a machine with more cores or
GPUs the same commands measure speed-ups.

    .venv/bin/python benchmarks/bench_scale.py torchrun [--max-train 480]   # train 1 epoch: plain, torchrun x1, x2
    .venv/bin/python benchmarks/bench_scale.py ray [--workers 1,2]          # the 4,000 bundled listings

`torchrun`: the text-only model (MiniLM) on the bundled training listings for one epoch, global batch
16, validation on 200 listings; wall time of the whole command and the epoch's training minutes.
`ray`: `training.predict` on assets/myntra-small's 4,000 listings with photos, single-process (a fresh
region-feature cache, so photos are encoded as in the Ray workers) and `--engine ray` per worker count
(a fresh output folder each time; Ray's start-up included). Prints markdown rows for BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "assets" / "myntra-small"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT),
       "TOKENIZERS_PARALLELISM": "false"}


def _run(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env or ENV, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def torchrun(max_train: int) -> None:
    print("| run | processes x threads | wall (s) | epoch training (min) | final mean loss |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        valid = Path(tmp) / "valid.jsonl"
        records = [json.loads(line) for line in (BUNDLE / "valid.jsonl").read_text().splitlines()[:200]]
        for record in records:  # the copy lives elsewhere: photos by absolute path
            if record.get("image"):
                record["image"] = str(BUNDLE / record["image"])
        valid.write_text("".join(json.dumps(r) + "\n" for r in records))
        common = ["--train", str(BUNDLE / "train.jsonl"), "--valid", str(valid), "--max-train", str(max_train),
                  "--no-image", "--epochs", "1", "--patience", "0", "--device", "cpu", "--cache-dir",
                  str(Path(tmp) / "cache")]
        runs = [("python -m training.train", [sys.executable, "-m", "training.train"], "1 x 2", 2),
                ("torchrun --nproc-per-node 1", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                 "--nproc-per-node", "1", "-m", "training.train"], "1 x 2", 2),
                ("torchrun --nproc-per-node 2", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                 "--nproc-per-node", "2", "-m", "training.train"], "2 x 1", 1)]
        for name, launcher, shape, threads in runs:
            out = Path(tmp) / name.replace(" ", "_")
            wall = _run([*launcher, *common, "--threads", str(threads), "--out", str(out)],
                        {**ENV, "OMP_NUM_THREADS": str(threads)})
            train = json.loads((out / "metrics.json").read_text())["train"]
            print(f"| `{name}` | {shape} | {wall:.1f} | {train['train_minutes']:.2f} | "
                  f"{train['history'][-1]['mean_loss']:.4f} |")


def ray(workers: list[int]) -> None:
    checkpoint = ROOT / "models" / "default"
    print("| engine | workers | wall (s) | listings/s |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        whole = Path(tmp) / "all.jsonl"
        lines = []
        for name in ("train.jsonl", "valid.jsonl", "test.jsonl"):
            for line in (BUNDLE / name).read_text().splitlines():
                record = json.loads(line)
                record["image"] = str(BUNDLE / record["image"]) if record.get("image") else None
                lines.append(json.dumps(record))
        whole.write_text("\n".join(lines) + "\n")
        n = len(lines)
        wall = _run([sys.executable, "-m", "training.predict", "--checkpoint", str(checkpoint), "--input", str(whole),
                     "--output", str(Path(tmp) / "single.jsonl"), "--cache-dir", str(Path(tmp) / "fresh-cache")])
        print(f"| single process (`training.predict`) | 1 | {wall:.1f} | {n / wall:.1f} |")
        for count in workers:
            wall = _run([sys.executable, "-m", "training.predict", "--engine", "ray", "--workers", str(count),
                         "--checkpoint", str(checkpoint), "--input", str(BUNDLE), "--output",
                         str(Path(tmp) / f"ray-{count}")])
            print(f"| Ray Data (`--engine ray`) | {count} | {wall:.1f} | {n / wall:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("torchrun")
    train.add_argument("--max-train", type=int, default=480)
    predict = commands.add_parser("ray")
    predict.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    if args.command == "torchrun":
        torchrun(args.max_train)
    else:
        ray([int(w) for w in args.workers.split(",")])


if __name__ == "__main__":
    main()
