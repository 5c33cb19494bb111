"""Catalogue-scale extraction on a REAL local Ray (2 CPUs, 2 model actors) against the single-process predict.

The default model with its photos (assets/myntra-small), so the workers really open photos; one
Ray instance for the module (starting it takes ~10 s on 2 cores).
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Iterator

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: bash scripts/setup.sh requirements-dev.txt")

from training.ray_predict import _init_ray, predict_on_ray, read_shards  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets" / "myntra-small"
N = 40


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    _init_ray(num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same 40 listings twice: one JSONL for the single-process run, and a folder of JSONL + CSV + Parquet parts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = tmp_path_factory.mktemp("catalogue")
    records = []
    for line in (ASSETS / "test.jsonl").read_text().splitlines()[:N]:
        record = json.loads(line)
        records.append({"id": record["id"], "text": record["text"], "image": str(ASSETS / record["image"])})
    del records[3]["image"]  # one listing without a photo
    whole = tmp / "all.jsonl"
    whole.write_text("".join(json.dumps(r) + "\n" for r in records))
    parts = tmp / "parts"
    parts.mkdir()
    (parts / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[:20]))
    with (parts / "b.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["id", "text", "image"])
        writer.writeheader()
        writer.writerows(records[20:30])
    pq.write_table(pa.Table.from_pylist(records[30:]), parts / "c.parquet")
    return {"whole": whole, "parts": parts, "tmp": tmp}


@pytest.fixture(scope="module")
def single_process(app_checkpoint: Path, catalogue: dict[str, Path]) -> dict[str, dict]:
    from training import predict

    out = catalogue["tmp"] / "single.jsonl"
    argv = sys.argv
    sys.argv = ["predict", "--checkpoint", str(app_checkpoint), "--input", str(catalogue["whole"]), "--output",
                str(out), "--cache-dir", str(catalogue["tmp"] / "cache")]
    try:
        predict.main()
    finally:
        sys.argv = argv
    return {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}


def _same(ray_record: dict, local: dict) -> None:
    assert [(s["start"], s["end"], s["attribute"]) for s in ray_record["spans"]] == [
        (s["start"], s["end"], s["attribute"]) for s in local["spans"]]
    # Both sides write scores rounded to 4 places: equal raw scores may round one unit apart.
    tolerance = 1e-4 + 1e-9
    for attribute, score in local["attribute_scores"].items():
        assert abs(ray_record["attribute_scores"][attribute] - score) <= tolerance
    for mine, theirs in zip(ray_record["spans"], local["spans"]):
        assert abs(mine["confidence"] - theirs["confidence"]) <= tolerance


def test_two_ray_actors_give_the_single_process_spans_and_scores(local_ray, app_checkpoint: Path, catalogue,
                                                                 single_process) -> None:
    out = catalogue["tmp"] / "ray-out"
    counts = predict_on_ray(app_checkpoint, catalogue["parts"], out, workers=2, batch_size=8)
    assert counts == {"written": 3, "skipped": 0, "listings": N}
    assert sorted(p.name for p in out.iterdir()) == ["a.jsonl", "b.jsonl", "c.jsonl"]  # one shard per input file
    records = list(read_shards(out))
    assert [r["id"] for r in records] == list(single_process)  # every listing once, each file in its order
    for record in records:
        _same(record, single_process[record["id"]])
    assert any(r["spans"] for r in records)


def test_a_rerun_skips_finished_shards_and_redoes_an_interrupted_one(local_ray, app_checkpoint: Path,
                                                                     catalogue) -> None:
    out = catalogue["tmp"] / "ray-out"
    kept = (out / "a.jsonl").stat().st_mtime_ns
    (out / "b.jsonl").rename(out / "b.jsonl.part")  # as an interrupted run leaves it
    counts = predict_on_ray(app_checkpoint, str(catalogue["parts"] / "*"), out, workers=2, batch_size=8)
    assert counts == {"written": 1, "skipped": 2, "listings": 10}
    assert (out / "a.jsonl").stat().st_mtime_ns == kept
    assert not list(out.glob("*.part"))
    assert len((out / "b.jsonl").read_text().splitlines()) == 10


def _predict_one_process(checkpoint: Path, source: Path, out: Path) -> list[dict]:
    from training import predict

    argv = sys.argv
    sys.argv = ["predict", "--checkpoint", str(checkpoint), "--input", str(source), "--output", str(out)]
    try:
        predict.main()
    finally:
        sys.argv = argv
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_bad_lines_keep_their_place_with_a_reason_on_ray_and_in_one_process(local_ray, app_checkpoint: Path,
                                                                            tmp_path: Path) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_text('{"id": "ok", "text": "Nike Grey Women Sweatshirt"}\nnot json\n{"id": "blank", "text": "  "}\n'
                      '{"id": "lost", "text": "Puma Black Shoes", "image": "lost.jpg"}\n')
    counts = predict_on_ray(app_checkpoint, source, tmp_path / "out", workers=1)
    assert counts["listings"] == 4
    on_ray = list(read_shards(tmp_path / "out"))
    ok, broken, blank, lost = on_ray
    assert ok["id"] == "ok" and "error" not in ok and ok["attribute_scores"]
    assert broken == {"id": None, "spans": [], "attribute_scores": {}, "error": "the line is not JSON (Expecting value)"}
    assert blank["error"] == 'its "text" is empty or missing'
    assert lost["error"] == f"its photo 'lost.jpg' does not exist (looked for {(tmp_path / 'lost.jpg').resolve()})"
    local = _predict_one_process(app_checkpoint, source, tmp_path / "local.jsonl")  # the same reader: the same lines
    assert local[1:] == on_ray[1:]
    _same(ok, local[0])


def test_csv_columns_are_read_as_in_the_app(local_ray, app_checkpoint: Path, tmp_path: Path) -> None:
    """Column names in any case and spacing, an unquoted comma caught, as `dram.data.readers` reads for the app."""
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "a.csv").write_text(" ID ,Text\nx1,Nike Grey Women Sweatshirt\nx2,Puma, Black Shoes\n")
    counts = predict_on_ray(app_checkpoint, parts, tmp_path / "out", workers=1)
    assert counts == {"written": 1, "skipped": 0, "listings": 2}
    first, second = read_shards(tmp_path / "out")
    assert first["id"] == "x1" and first["attribute_scores"] and "error" not in first
    assert second["id"] == "x2" and "more cells than the header has columns" in second["error"]


def test_an_empty_input_file_gets_an_empty_shard(local_ray, app_checkpoint: Path, tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "empty.jsonl").write_text("")
    (parts / "one.csv").write_text("id,text\nx1,Nike Grey Women Sweatshirt\n")
    counts = predict_on_ray(app_checkpoint, parts, tmp_path / "out", workers=1)
    assert counts == {"written": 2, "skipped": 0, "listings": 1}
    assert (tmp_path / "out" / "empty.jsonl").read_text() == ""


def test_input_that_names_nothing_says_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="names no file"):
        predict_on_ray(tmp_path, tmp_path / "nothing-*.jsonl", tmp_path / "out")
