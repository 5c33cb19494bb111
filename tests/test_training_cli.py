"""train / evaluate / predict as the commands people run: subprocesses on a tiny JSONL and a tiny BERT.

Each subprocess costs ~5 s of imports, so independent commands run side by side, and the error
paths that share a mechanism with one already proven in a subprocess (run_cli's CheckpointError
line, load_data's SystemExit message) run in-process through the same `run_cli(main)` entry.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dram.paths import ROOT
from tests.tiny_model import TRAIN_LISTINGS, write_text_encoder



def _records(listings) -> list[dict]:
    out = []
    for i, (text, spans) in enumerate(listings):
        marks = []
        for value, attribute in spans:
            start = text.index(value)
            marks.append({"start": start, "end": start + len(value), "attribute": attribute})
        out.append({"id": f"p{i}", "text": text, "spans": marks})
    return out


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def _start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(procs: dict[str, subprocess.Popen]) -> dict[str, subprocess.CompletedProcess]:
    done = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("cli")
    encoder = write_text_encoder(tmp / "tiny-bert")
    data = _write(tmp / "train.jsonl", _records(TRAIN_LISTINGS))
    unknown = _write(tmp / "unknown.jsonl", _records([("red cotton shirt size l", [("l", "size")]),
                                                       ("blue jeans size m", [("m", "size")])]))
    ck = tmp / "ck"
    common = ["--cache-dir", str(tmp / "cache")]
    first = _finish({
        "train": _start("training.train", "--train", str(data), "--valid", str(data), "--out", str(ck),
                        "--text-encoder", encoder, "--no-image", "--epochs", "1", "--batch-size", "4",
                        "--threads", "1", *common),
        "missing": _start("training.train", "--train", str(tmp / "nope.jsonl"), "--out", str(tmp / "ck2"),
                          "--text-encoder", encoder, "--no-image", *common),
        # No --valid, no --no-image, no decoder: what a user with their own photo-less file runs.
        "defaults": _start("training.train", "--train", str(_write(tmp / "many.jsonl", _records(TRAIN_LISTINGS * 4))),
                           "--out", str(tmp / "ck-defaults"), "--text-encoder", encoder, "--epochs", "1",
                           "--threads", "1", *common),
    })
    assert first["train"].returncode == 0, first["train"].stderr[-3000:]
    second = _finish({
        "evaluate": _start("training.evaluate", "--checkpoint", str(ck), "--data", str(data),
                           "--json", str(tmp / "metrics.json"), *common),
        "predict": _start("training.predict", "--checkpoint", str(ck), "--input", str(data),
                          "--output", str(tmp / "out" / "pred.jsonl"), *common),
    })
    return {**first, **second, "tmp": tmp, "ck": ck, "data": data, "unknown": unknown, "encoder": encoder}


def _in_process(monkeypatch, module, *argv: str) -> SystemExit:
    """Run `python -m training.<module> argv...` in this process; the SystemExit it ends with."""
    from training.common import run_cli

    monkeypatch.setattr(sys, "argv", [module.__name__, *argv])
    with pytest.raises(SystemExit) as ended:
        run_cli(module.main)
    return ended.value


def test_train_writes_a_checkpoint(runs) -> None:
    ck = runs["ck"]
    # evaluate and predict, run on it since, add their ONNX graphs (onnx/, dram/nn/onnx_engine.py): not train's.
    assert sorted(p.name for p in ck.iterdir() if p.name != "onnx") == [
        "config.json", "familiarity.safetensors", "metrics.json", "model.safetensors", "text_encoder", "value_lookup.json"]
    config = json.loads((ck / "config.json").read_text())
    assert config["variant"] == "text-only" and config["use_image"] is False
    assert config["attributes"] == ["article_type", "colour", "material"]  # most frequent first
    assert config["text_encoder"] == runs["encoder"]
    assert config["train"]["epochs"] == 1 and config["train"]["batch_size"] == 4
    metrics = json.loads((ck / "metrics.json").read_text())
    assert metrics["train"]["listings"] == 8 and len(metrics["train"]["history"]) == 1
    assert "tag_f1" in metrics["valid"] and "cls_f1" in metrics["valid"]
    printed = json.loads(runs["train"].stdout.strip().splitlines()[-1])
    assert printed["checkpoint"] == str(ck)
    assert set(printed["valid"]) >= {"tag_f1", "cls_f1", "precision", "recall"}
    assert "per_attribute" not in printed["valid"]


def test_train_defaults_without_photos_split_validation_and_train_the_joint_text_model(runs) -> None:
    result = runs["defaults"]
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((runs["tmp"] / "ck-defaults" / "config.json").read_text())
    assert config["variant"] == "text-only" and config["use_arm"] is False and config["value_prior"] is True
    assert config["frozen_fraction"] == 0.5 and config["train"]["lr_encoder"] == 1e-4 and config["span_scorer"] is True
    n = 4 * len(TRAIN_LISTINGS)
    assert f"{n // 10 if n >= 100 else 10} of the training listings are kept aside for validation" in result.stderr
    metrics = json.loads((runs["tmp"] / "ck-defaults" / "metrics.json").read_text())
    assert metrics["train"]["listings"] == n - (n // 10 if n >= 100 else 10) and "valid" in metrics


def test_evaluate_prints_metrics_and_writes_json(runs) -> None:
    result = runs["evaluate"]
    assert result.returncode == 0, result.stderr[-3000:]
    headline = next(line for line in result.stdout.splitlines() if line.startswith("listings"))
    assert "listings 8" in headline and "CLS-F1" in headline and "TAG-F1" in headline
    assert " P " in headline and " R " in headline
    summary = json.loads((runs["tmp"] / "metrics.json").read_text())
    assert summary["n_listings"] == 8
    assert set(summary) == {"n_listings", "cls_f1", "tag_f1", "precision", "recall", "per_attribute", "value"}
    assert f"TAG-F1 {summary['tag_f1']:.4f}" in headline and f"CLS-F1 {summary['cls_f1']:.4f}" in headline
    value_line = next(line for line in result.stdout.splitlines() if line.startswith("value F1 (slot rule)"))
    assert f"value F1 (slot rule) {summary['value']['f1']:.4f}" in value_line and "NN " in value_line


def test_predict_writes_one_line_per_listing(runs) -> None:
    result = runs["predict"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wrote 8 predictions" in result.stdout
    lines = (runs["tmp"] / "out" / "pred.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["id"] for r in records] == [f"p{i}" for i in range(8)]
    texts = [t for t, _ in TRAIN_LISTINGS]
    for record, text in zip(records, texts):
        assert set(record) == {"id", "spans", "attribute_scores"}
        assert set(record["attribute_scores"]) == {"article_type", "colour", "material"}
        for span in record["spans"]:
            assert set(span) == {"start", "end", "attribute", "text", "confidence"}
            assert text[span["start"]:span["end"]] == span["text"]


def test_unknown_attribute_gives_a_clear_message(runs, monkeypatch) -> None:
    from training import evaluate

    ended = _in_process(monkeypatch, evaluate, "--checkpoint", str(runs["ck"]), "--data", str(runs["unknown"]),
                        "--cache-dir", str(runs["tmp"] / "cache"))
    # SystemExit with a string: the interpreter prints exactly this line and exits 1, no traceback.
    assert isinstance(ended.code, str) and ended.code.startswith("error: ")
    assert "not trained on: size" in ended.code and "(model: article_type, colour, material)" in ended.code


def test_missing_data_file_is_a_clear_error(runs) -> None:
    result = runs["missing"]
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "nope.jsonl does not exist" in result.stderr
    assert not (runs["tmp"] / "ck2").exists()


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_folder_that_is_not_a_checkpoint_gives_the_checkpoint_error(runs, monkeypatch, capsys, command) -> None:
    import importlib

    folder = runs["tmp"] / "not-a-checkpoint"
    folder.mkdir(exist_ok=True)
    (folder / "notes.txt").write_text("hello")
    module = importlib.import_module(f"training.{command}")
    data_flag = "--data" if command == "evaluate" else "--input"
    extra = [] if command == "evaluate" else ["--output", str(runs["tmp"] / "never.jsonl")]
    ended = _in_process(monkeypatch, module, "--checkpoint", str(folder), data_flag, str(runs["data"]), *extra)
    assert ended.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1  # one line, not a traceback
    assert "not a DRAM checkpoint" in err and "training.build_default" in err


def test_predict_keeps_a_line_for_a_listing_without_readable_words(runs, monkeypatch) -> None:
    from training import predict

    data = _write(runs["tmp"] / "odd.jsonl", _records([("red shirt", []), ("\u200b", []), ("blue jeans", [])]))
    out = runs["tmp"] / "odd-pred.jsonl"
    monkeypatch.setattr(sys, "argv", ["predict", "--checkpoint", str(runs["ck"]), "--input", str(data),
                                      "--output", str(out), "--cache-dir", str(runs["tmp"] / "cache")])
    predict.main()
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["p0", "p1", "p2"]


def test_evaluate_runs_the_engine_asked_for_with_the_same_figures(runs, monkeypatch) -> None:
    """evaluate without --encoder-engine ran auto (ONNX Runtime here: its graph is beside the checkpoint); --encoder-engine
    torch gives the same figures."""
    from training import evaluate

    assert list((runs["ck"] / "onnx").glob("text-fp32-*.onnx"))
    monkeypatch.setenv("DRAM_ENCODER_ENGINE", "onnx")  # the option beats it; undone after the test
    out = runs["tmp"] / "metrics-torch.json"
    monkeypatch.setattr(sys, "argv", ["evaluate", "--checkpoint", str(runs["ck"]), "--data", str(runs["data"]),
                                      "--encoder-engine", "torch", "--json", str(out), "--cache-dir", str(runs["tmp"] / "cache")])
    evaluate.main()
    auto, torch_run = json.loads((runs["tmp"] / "metrics.json").read_text()), json.loads(out.read_text())
    assert os.environ["DRAM_ENCODER_ENGINE"] == "torch"
    for key in ("tag_f1", "cls_f1", "precision", "recall"):
        assert torch_run[key] == pytest.approx(auto[key], abs=1e-9), key
    assert torch_run["value"]["f1"] == pytest.approx(auto["value"]["f1"], abs=1e-9)


def test_sweep_tau_prints_one_row_per_tau_and_matches_evaluate(runs, monkeypatch, capsys) -> None:
    from training import sweep_tau

    tau = json.loads((runs["ck"] / "config.json").read_text())["tau_r"]  # chosen on validation by train
    monkeypatch.setattr(sys, "argv", ["sweep_tau", "--checkpoint", str(runs["ck"]), "--data", str(runs["data"]),
                                      "--taus", f"{tau},0.99", "--cache-dir", str(runs["tmp"] / "cache")])
    sweep_tau.main()
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if line.startswith("| 0.")]
    assert [r[0].strip() for r in rows] == [f"{tau:.2f}", "0.99"]
    at_tau = json.loads((runs["tmp"] / "metrics.json").read_text())  # evaluate ran at the checkpoint's tau_R
    assert float(rows[0][2]) == pytest.approx(100 * at_tau["tag_f1"], abs=0.006)
    assert float(rows[0][1]) == pytest.approx(100 * at_tau["cls_f1"], abs=0.006)


def test_ablation_trains_each_variant_and_seed_and_merges_saved_runs(runs, monkeypatch, capsys) -> None:
    from training import ablation

    saved = runs["tmp"] / "ablation.json"
    monkeypatch.setattr(sys, "argv", [
        "ablation", "--train", str(runs["data"]), "--test", str(runs["data"]), "--variants", "text-only,v-irc",
        "--policies", "dynet,prototype", "--seeds", "1,2", "--epochs", "1", "--batch-size", "4", "--threads", "1",
        "--text-encoder", runs["encoder"],
        "--json", str(saved), "--cache-dir", str(runs["tmp"] / "cache")])
    ablation.main()
    printed = capsys.readouterr().out
    rows = json.loads(saved.read_text())
    # V-IRC has no ARM: trained once per seed, not once per policy.
    assert [(r["variant"], r["policy"], r["seed"]) for r in rows] == [
        ("text-only", "dynet", 1), ("text-only", "dynet", 2), ("text-only", "prototype", 1),
        ("text-only", "prototype", 2), ("v-irc", "(no ARM)", 1), ("v-irc", "(no ARM)", 2)]
    assert all(0.0 <= r["tag_f1"] <= 1.0 for r in rows)
    table_rows = [l for l in printed.splitlines() if l.startswith("| text-only") or l.startswith("| v-irc")]
    assert [l.split(" | ")[:3] for l in table_rows] == [
        ["| text-only", "dynet", "2"], ["| text-only", "prototype", "2"], ["| v-irc", "(no ARM)", "2"]]

    monkeypatch.setattr(sys, "argv", ["ablation", "--table", str(saved), str(saved)])
    ablation.main()
    merged = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("| text-only"))
    assert merged.startswith("| text-only | dynet | 4 |")  # both files' runs in one row
