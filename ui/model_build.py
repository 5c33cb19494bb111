"""The default model built while the app already answers: where it goes, when to build it, how far it got.

A Hugging Face Space starts from the repository alone, without models/. Building before launching
kept its page silent for about 6 minutes; instead the app launches at once, builds in a background
thread (`ModelHandle.build_then_load`) and shows `BuildProgress.describe()` until the model is served.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Mapping

from dram.paths import DEFAULT_CHECKPOINT

PERSISTENT = Path("/data")  # a Space's persistent storage, where it has one: kept across restarts
STAGE_WORDS = {"starting": "starting", "preparing": "reading the listings and their photos",
               "testing": "testing it on the held-out listings", "saving": "saving it"}


def default_place(env: Mapping[str, str] = os.environ, persistent: Path = PERSISTENT) -> Path:
    """Where the default model lives when nobody names one: on a Space with persistent storage in
    /data/models/default (built once, reused on the next start), else models/default."""
    if env.get("SPACE_ID") and persistent.is_dir() and os.access(persistent, os.W_OK):
        return persistent / "models" / "default"
    return DEFAULT_CHECKPOINT


def checkpoint_path(env: Mapping[str, str] = os.environ, persistent: Path = PERSISTENT) -> Path:
    """The checkpoint the app serves: DRAM_CHECKPOINT, else the default model's place."""
    named = env.get("DRAM_CHECKPOINT")
    return Path(named) if named else default_place(env, persistent)


def should_build(path: Path, env: Mapping[str, str] = os.environ, persistent: Path = PERSISTENT) -> bool:
    """Build a missing model where DRAM_BUILD_MISSING=1 asks for it, or on a Space (SPACE_ID) at the
    default place only: a model DRAM_CHECKPOINT names is never written over. A developer's machine
    instead gets the page saying how to build it (a few minutes they may not want to spend)."""
    if (path / "model.safetensors").exists():
        return False
    if env.get("DRAM_BUILD_MISSING") == "1":
        return True
    return bool(env.get("SPACE_ID")) and path.resolve() == default_place(env, persistent).resolve()


class BuildProgress:
    """How far the build got: told by the build's thread, read in words by the page's timer."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.stage = "starting"
        self.epochs_done = 0
        self.epochs_planned = 0
        self.training_started: float | None = None
        self.last_epoch_end: float | None = None

    def stage_begins(self, stage: str) -> None:
        self.stage = stage

    def epoch_ends(self, done: int, planned: int) -> None:
        """`fit`'s on_epoch: (0, planned) as training begins, then after each epoch."""
        now = self.clock()
        if done == 0:
            self.stage, self.training_started = "training", now
        self.epochs_done, self.epochs_planned, self.last_epoch_end = done, planned, now

    def minutes_left(self) -> float | None:
        """The remaining epochs at the pace of the finished ones, counting down during an epoch (an early
        stop ends the training sooner)."""
        if self.training_started is None or self.last_epoch_end is None or self.epochs_done == 0:
            return None
        per_epoch = (self.last_epoch_end - self.training_started) / self.epochs_done
        remaining = per_epoch * (self.epochs_planned - self.epochs_done) - (self.clock() - self.last_epoch_end)
        return max(0.0, remaining) / 60

    def describe(self) -> str:
        """'epoch 3 of 6, about 2 min left', or the stage in words."""
        if self.stage != "training":
            return STAGE_WORDS.get(self.stage, self.stage)
        if self.epochs_done >= self.epochs_planned:
            return "training done, choosing tau_R on the validation listings"
        left = self.minutes_left()
        estimate = "" if left is None else f", about {max(1, round(left))} min left"
        return f"epoch {self.epochs_done + 1} of {self.epochs_planned}{estimate}"


def build_default_model(path: Path, progress: BuildProgress) -> None:
    """The builder the app runs in its background thread: the bundled Myntra listings' model, into `path`."""
    from training import build_default  # a training job, loaded only when the app has to build

    build_default.build(out=path, on_stage=progress.stage_begins, on_epoch=progress.epoch_ends)
