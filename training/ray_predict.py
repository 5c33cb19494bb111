"""Catalogue-scale extraction on Ray Data: `python -m training.predict --engine ray --input ... --output DIR`.

The listings are read by Ray (JSONL line by line, CSV and Parquet by their readers), photos are
opened inside the workers, and the model runs in an actor pool of `map_batches`: each actor loads
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
FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}


def input_files(spec: str | Path) -> list[Path]:
    """The listing files a --input names: one file, every JSONL/CSV/Parquet file in a folder, or a glob."""
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in FORMATS and p.is_file())
    elif path.is_file():
        files = [path]
    else:
        files = sorted(Path(p) for p in glob.glob(str(spec), recursive=True) if Path(p).is_file())
    if not files:
        raise SystemExit(f"error: --input {spec} names no file (give a file, a folder or a glob such as 'parts/*.parquet').")
    unknown = [f for f in files if f.suffix.lower() not in FORMATS]
    if unknown:
        raise SystemExit(f"error: {unknown[0]} is not JSONL, CSV or Parquet ({', '.join(FORMATS)}); "
                         "convert it or leave it out of --input.")
    names = [shard_name(f) for f in files]
    if len(set(names)) != len(names):
        raise SystemExit("error: two input files have the same name in different folders; their output shards would "
                         "collide. Rename one or run them separately.")
    return [f.resolve() for f in files]


def shard_name(path: Path) -> str:
    return f"{path.stem}.jsonl"


def _rows_from_jsonl(batch: dict[str, np.ndarray]) -> dict[str, list]:
    """Lines of a JSONL file (from `read_text`) -> id, text, image, path; a broken line keeps its place as an error."""
    out: dict[str, list] = {"id": [], "text": [], "image": [], "path": [], "problem": []}
    for line, path in zip(batch["text"], batch["path"]):
        if not str(line).strip():
            continue  # a blank line is no listing (and `rows_in` does not count it)
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            problem = ""
        except ValueError as err:
            record, problem = {}, f"line is not a JSON object ({err})"
        _append(out, record, str(path), problem)
    return out


def rows_in(path: Path) -> int:
    """How many listings a file holds, read cheaply up front: a shard is complete when that many came back."""
    kind = FORMATS[path.suffix.lower()]
    if kind == "jsonl":
        with path.open("rb") as lines:
            return sum(1 for line in lines if line.strip())
    if kind == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    import pyarrow.csv as pcsv

    with pcsv.open_csv(path) as reader:
        return sum(batch.num_rows for batch in reader)


def _rows_from_table(batch: dict[str, np.ndarray]) -> dict[str, list]:
    """CSV or Parquet rows -> id, text, image, path (other columns are not needed to predict)."""
    out: dict[str, list] = {"id": [], "text": [], "image": [], "path": [], "problem": []}
    n = len(batch["path"])
    for i in range(n):
        record = {k: batch[k][i] for k in ("id", "text", "image") if k in batch}
        _append(out, record, str(batch["path"][i]), "")
    return out


def _append(out: dict[str, list], record: dict[str, Any], path: str, problem: str) -> None:
    def clean(value: Any) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return ""
        return str(value)

    text = clean(record.get("text"))
    out["id"].append(clean(record.get("id")))
    out["text"].append(text)
    out["image"].append(clean(record.get("image")))
    out["path"].append(path)
    out["problem"].append(problem or ("" if text.strip() else "the listing has no text"))


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
            image = str(batch["image"][i])
            photo = Path(str(batch["path"][i])).parent / image if image else None
            listings.append(Listing(id=str(batch["id"][i]), text=str(text), image=photo, spans=[]))
            rows.append(i)
        predicted = dict(zip(rows, predict_listings(self.model, self.tokenizer, listings, self.tau_r, cache_dir=None)
                             if listings else []))
        out: dict[str, list] = {"path": [], "line": []}
        for i in range(len(batch["path"])):
            record = prediction_record(str(batch["id"][i]) or None, predicted.get(i))
            if i not in predicted:
                record["error"] = str(batch["problem"][i])
            out["path"].append(str(batch["path"][i]))
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
    """One Ray dataset over every input file, rows normalised to id, text, image, path, problem."""
    import ray

    parts = []
    by_kind: dict[str, list[str]] = {}
    for f in files:
        by_kind.setdefault(FORMATS[f.suffix.lower()], []).append(str(f))
    for kind, paths in by_kind.items():
        if kind == "jsonl":
            ds = ray.data.read_text(paths, include_paths=True, drop_empty_lines=True, num_cpus=LIGHT_CPU)
            ds = ds.map_batches(_rows_from_jsonl, batch_format="numpy", num_cpus=LIGHT_CPU)
        elif kind == "csv":
            ds = ray.data.read_csv(paths, include_paths=True, num_cpus=LIGHT_CPU)
            ds = ds.map_batches(_rows_from_table, batch_format="numpy", num_cpus=LIGHT_CPU)
        else:
            ds = ray.data.read_parquet(paths, include_paths=True, num_cpus=LIGHT_CPU)
            ds = ds.map_batches(_rows_from_table, batch_format="numpy", num_cpus=LIGHT_CPU)
        parts.append(ds)
    return parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]


def predict_on_ray(checkpoint: Path, inputs: str | Path, output: Path, *, workers: int | None = None,
                   batch_size: int = 64, device: str | None = None, tau_r: float | None = None,
                   num_cpus: int | None = None, precision: str | None = None) -> dict[str, int]:
    """Predict every listing of `inputs` into shards under `output`; finished shards are skipped.

    Returns counts: shards written and skipped, listings written. `workers` actors (default: one per
    GPU when the cluster has GPUs, else one per two CPUs), each with `batch_size` listings per call.
    """
    import ray
    from tqdm import tqdm

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
        # One CPU stays unreserved for Ray's own file listing and readers (they ask for a whole one).
        num_cpus=LIGHT_CPU if gpus else max(LIGHT_CPU, (cpus - 1) / workers),
        num_gpus=1 if gpus else 0,
        max_restarts=2,  # an actor that dies is started again... (Ray's actor options; Ray < 2.64 takes them here)
        max_task_retries=2,  # ...and the batch it was on is retried
    )
    # Rows of different files arrive interleaved (Ray runs them in parallel): each goes to its file's
    # .part, and a shard is renamed into place once all the listings its file holds are in.
    expected = {str(f): rows_in(f) for f in todo}
    got = dict.fromkeys(expected, 0)
    written, listings = 0, 0

    def finish(path: str) -> None:
        nonlocal written
        part = output / (shard_name(Path(path)) + ".part")
        if not part.exists():
            part.write_text("")  # a file without listings still gets its (empty) shard
        part.replace(output / shard_name(Path(path)))
        written += 1

    for path, count in expected.items():
        if count == 0:
            finish(path)
    with tqdm(total=sum(expected.values()), desc="listings", unit="listing") as bar:
        for batch in predicted.iter_batches(batch_size=None, batch_format="numpy"):
            by_path: dict[str, list[str]] = {}
            for path, line in zip(batch["path"], batch["line"]):
                by_path.setdefault(str(path), []).append(str(line))
            for path, lines in by_path.items():
                with (output / (shard_name(Path(path)) + ".part")).open("a", encoding="utf-8") as part:
                    part.write("".join(line + "\n" for line in lines))
                got[path] += len(lines)
                listings += len(lines)
                if got[path] == expected[path]:
                    finish(path)
            bar.update(len(batch["path"]))
    short = {p: (got[p], n) for p, n in expected.items() if got[p] != n}
    if short:
        path, (came, wanted) = next(iter(short.items()))
        raise RuntimeError(f"{len(short)} shards did not get all their listings (first: {path}, {came} of {wanted}); "
                           "their .part files are left and a rerun redoes them.")
    return {"written": written, "skipped": skipped, "listings": listings}


def read_shards(output: Path) -> Iterable[dict]:
    """Every prediction line in an output folder (for checks and tests)."""
    for shard in sorted(output.glob("*.jsonl")):
        for line in shard.read_text().splitlines():
            yield json.loads(line)
