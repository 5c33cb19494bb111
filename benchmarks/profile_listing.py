"""Where one listing's extraction time goes, part by part, encoders included (issue 24).

    python -m benchmarks.profile_listing [--checkpoint models/default] [--data assets/myntra-small/test.jsonl]
        [--single 50] [--batch-size 32] [--batches 4] [--threads 1] [--repeat 3]

Each part is a function of the extraction path, wrapped while it runs: its time excludes the parts
called inside it, so the rows add up to the whole extraction ("between the parts" is the rest).
Times are the process's CPU time (each part's least over --repeat passes), not the wall clock: on a
machine shared with other work the wall clock counts the time others ran too, and the CPU time much
less (caches shared with them still count).
The same wrappers count, per part, the Python function calls and the torch operators dispatched
(two counting passes, not timed): on a loaded machine the counts tell what the timings cannot.
Parts missing from the code being profiled are skipped, so the same script profiles an older commit:
`cd <old checkout> && PYTHONPATH=. python <this file>`.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

try:
    from benchmarks.decode_identity import read_listing_list
except ImportError:  # run from an older checkout (see above): the module beside this file
    from decode_identity import read_listing_list

# (part, module, attribute): the attribute may be a function or "Class.method". Old and new names
# of the same part both appear; whichever the profiled code has is wrapped.
PARTS = [
    ("tokenising", "dram.decoding", "encode_windows"),
    ("tokenising", "dram.decoding", "encode_texts"),
    ("value-lookup features", "dram.decoding", "prior_features"),
    ("photo: read and decode", "dram.inference", "load_image"),
    ("photo: resize and normalise", "dram.nn.encoders", "ImageRegionEncoder.preprocess"),
    ("photo: resize and normalise", "dram.inference", "photo_pixels"),
    ("padding into a batch", "dram.inference", "collate"),
    ("encoders", "dram.nn.model", "DramModel.encode"),
    ("familiarity check", "dram.inference", "Extractor._check_familiarity"),
    ("ARM: guided features", "dram.nn.arm", "AttributeRangeMinimizer.conditioned"),
    ("BiLSTM + emissions", "dram.nn.arm", "SpanDecoder.emissions"),
    ("CRF Viterbi", "torchcrf", "CRF.decode"),
    ("CRF Viterbi", "dram.nn.crf_decoding", "viterbi"),
    ("CRF marginals", "dram.nn.arm", "crf_marginals"),
    ("CRF marginals", "dram.nn.crf_decoding", "crf_marginals"),
    ("tags to word spans", "dram.nn.model", "DramModel._spans"),
    ("tags to word spans", "dram.nn.arm", "tagged_spans"),
    ("word spans to character spans", "dram.decoding", "char_spans"),
    ("TEM attention per word", "dram.decoding", "_attention"),
    ("ARM scores, selection, merging (rest of decode)", "dram.decoding", "decode_listings"),
    ("ARM scores, selection, merging (rest of decode)", "dram.nn.model", "DramModel.decode"),
]
ENCODER_PARTS = {"encoders"}


class Recorder:
    """Exclusive time, Python calls and torch operators per part, from wrappers around the parts."""

    def __init__(self) -> None:
        self.stack: list[list] = []  # [part, started (CPU, wall), time spent in wrapped children (CPU, wall)]
        self.seconds: dict[str, float] = defaultdict(float)  # CPU
        self.wall: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.ops: dict[str, int] = defaultdict(int)

    def current(self) -> str:
        return self.stack[-1][0] if self.stack else "between the parts"

    def wrap(self, part: str, function: Callable) -> Callable:
        def timed(*args, **kwargs):
            self.stack.append([part, (time.process_time(), time.perf_counter()), (0.0, 0.0)])
            try:
                return function(*args, **kwargs)
            finally:
                _, started, children = self.stack.pop()
                cpu, wall = time.process_time() - started[0], time.perf_counter() - started[1]
                self.seconds[part] += cpu - children[0]
                self.wall[part] += wall - children[1]
                if self.stack:
                    self.stack[-1][2] = (self.stack[-1][2][0] + cpu, self.stack[-1][2][1] + wall)
        timed.__wrapped__ = function
        return timed

    def count_call(self, frame, event: str, arg) -> None:
        if event in ("call", "c_call"):
            self.calls[self.current()] += 1


class OperatorCounter(TorchDispatchMode):
    def __init__(self, recorder: Recorder):
        super().__init__()
        self.recorder = recorder

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.recorder.ops[self.recorder.current()] += 1
        return func(*args, **(kwargs or {}))


def install(recorder: Recorder) -> list[str]:
    """Wrap every part the code has; the parts' names found."""
    found = []
    for part, module_name, attribute in PARTS:
        try:
            owner = importlib.import_module(module_name)
        except ImportError:
            continue
        *path, name = attribute.split(".")
        for step in path:
            owner = getattr(owner, step, None)
        if owner is None or not hasattr(owner, name):
            continue
        original = getattr(owner, name)
        original = original.__func__ if isinstance(original, staticmethod) else original
        wrapped = recorder.wrap(part, original)
        raw = vars(owner).get(name) if isinstance(owner, type) else None
        setattr(owner, name, staticmethod(wrapped) if isinstance(raw, staticmethod) else wrapped)
        found.append(part)
    return found


def run(recorder: Recorder, work: Callable[[], None], repeat: int) -> tuple[float, float]:
    """`work` timed `repeat` times, each part's least CPU time kept (with the wall time of that pass),
    then counted: one pass for the Python calls, one for the operators (the counter's own Python calls
    would count too). The least total (CPU, wall) seconds."""
    best: dict[str, tuple[float, float]] = {}
    totals = []
    for _ in range(repeat):
        recorder.seconds.clear()
        recorder.wall.clear()
        started = time.process_time(), time.perf_counter()
        work()
        total = time.process_time() - started[0], time.perf_counter() - started[1]
        recorder.seconds["between the parts"] += total[0] - sum(recorder.seconds.values())
        recorder.wall["between the parts"] += total[1] - sum(recorder.wall.values())
        for part, cpu in recorder.seconds.items():
            if part not in best or cpu < best[part][0]:
                best[part] = cpu, recorder.wall[part]
        totals.append(total)
    recorder.calls.clear()
    recorder.ops.clear()
    sys.setprofile(recorder.count_call)
    try:
        work()
    finally:
        sys.setprofile(None)
    with OperatorCounter(recorder):
        work()
    recorder.seconds = defaultdict(float, {part: cpu for part, (cpu, _) in best.items()})
    recorder.wall = defaultdict(float, {part: wall for part, (_, wall) in best.items()})
    return min(totals)


def table(recorder: Recorder, total: tuple[float, float], per: int, parts: list[str]) -> str:
    rows = ["| part | CPU ms | wall ms | Python calls | torch operators |", "|---|---|---|---|---|"]
    order = [p for p in dict.fromkeys([*parts, "between the parts"]) if p in recorder.seconds]

    def row(name: str, keep: Callable[[str], bool], cpu: float | None = None, wall: float | None = None) -> str:
        cpu = sum(v for k, v in recorder.seconds.items() if keep(k)) if cpu is None else cpu
        wall = sum(v for k, v in recorder.wall.items() if keep(k)) if wall is None else wall
        calls = sum(v for k, v in recorder.calls.items() if keep(k))
        ops = sum(v for k, v in recorder.ops.items() if keep(k))
        return f"| {name} | {1000 * cpu / per:.2f} | {1000 * wall / per:.2f} | {calls / per:.0f} | {ops / per:.0f} |"

    rows += [row(part, lambda k, part=part: k == part) for part in order]
    rows.append(row("**outside the encoders**", lambda k: k not in ENCODER_PARTS))
    rows.append(row("whole extraction", lambda k: True, *total))
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=Path("models/default"))
    parser.add_argument("--data", type=Path, default=Path("assets/myntra-small/test.jsonl"))
    parser.add_argument("--single", type=int, default=50, help="listings extracted one by one")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=4, help="batches of --batch-size extracted")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="timed passes; each part's least time is kept")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from dram.inference import Extractor

    extractor = Extractor.load(args.checkpoint, "cpu", "fp32")
    listings = read_listing_list(args.data)
    recorder = Recorder()
    parts = list(dict.fromkeys(install(recorder)))
    for listing in listings[:5]:  # warm-up
        extractor.extract(listing.text, listing.image)
    single = listings[: args.single]
    total = run(recorder, lambda: [extractor.extract(l.text, l.image) for l in single], args.repeat)
    print(f"torch threads {torch.get_num_threads()}, threads in the process {len(os.listdir('/proc/self/task'))}, "
          f"load average {os.getloadavg()[0]:.1f} before the runs; CPU ms: each part's least of {args.repeat} passes, "
          "whole extraction: the least pass")
    print(f"\none listing with photo, {len(single)} listings one by one, per listing:\n")
    print(table(recorder, total, len(single), parts))
    items = [(l.text, l.image) for l in listings[: args.batch_size * args.batches]]
    total = run(recorder, lambda: extractor.extract_batch(items, batch_size=args.batch_size), args.repeat)
    print(f"\nbatches of {args.batch_size} with photos, {len(items)} listings, per listing:\n")
    print(table(recorder, total, len(items), parts))
    print(f"\nload average {os.getloadavg()[0]:.1f} after the runs")


if __name__ == "__main__":
    main()
