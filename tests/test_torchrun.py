"""Training on two processes with a REAL torchrun (gloo on the CPU), a tiny BERT and ARM's per-attribute decoders.

Two runs of the same command: `torchrun --nproc-per-node 2` and `--nproc-per-node 1` (the
reference: one process, the same global batches of 8). ARM trains only the decoders of the
attributes it selects, so ranks leave parameters unused in a step: DDP must cope.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_training_cli import _records, _write
from tests.tiny_model import TRAIN_LISTINGS, write_text_encoder

ROOT = Path(__file__).resolve().parents[1]
# Per-epoch mean loss, 2 processes vs 1 on the same global batches: equal but for dropout, whose
# masks come from each rank's own random stream, and float sums in another order.
LOSS_TOLERANCE = 0.02  # relative; measured 0.4-0.5% on this data


def _env() -> dict[str, str]:
    """One thread per process (2 cores), no hub, the repository importable from the workers."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}


def _torchrun(processes: int, out: Path, data: Path, encoder: str, tmp: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes),
               "-m", "training.train", "--train", str(data), "--valid", str(data),
               "--out", str(out), "--text-encoder", encoder, "--no-image", "--decoder", "arm", "--epochs", "2",
               "--patience", "0", "--batch-size", "8", "--device", "cpu", "--cache-dir", str(tmp / "cache")]
    return subprocess.Popen(command, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[subprocess.CompletedProcess, Path]]:
    tmp = tmp_path_factory.mktemp("torchrun")
    encoder = write_text_encoder(tmp / "tiny-bert")
    data = _write(tmp / "train.jsonl", _records(TRAIN_LISTINGS * 4))
    done = {}
    for processes in (2, 1):  # one after the other: 2 cores
        out = tmp / f"ck-{processes}"
        proc = _torchrun(processes, out, data, encoder, tmp)
        stdout, stderr = proc.communicate(timeout=600)
        done[processes] = (subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), out)
    return done


def test_two_processes_train_two_epochs_and_save_a_checkpoint_that_loads(runs) -> None:
    from dram.inference import Extractor

    result, out = runs[2]
    assert result.returncode == 0, result.stderr[-4000:]
    assert "2 processes (gloo)" in result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["processes"] == 2 and len(metrics["train"]["history"]) == 2
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".ck-2")]  # saved once, nothing left behind
    extraction = Extractor.load(out, "cpu").extract("red cotton shirt")
    assert set(extraction.attribute_scores) == {"colour", "material", "article_type"}


def test_the_loss_curve_matches_one_process_on_the_same_global_batches(runs) -> None:
    curves = {}
    for processes, (result, out) in runs.items():
        assert result.returncode == 0, result.stderr[-4000:]
        history = json.loads((out / "metrics.json").read_text())["train"]["history"]
        curves[processes] = [epoch["mean_loss"] for epoch in history]
    assert len(curves[1]) == len(curves[2]) == 2
    for one, two in zip(curves[1], curves[2]):
        assert abs(two - one) <= LOSS_TOLERANCE * one, curves


def test_finetune_on_two_processes_registers_one_new_version(runs, tmp_path: Path) -> None:
    """`torchrun -m training.finetune`: both ranks train, rank 0 alone saves and registers the version."""
    from dram.inference import Extractor
    from store import open_store
    from tests.test_finetune import add_corrections, data

    _, source = runs[1]
    db_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    add_corrections(db_url, data("corr"))
    replay = _write(tmp_path / "replay.jsonl", _records(TRAIN_LISTINGS))
    out = tmp_path / "v1"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "training.finetune", "--from", str(source), "--db", db_url, "--out", str(out),
                           "--replay", str(replay), "--replay-size", "4", "--heldout", str(replay), "--epochs", "1",
                           "--batch-size", "4", "--device", "cpu", "--cache-dir", str(tmp_path / "cache"), "--promote"],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "2 processes (gloo)" in done.stderr
    with open_store(db_url) as store:
        versions = store.list_model_versions()
        active = store.active_model_version()
    assert len(versions) == 2  # the source and one new version, not one per rank
    assert active is not None and Path(active.checkpoint_path) == out.resolve()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".v1")]
    assert set(Extractor.load(out, "cpu").extract("red cotton shirt").attribute_scores) >= {"colour", "material"}
