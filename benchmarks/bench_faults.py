"""Faults survived: inject each fault into the Label Studio round trip and the store, count what was lost.

One real Label Studio server for the whole run (tests/label_studio_server.py, from .ls-venv), a
forwarding proxy in front of it for the faults the server cannot be asked for
(tests/fault_proxy.py), real SQLite stores. Each Label Studio round: 6 listings corrected in the
app, exported, every annotation edited in Label Studio plus one junk annotation (a `choices`
result), imported; the fault hits one step, the step is run again, and the result is audited
(tests/round_trip_audit.py). Then `kill -9` during saves and during a fine-tune's checkpoint save.

    .venv/bin/python benchmarks/bench_faults.py [--rounds 3]

Prints the markdown table that BENCHMARKS.md keeps.
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# One annotator per listing, in every store this run opens: the audit expects each listing's newest
# correction to be what trains, which double review (store.double_review) holds back for a second look.
os.environ["DRAM_DOUBLE_REVIEW_SHARE"] = "0"

from label_studio_sdk import LabelStudio  # noqa: E402

from dram.data.spans import Span  # noqa: E402
from review.training_data import corrections_as_listings
from store import StoreBusyError, open_store  # noqa: E402
from store.label_studio import LabelStudioError, export_to_label_studio, import_from_label_studio  # noqa: E402
from tests.fault_proxy import FaultProxy  # noqa: E402
from tests.label_studio_server import TOKEN, label_studio_bin, running_label_studio  # noqa: E402
from tests.round_trip_audit import Tally, tally  # noqa: E402

log = logging.getLogger("bench_faults")
ATTRIBUTES = ["colour", "material", "size"]
TEXTS = ["Red cotton shirt, size M", "Blue denim jeans 32", "Black leather belt", "White silk dress, size S",
         "Green wool jacket", "Navy cotton socks"]
ANNOTATION_CREATE = r"^/api/tasks/\d+/annotations"


@dataclass
class Row:
    fault: str
    injected: int = 0
    lost: int = 0
    duplicated: int = 0
    junk: int = 0
    messages: list[str] = field(default_factory=list)

    def add(self, result: Tally, message: str) -> None:
        self.injected += 1
        self.lost, self.duplicated, self.junk = (self.lost + result.lost, self.duplicated + result.duplicated,
                                                 self.junk + result.junk)
        if message not in self.messages:
            self.messages.append(message)


def _first_sentence(text: str) -> str:
    return text.split(". ")[0].split("\n")[0][:220]


def _attempt(step: Callable[[], object]) -> str:
    """Run a step the fault hits; what the user saw (the error, or the report's first failure)."""
    try:
        report = step()
    except (LabelStudioError, StoreBusyError) as exc:
        return _first_sentence(str(exc))
    failures = getattr(report, "failures", None)
    return _first_sentence(failures[0]) if failures else "(no error: the step went through)"


def label_studio_round(server_url: str, work: Path, name: str, fault: str) -> tuple[Tally, str]:
    """One round trip with `fault` injected into the step it names; returns the audit and the message."""
    client = LabelStudio(base_url=server_url, api_key=TOKEN)
    path = work / f"{name}.sqlite"
    with open_store(f"sqlite:///{path}", busy_timeout_s=0.05, retries=1, backoff_s=0.01) as store, \
            FaultProxy(server_url) as proxy:
        listings = [store.add_listing(text) for text in TEXTS]
        for listing, text in zip(listings, TEXTS):
            store.save_correction(listing, "alice", [Span(0, text.index(" "), "colour")])
        export = lambda: export_to_label_studio(store, proxy.url, TOKEN, name, ATTRIBUTES)  # noqa: E731
        import_ = lambda: import_from_label_studio(store, proxy.url, TOKEN, name, ATTRIBUTES)  # noqa: E731

        message = "(no error: the step went through)"
        if fault == "500 after task create":
            proxy.inject("POST", r"^/api/tasks/?(\?|$)", "error_after_forward", after=random.randrange(6))
        elif fault == "500 after annotation create":
            proxy.inject("POST", ANNOTATION_CREATE, "error_after_forward", after=random.randrange(6))
        elif fault == "connection dropped mid-export":
            proxy.inject("POST", ANNOTATION_CREATE, "drop_mid_response", after=random.randrange(6))
        if fault in ("500 after task create", "500 after annotation create", "connection dropped mid-export"):
            message = _attempt(export)
        elif fault == "store locked during export":
            message = _locked(path, export)
        for _ in range(3):  # whatever the fault left undone goes out with the next exports
            if not export().failures:
                break

        project_id = export().project_id
        tasks = {t.data["dram_listing_id"]: t.id for t in client.tasks.list(project=project_id, fields="task_only")}
        expected = {}
        for listing, text in zip(listings, TEXTS):  # every annotation gets its material in Label Studio
            (annotation,) = [a for a in client.annotations.list(tasks[listing]) if a.import_id]
            word = text.split()[1].strip(",")
            start = text.index(word)
            result = [*annotation.result, {"from_name": "label", "to_name": "text", "type": "labels",
                                           "value": {"start": start, "end": start + len(word), "labels": ["material"]}}]
            client.annotations.update(annotation.id, result=result)
            expected[listing] = [{"start": r["value"]["start"], "end": r["value"]["end"],
                                  "attribute": r["value"]["labels"][0]} for r in result]
        client.annotations.create(tasks[listings[0]], result=[  # junk: must never become a correction
            {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["fine"]}}])

        if fault == "connection dropped mid-import":
            proxy.inject("GET", r"^/api/tasks/?\?.*\bfields=all", "drop_mid_response", times=3)
            message = _attempt(import_)
        elif fault == "store locked during import":
            message = _locked(path, import_)
        import_()
        return tally(store, client, project_id, expected, ATTRIBUTES), message


def _locked(path: Path, step: Callable[[], object]) -> str:
    """Run `step` while another program holds the store's write lock."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    try:
        return _attempt(step)
    finally:
        holder.rollback()
        holder.close()


SAVER = """
import sys
from store import open_store
with open_store(sys.argv[1]) as store:
    listing = store.add_listing("Red cotton shirt, size M")
    for n in range(100000):
        store.save_correction(listing, f"saver-{n}", [{"start": 0, "end": 3, "attribute": "colour"}])
        print(n, flush=True)
"""


def kill_during_save(work: Path, name: str) -> tuple[Tally, str]:
    """kill -9 a process saving corrections in a loop; every save it reported must be there once."""
    url = f"sqlite:///{work / name}.sqlite"
    saver = subprocess.Popen([sys.executable, "-c", SAVER, url], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    time.sleep(3 + random.random() * 2)
    os.kill(saver.pid, signal.SIGKILL)
    reported = {int(line) for line in saver.communicate()[0].split()}
    with open_store(url) as store:
        names = [c.annotator for c in store.all_corrections()]
        with store.db.engine.connect() as connection:
            ok = connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    lost = len({f"saver-{n}" for n in reported} - set(names))
    return Tally(lost, len(names) - len(set(names)), 0 if ok else 1), \
        f"(none: {len(reported)} saves reported, {len(names)} stored, integrity {'ok' if ok else 'FAILED'})"


KILLED_FINETUNE = """
import logging, os, signal, sys
from pathlib import Path
import dram.checkpoint
from store import open_store
from tests.test_finetune import data, settings
from training.finetune import FinetuneSettings, finetune

def killed_mid_write(tensors, filename, metadata=None):
    Path(filename).write_bytes(os.urandom(1 << 20))
    os.kill(os.getpid(), signal.SIGKILL)

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
if sys.argv[4] == "kill":
    dram.checkpoint.save_file = killed_mid_write
scratch = Path(sys.argv[5])
with open_store(sys.argv[2]) as store:
    finetune(Path(sys.argv[1]), store, Path(sys.argv[3]), data("replay"), data("heldout"), settings(scratch),
             FinetuneSettings(0.34, 4, promote=True), progress=False)
"""


def kill_during_finetune(work: Path, name: str, source: Path) -> tuple[Tally, str]:
    """kill -9 a fine-tune while it writes the checkpoint, then fine-tune again: nothing lost, nothing left."""
    from tests.test_finetune import add_corrections, data

    url = f"sqlite:///{work / name}.sqlite"
    add_corrections(url, data("corr"))
    models = work / f"{name}-models"
    run = lambda how: subprocess.run(  # noqa: E731
        [sys.executable, "-c", KILLED_FINETUNE, str(source), url, str(models / "v1"), how, str(work / "scratch")],
        cwd=ROOT, capture_output=True, text=True)
    killed = run("kill")
    if killed.returncode != -signal.SIGKILL:
        raise RuntimeError(f"the fine-tune was not killed:\n{killed.stderr[-2000:]}")
    again = run("again")
    if again.returncode != 0:
        raise RuntimeError(f"the fine-tune after the kill failed:\n{again.stderr[-2000:]}")
    with open_store(url) as store:
        lost = len(data("corr")) - len(corrections_as_listings(store))
        versions = [v.name for v in store.list_model_versions()]
    leftovers = [p.name for p in models.iterdir() if p.name != "v1"]
    removed = next((line for line in again.stderr.splitlines() if "interrupted" in line), "")
    said = "removing the interrupted save's folder" if removed else "nothing about the leftover"
    return Tally(lost, len(versions) - len(set(versions)), len(leftovers)), \
        f"(none at the kill; the next fine-tune logged {said})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="times each fault is injected")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    random.seed(args.seed)
    binary = label_studio_bin()
    if binary is None:
        raise SystemExit("Label Studio is not installed: run scripts/install_label_studio.sh first.")
    faults = ["500 after task create", "500 after annotation create", "connection dropped mid-export",
              "connection dropped mid-import", "store locked during export", "store locked during import"]
    rows = {fault: Row(fault) for fault in [*faults, "kill -9 during save", "kill -9 during fine-tune checkpoint save"]}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as folder:
        work = Path(folder)
        (work / "ls").mkdir()
        with running_label_studio(binary, work / "ls") as server:
            for round_ in range(args.rounds):
                for number, fault in enumerate(faults):
                    rows[fault].add(*label_studio_round(server.url, work, f"r{round_}-f{number}", fault))
        from dram.checkpoint import save_checkpoint
        from tests.tiny_model import tiny_model, write_text_encoder

        model, tokenizer = tiny_model(write_text_encoder(work / "tiny-bert"), "text-only")
        source = save_checkpoint(model, tokenizer, work / "source" / "v0", {})
        for round_ in range(args.rounds):
            rows["kill -9 during save"].add(*kill_during_save(work, f"saver-{round_}"))
            rows["kill -9 during fine-tune checkpoint save"].add(*kill_during_finetune(work, f"ft-{round_}", source))
    print("| fault | injected | corrections lost | duplicated | junk | what the user saw |")
    print("|---|---:|---:|---:|---:|---|")
    for row in rows.values():  # the first message; the others differ only in ids, ports and paths
        seen = f"“{row.messages[0]}”" + (f" (+{len(row.messages) - 1} alike)" if len(row.messages) > 1 else "")
        print(f"| {row.fault} | {row.injected} | {row.lost} | {row.duplicated} | {row.junk} | {seen} |")
    print(f"\n{args.rounds} rounds in {(time.monotonic() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
