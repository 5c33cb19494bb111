"""Catalogue-scale extraction on Ray Data: `python -m training.predict --engine ray --input ... --output DIR`.

Each input file is read in a Ray task by `dram.data.readers`, the reader the app and every other job
use (JSONL, CSV, Parquet and the public formats; a bad line keeps its place with its reason), photos
are opened inside the workers, and the model runs in an actor pool of `map_batches`: each actor loads
the checkpoint once and serves many batches. Every input file becomes one output shard,
`DIR/<file name>.jsonl`, with the same lines as the single-process `predict`; a shard is written
beside and renamed when its last listing is in, so a rerun skips the finished ones and redoes only
what an interruption cut short. An actor that dies is restarted and its batch retried.

Local Ray by default (`num_cpus` from the machine, a small object store, no dashboard);
`RAY_ADDRESS` points it at a cluster, where the checkpoint, the inputs (with their photos) and DIR
must be at the same path on every node, as must this project and its environment.
"""
from __future__ import annotations

import glob
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")  # the files a folder or glob of inputs contributes


def input_files(spec: str | Path) -> list[Path]:
    """The listing files a --input names: one file, every JSONL/CSV/Parquet file in a folder, or a glob."""
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
    elif path.is_file():
        files = [path]
    else:
        files = sorted(Path(p) for p in glob.glob(str(spec), recursive=True) if Path(p).is_file())
    if not files:
        raise SystemExit(f"error: --input {spec} names no file (give a file, a folder or a glob such as 'parts/*.parquet').")
    unknown = [f for f in files if f.suffix.lower() not in SUFFIXES]
    if unknown:
        raise SystemExit(f"error: {unknown[0]} is not JSONL, CSV or Parquet ({', '.join(SUFFIXES)}); "
                         "convert it or leave it out of --input.")
    names = [shard_name(f) for f in files]
    if len(set(names)) != len(names):
        raise SystemExit("error: two input files have the same name in different folders; their output shards would "
                         "collide. Rename one or run them separately.")
    return [f.resolve() for f in files]


def shard_name(path: Path) -> str:
    return f"{path.stem}.jsonl"


def _file_rows(item: dict[str, Any]) -> list[dict[str, Any]]:
    """Every row of one input file, read by `dram.data.readers` as every other reader of listings reads it:
    id, text, photo path, the reason a row is unusable (its line keeps its place), and `of`, how many rows
    the file holds, so the shard knows when it is complete."""
    from dram.data.readers import read_listing_file

    read = read_listing_file(item["path"], allow_empty=True)
    return [{"path": item["path"], "of": len(read.rows), "id": row.id, "problem": row.problem,
             "text": row.listing.text if row.listing else "",
             "image": str(row.listing.image) if row.listing and row.listing.image is not None else ""}
            for row in read.rows]


class Predictor:
    """One Ray actor: loads the checkpoint once, then predicts batch after batch (the photos read here)."""

    def __init__(self, checkpoint: str, device: str | None, tau_r: float | None, threads: int,
                 precision: str | None) -> None:
        """`precision` None: the run default (`RunSettings`; imported here, as torch is: Ray's reading
        workers import this module too, and need neither)."""
        import torch

        from dram.checkpoint import load_checkpoint, pick_device
        from dram.nn.precision import RunSettings

        logging.getLogger().setLevel(logging.WARNING)
        torch.set_num_threads(max(1, threads))
        self.model, self.tokenizer, _ = load_checkpoint(Path(checkpoint), pick_device(device),
                                                        precision or RunSettings.precision)
        self.tau_r = tau_r

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        from dram.data.listings import Listing
        from training.predictions import predict_listings, prediction_record

        listings, rows = [], []
        for i, (text, problem) in enumerate(zip(batch["text"], batch["problem"])):
            if problem:
                continue
            image = str(batch["image"][i])  # the reader made it absolute and found it there
            listings.append(Listing(id=str(batch["id"][i]), text=str(text), image=Path(image) if image else None))
            rows.append(i)
        predicted = dict(zip(rows, predict_listings(self.model, self.tokenizer, listings, self.tau_r, cache_dir=None)
                             if listings else []))
        out: dict[str, list] = {"path": [], "of": [], "line": []}
        for i in range(len(batch["path"])):
            record = prediction_record(str(batch["id"][i]) or None, predicted.get(i), str(batch["problem"][i]))
            out["path"].append(str(batch["path"][i]))
            out["of"].append(int(batch["of"][i]))
            out["line"].append(json.dumps(record, ensure_ascii=False))
        return out


def _init_ray(num_cpus: int | None) -> None:
    import ray

    env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TQDM_DISABLE": "1"}}
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        log.info("joining the Ray cluster at %s", os.environ["RAY_ADDRESS"])
        ray.init(runtime_env=env, log_to_driver=True)
        return
    ray.init(num_cpus=num_cpus or os.cpu_count() or 1, object_store_memory=256 * 1024 ** 2,
             include_dashboard=False, runtime_env=env, log_to_driver=True, logging_level=logging.WARNING)


# Reading and reshaping rows is light: a quarter of a CPU each, and the model actors leave one CPU
# unreserved, so they never starve the readers that feed them (with whole CPUs on 2 cores, the
# readers waited for CPUs the actors held, and nothing moved).
LIGHT_CPU = 0.25


def _dataset(files: list[Path]):
    """One Ray dataset over every input file: each file read by one task, its rows in the file's order."""
    import ray

    return ray.data.from_items([{"path": str(f)} for f in files]).flat_map(_file_rows, num_cpus=LIGHT_CPU)


def predict_on_ray(checkpoint: Path, inputs: str | Path, output: Path, *, workers: int | None = None,
                   batch_size: int = 64, device: str | None = None, tau_r: float | None = None,
                   num_cpus: int | None = None, precision: str | None = None) -> dict[str, int]:
    """Predict every listing of `inputs` into shards under `output`; finished shards are skipped.

    Returns counts: shards written and skipped, listings written. `workers` actors (default: one per
    GPU when the cluster has GPUs, else one per two CPUs), each with `batch_size` listings per call.
    """
    import ray

    files = input_files(inputs)
    output.mkdir(parents=True, exist_ok=True)
    todo = [f for f in files if not (output / shard_name(f)).exists()]
    skipped = len(files) - len(todo)
    if skipped:
        log.info("%d of %d shards are already in %s; skipping them", skipped, len(files), output)
    if not todo:
        return {"written": 0, "skipped": skipped, "listings": 0}
    for stale in output.glob("*.jsonl.part"):
        stale.unlink()  # what an interrupted run left
    if not (checkpoint / "config.json").is_file():
        raise SystemExit(f"error: {checkpoint} is not a checkpoint folder (no config.json).")
    _init_ray(num_cpus)
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0)) if device != "cpu" else 0
    cpus = int(resources.get("CPU", 1))
    if workers is None:
        workers = gpus or max(1, cpus // 2)
    threads = max(1, cpus // workers) if not gpus else 1
    log.info("predicting %d files on Ray with %d actors (%s)", len(todo), workers,
             f"{gpus // workers or 1} GPU each" if gpus else f"{threads} CPU threads each")
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # a file's rows come back in the file's order
    predicted = _dataset(todo).map_batches(
        Predictor,
        fn_constructor_kwargs={"checkpoint": str(checkpoint.resolve()), "device": "cuda" if gpus else device,
                               "tau_r": tau_r, "threads": threads, "precision": precision},
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        # One CPU stays unreserved for the readers and Ray's own work, so the actors never starve them.
        num_cpus=LIGHT_CPU if gpus else max(LIGHT_CPU, (cpus - 1) / workers),
        num_gpus=1 if gpus else 0,
        max_restarts=2,  # an actor that dies is started again... (Ray's actor options; Ray < 2.64 takes them here)
        max_task_retries=2,  # ...and the batch it was on is retried
    )
    written, listings = _write_shards(predicted, todo, output)
    return {"written": written, "skipped": skipped, "listings": listings}


def _write_shards(predicted, files: list[Path], output: Path) -> tuple[int, int]:
    """(shards written, listings written). Rows of different files arrive interleaved (Ray runs them in
    parallel): each goes to its file's .part, and a shard is renamed into place once all the rows its file
    holds are in (each row says how many); a file with no rows gets its empty shard once every row came."""
    from tqdm import tqdm

    expected: dict[str, int] = {}
    got = dict.fromkeys((str(f) for f in files), 0)
    written = 0

    def finish(path: str) -> None:
        nonlocal written
        part = output / (shard_name(Path(path)) + ".part")
        if not part.exists():
            part.write_text("")
        part.replace(output / shard_name(Path(path)))
        written += 1

    with tqdm(desc="listings", unit="listing") as bar:
        for batch in predicted.iter_batches(batch_size=None, batch_format="numpy"):
            by_path: dict[str, list[str]] = {}
            for path, of, line in zip(batch["path"], batch["of"], batch["line"]):
                by_path.setdefault(str(path), []).append(str(line))
                expected[str(path)] = int(of)
            for path, lines in by_path.items():
                with (output / (shard_name(Path(path)) + ".part")).open("a", encoding="utf-8") as part:
                    part.write("".join(line + "\n" for line in lines))
                got[path] += len(lines)
                if got[path] == expected[path]:
                    finish(path)
            bar.total = sum(expected.values())  # known file by file, as their first rows come
            bar.update(len(batch["path"]))
    for path in got.keys() - expected.keys():
        finish(path)
    short = {p: (got[p], n) for p, n in expected.items() if got[p] != n}
    if short:
        path, (came, wanted) = next(iter(short.items()))
        raise RuntimeError(f"{len(short)} shards did not get all their listings (first: {path}, {came} of {wanted}); "
                           "their .part files are left and a rerun redoes them.")
    return written, sum(got.values())


def read_shards(output: Path) -> Iterable[dict]:
    """Every prediction line in an output folder (for checks and tests)."""
    for shard in sorted(output.glob("*.jsonl")):
        for line in shard.read_text().splitlines():
            yield json.loads(line)
