"""Building the default model while the app answers: where it goes, when it is built, how its progress
reads, and the served model's handle going from "building" to "ready" (with a fake builder: the real
build takes about 6 minutes and runs in scripts/test.sh)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import gradio as gr
import pytest

from dram.checkpoint import save_checkpoint
from dram.paths import DEFAULT_CHECKPOINT
from tests.tiny_model import ATTRIBUTES, tiny_model
from ui.model_build import BuildProgress, checkpoint_path, default_place, should_build
from ui.serving import ModelBuilding, ModelHandle, api_errors, user_errors

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def persistent(tmp_path: Path) -> Path:
    """A stand-in for a Space's /data."""
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("env, expected", [
    ({}, DEFAULT_CHECKPOINT),  # a developer's machine: the repository's models/default
    ({"SPACE_ID": "user/dram"}, "persistent"),  # a Space with persistent storage: built once there, reused
    ({"SPACE_ID": "user/dram", "DRAM_CHECKPOINT": "/elsewhere/m"}, Path("/elsewhere/m")),  # a named model wins
    ({"DRAM_CHECKPOINT": "/elsewhere/m"}, Path("/elsewhere/m")),
])
def test_checkpoint_path(env: dict, expected: Path | str, persistent: Path) -> None:
    wanted = persistent / "models" / "default" if expected == "persistent" else expected
    assert checkpoint_path(env, persistent) == wanted


def test_a_space_without_persistent_storage_keeps_models_default(tmp_path: Path) -> None:
    assert default_place({"SPACE_ID": "user/dram"}, tmp_path / "no-data") == DEFAULT_CHECKPOINT


@pytest.mark.parametrize("env, where, existing, builds", [
    ({"SPACE_ID": "user/dram"}, "default", False, True),
    ({"SPACE_ID": "user/dram"}, "persistent", False, True),  # /data/models/default, the Space's default
    ({"SPACE_ID": "user/dram"}, "persistent", True, False),  # built on an earlier start: reused
    ({"DRAM_BUILD_MISSING": "1"}, "default", False, True),
    ({"DRAM_BUILD_MISSING": "1"}, "other", False, True),  # asked for explicitly: built where the app loads
    ({}, "default", False, False),  # a developer's machine: say how to build, do not start a 6-minute job
    ({"SPACE_ID": "user/dram"}, "other", False, False),  # DRAM_CHECKPOINT names another model: never overwrite
])
def test_should_build(env: dict, where: str, existing: bool, builds: bool, persistent: Path, tmp_path: Path,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    import ui.model_build

    monkeypatch.setattr(ui.model_build, "DEFAULT_CHECKPOINT", tmp_path / "models" / "default")
    storage = persistent if where == "persistent" else tmp_path / "no-data"
    path = tmp_path / "mine" if where == "other" else default_place(env, storage)
    if existing:
        path.mkdir(parents=True)
        (path / "model.safetensors").write_bytes(b"")
    assert should_build(path, env, storage) is builds


def test_progress_in_words() -> None:
    now = [0.0]
    progress = BuildProgress(clock=lambda: now[0])
    assert progress.describe() == "starting"
    progress.stage_begins("preparing")
    assert progress.describe() == "reading the listings and their photos"
    now[0] = 60.0
    progress.epoch_ends(0, 6)
    assert progress.describe() == "epoch 1 of 6"
    now[0] = 60.0 + 2 * 60  # two epochs of a minute: four more take 4 minutes
    progress.epoch_ends(2, 6)
    assert progress.describe() == "epoch 3 of 6, about 4 min left"
    now[0] += 120  # and count down during the epoch
    assert progress.describe() == "epoch 3 of 6, about 2 min left"
    progress.epoch_ends(6, 6)
    assert progress.describe() == "training done, choosing tau_R on the validation listings"
    progress.stage_begins("testing")
    assert progress.describe() == "testing it on the held-out listings"


def test_handle_serves_the_model_once_built(tmp_path: Path, tiny_encoder_dir: str) -> None:
    release = threading.Event()

    def builder(path: Path, progress: BuildProgress) -> None:
        progress.epoch_ends(0, 6)
        progress.epoch_ends(2, 6)
        release.wait(60)
        save_checkpoint(*tiny_model(tiny_encoder_dir, "text-only"), path)

    handle = ModelHandle(tmp_path / "default").build_then_load(builder)
    assert handle.state == "building" and handle.attributes == [] and handle.colours == {}
    assert not handle.ready.is_set()
    with pytest.raises(ModelBuilding, match=r"being built \(epoch 3 of 6.*try again when it is ready"):
        handle.get()
    release.set()
    assert handle.ready.wait(60), handle.error
    assert handle.state == "ready" and handle.build is None
    assert handle.attributes == ATTRIBUTES and list(handle.colours) == ATTRIBUTES
    assert handle.get().attributes == ATTRIBUTES


def test_a_failed_build_says_so(tmp_path: Path) -> None:
    def builder(path: Path, progress: BuildProgress) -> None:
        raise OSError("disk full")

    handle = ModelHandle(tmp_path / "default").build_then_load(builder)
    deadline = time.monotonic() + 10
    while handle.state == "building" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert handle.state == "missing" and "disk full" in (handle.error or "")
    with pytest.raises(Exception, match="disk full"):
        handle.get()


def test_requests_during_the_build_warn_in_the_page_and_fail_through_the_api() -> None:
    def busy() -> str:
        raise ModelBuilding("The model is being built (epoch 1 of 6); try again when it is ready.")

    with pytest.warns(UserWarning, match="being built"):  # gr.Warning outside a request is a Python warning
        assert user_errors(busy)() == gr.skip()
    with pytest.raises(gr.Error, match="being built"):
        api_errors(busy)()
