"""The simulated-annotator benchmark's bookkeeping, on a tiny model and a tiny WDC-PAVE-shaped data set:
the real store, the real `training.finetune` command, two rounds, two seeds, both queue orders."""
from __future__ import annotations

import json
import sqlite3
import statistics
from pathlib import Path

import pytest

from benchmarks import bench_loop
from benchmarks.queue_orders import coverage_order, diversity_order
from dram.checkpoint import save_checkpoint
from dram.data.readers import read_listings
from dram.inference import Extractor
from dram.metrics import SlotScorer, best_answers
from dram.nn.value_lookup import ValueLookup
from store import open_store
from tests.tiny_model import tiny_model, train_listings, write_text_encoder

pytestmark = pytest.mark.usefixtures("one_torch_thread")
COLOURS = ["red", "blue", "black", "white", "green", "navy"]
MATERIALS = ["cotton", "silk", "wool", "denim", "leather"]
ARTICLES = ["shirt", "dress", "jeans", "jacket", "belt"]
BRANDS = ["nike", "puma", "adidas", "raymond"]


def record(i: int, category: str, text: str, values: dict[str, str | None]) -> dict:
    """A WDC-PAVE-style record: target_scores with each value (or n/a)."""
    scores = {a: ({v: {"pid": [0], "score": 1}} if v else {"n/a": 1}) for a, v in values.items()}
    return {"id": i, "category": category, "input": text, "target_scores": scores}


def clothes(i: int) -> dict:
    colour, material, article = COLOURS[i % 6], MATERIALS[i % 5], ARTICLES[i % 5]
    return record(i, "Clothes", f"{colour} {material} {article}",
                  {"colour": colour, "material": material, "article_type": article})


def watch(i: int) -> dict:
    brand, colour = BRANDS[i % 4], COLOURS[i % 6]
    return record(i, "Watches", f"{brand} {colour} watch for men", {"brand": brand, "colour": colour})


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wdc-like")
    train = [clothes(i) for i in range(24)] + [watch(100 + i) for i in range(6)]
    test = [clothes(200 + i) for i in range(4)] + [watch(300 + i) for i in range(3)]
    for name, records in (("train_large", train), ("test", test)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


@pytest.fixture(scope="module")
def start(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The start model: a tiny random-init text-only checkpoint that knows colour, material, article_type."""
    model, tokenizer = tiny_model(write_text_encoder(tmp_path_factory.mktemp("tiny-bert")), "text-only",
                                  use_arm=False)
    model.value_lookup = ValueLookup.from_listings(train_listings())
    return save_checkpoint(model, tokenizer, tmp_path_factory.mktemp("models") / "start")


def margin_order(checkpoint: Path, texts: dict[int, str]) -> list[int]:
    """Listing ids by the start model's smallest |score - tau_R|, computed here without the store."""
    extractor = Extractor.load(checkpoint)
    margins = {}
    for listing_id, text in texts.items():
        result = extractor.extract(text)
        margins[listing_id] = (min(abs(v - result.tau_r) for v in result.attribute_scores.values()),
                               min((s.confidence for s in result.spans), default=1.0), listing_id)
    return sorted(margins, key=margins.get)


def test_rounds_chain_through_the_store_and_the_figures_add_up(data: Path, start: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "loop"
    bench_loop.main(["--data", str(data), "--category", "Watches", "--out", str(out), "--seeds", "13,14",
                     "--rounds", "2,4", "--start", str(start), "--reference", str(start),
                     "--orders", "uncertainty,random", "--finetune-args", "--epochs 1 --batch-size 4 --replay-size 4 --threads 1"])

    results = json.loads((out / "results.json").read_text())
    rows = results["rounds_measured"]
    pool = {str(100 + i) for i in range(6)}
    assert results["pool"] == 6 and results["rounds"] == [2, 4]
    assert [(r["seed"], r["order"], r["corrections"]) for r in rows] == [
        (seed, order, n) for seed in (13, 14) for order in ("uncertainty", "random") for n in (2, 4)]
    for seed in (13, 14):
        for order in ("uncertainty", "random"):
            first, second = [r for r in rows if (r["seed"], r["order"]) == (seed, order)]
            # Each round adds its own listings of the pool, and fine-tunes the previous round's version.
            assert len(first["added"]) == len(second["added"]) == 2
            assert set(first["added"]).isdisjoint(second["added"]) and set(first["added"] + second["added"]) <= pool
            assert first["finetuned_from"] == str(start.resolve())
            assert second["finetuned_from"] == str(Path(first["checkpoint"]).resolve())
            assert first["new_attributes"] == ["brand"] and second["new_attributes"] == []
            # The store holds exactly the round's corrections, the annotator added the new attribute once.
            chain = sqlite3.connect(out / f"{order}-seed{seed}" / "store.sqlite")
            assert chain.execute("select count(*), count(distinct listing_id) from corrections").fetchone() == (4, 4)
            assert chain.execute("select name, added_by from attributes").fetchall() == [("brand", "simulated annotator")]
            chain.close()

    # Uncertainty order: the first round takes the start model's two least certain pool listings.
    texts = {int(r["id"]): r["input"] for r in map(json.loads, (data / "train_large.jsonl").read_text().splitlines())
             if r["category"] == "Watches"}
    least_certain = [str(i) for i in margin_order(start, texts)[:2]]
    for seed in (13, 14):
        (first,) = [r for r in rows if (r["seed"], r["order"], r["corrections"]) == (seed, "uncertainty", 2)]
        assert sorted(first["added"]) == sorted(least_certain)
    # Random order: a seeded shuffle, so the seeds serve different listings first (with these two seeds).
    random_first = {r["seed"]: r["added"] for r in rows if r["order"] == "random" and r["corrections"] == 2}
    assert random_first[13] != random_first[14]

    # The start model's figure is the slot-rule value F1 on the new category's test listings.
    test, _ = read_listings(data / "test.jsonl")
    extractor, scorer = Extractor.load(start), SlotScorer()
    for listing in test:
        if listing.meta["category"] == "Watches":
            scorer.add(listing.target_values(), best_answers(extractor.extract(listing.text).spans))
    assert results["start"]["target_value_f1"] == pytest.approx(scorer.summary()["f1"])
    # The table's cells are the mean and spread over the seeds.
    cells = [r["target_value_f1"] for r in rows if r["order"] == "random" and r["corrections"] == 4]
    table = (out / "results.md").read_text()
    header = table.splitlines()[0].strip("| ").split(" | ")
    row_4 = next(line for line in table.splitlines() if line.startswith("| 4 |")).strip("| ").split(" | ")
    expected = f"{statistics.mean(cells) * 100:.2f} ± {statistics.stdev(cells) * 100:.2f}"
    assert row_4[header.index("Watches (random)")] == expected
    # Each round records what the promotion gate said by itself, read from the fine-tune's own metrics.
    for row in rows:
        written = json.loads((Path(row["checkpoint"]) / "metrics.json").read_text())
        assert row["gate_failed"] == written["promotion"]["failed"]
        assert row["flagged_listings"] == written["suspicion"]["flagged_listings"]
    gate_rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| random | 4 |")]
    passed = sum(not r["gate_failed"] for r in rows if r["order"] == "random" and r["corrections"] == 4)
    assert len(gate_rows) == 1 and gate_rows[0][3] == f"{passed} of 2"
    for picture in ("watches.png", "old-categories.png"):
        assert (out / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Finished chains are read back, not run again: one process per order, then a last one gathers them.
    def no_fine_tune(*args, **kwargs):
        raise AssertionError("a finished chain was fine-tuned again")

    def no_measure(*args, **kwargs):
        raise AssertionError("the start or the reference was scored again")

    monkeypatch.setattr(bench_loop, "run", no_fine_tune)
    monkeypatch.setattr(bench_loop, "measure", no_measure)  # chains and the start/reference figures are kept
    (out / "results.json").unlink()
    bench_loop.main(["--data", str(data), "--category", "Watches", "--out", str(out), "--seeds", "13,14",
                     "--rounds", "2,4", "--start", str(start), "--reference", str(start),
                     "--orders", "uncertainty,random"])
    assert json.loads((out / "results.json").read_text())["rounds_measured"] == rows
    # --gather-only leaves out a chain that never ran (seed 15) instead of running it.
    bench_loop.main(["--data", str(data), "--category", "Watches", "--out", str(out), "--seeds", "13,14,15",
                     "--rounds", "2,4", "--start", str(start), "--reference", str(start),
                     "--orders", "uncertainty,random", "--gather-only"])
    assert json.loads((out / "results.json").read_text())["rounds_measured"] == rows
    assert not (out / "random-seed15").exists()
    with pytest.raises(SystemExit, match="other rounds"):
        bench_loop.main(["--data", str(data), "--category", "Watches", "--out", str(out), "--seeds", "13",
                         "--rounds", "4", "--start", str(start), "--reference", str(start),
                         "--orders", "uncertainty,random"])


@pytest.mark.parametrize("order, text_order", [("coverage", coverage_order), ("diversity", diversity_order)])
def test_text_orders_serve_what_queue_order_chooses_among_the_waiting(order, text_order, tmp_path: Path) -> None:
    texts = ["gold ring size 7", "crystal vase", "gold ring size 8", "silver chain", "gold chain"]
    with open_store(f"sqlite:///{tmp_path / 'store.sqlite'}") as store:
        ids = [store.add_listing(t) for t in texts]
        store.save_correction(ids[0], "alice", [])
        waiting_shuffled = [ids[3], ids[0], ids[4], ids[1], ids[2]]
        batch = bench_loop.next_batch(store, order, waiting_shuffled, 2, 0.5, dict(zip(ids, texts)))
    candidates = [(i, texts[ids.index(i)]) for i in waiting_shuffled if i != ids[0]]
    assert batch == text_order(candidates, [texts[0]], 2) and ids[0] not in batch


def test_a_shorter_finished_chain_joins_a_longer_table_and_its_missing_rounds_show_as_dashes(tmp_path: Path) -> None:
    out = tmp_path / "coverage-seed13"
    out.mkdir()
    rows = [{"seed": 13, "order": "coverage", "corrections": n, "target_value_f1": 0.5, "others_value_f1": 0.8,
             "finetune_minutes": 1.0} for n in (2, 4)]
    (out / "chain.json").write_text(json.dumps(rows))
    assert bench_loop.run_chain(None, Path("start"), 13, "coverage", [2, 4, 6], out, [], None) == rows
    assert bench_loop.run_chain(None, Path("start"), 13, "coverage", [2], out, [], None) == rows[:1]
    with pytest.raises(SystemExit, match="other rounds"):
        bench_loop.run_chain(None, Path("start"), 13, "coverage", [4, 6], out, [], None)
    longer = rows + [{**rows[0], "order": "random", "corrections": n} for n in (2, 4, 6)]
    figures = {"target_value_f1": 0.2, "others_value_f1": 0.8}
    row_6 = next(l for l in bench_loop.summary_table(longer, figures, figures, "Watches").splitlines()
                 if l.startswith("| 6 |"))
    assert row_6.split(" | ")[1:3] == ["—", "50.00 ± 0.00"]
