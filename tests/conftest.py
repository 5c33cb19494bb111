"""Fixtures shared by the test modules: the tiny text encoder, one torch thread, ONE real Label Studio server,
ONE real PostgreSQL server and ONE running app per session (each started only when a test asks for it)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

import pytest
import torch

from dram.nn.encoders import stay_offline
from tests.app_server import ATTRIBUTES, launch_app, stop_app
from tests.label_studio_server import Server, ServerFailed, label_studio_bin, running_label_studio
from tests.postgres_server import PostgresFailed, PostgresServer, pg_bin, running_postgres
from tests.tiny_model import write_text_encoder

log = logging.getLogger(__name__)
stay_offline()  # pytest is an entry point too: nothing in a test may reach the Hugging Face hub


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real Label Studio 1.x server, started once per test session (about a minute on two cores)."""
    binary = label_studio_bin()
    if binary is None:
        pytest.skip("Label Studio is not installed: run scripts/install_label_studio.sh or set LABEL_STUDIO_BIN")
    try:
        with running_label_studio(binary, tmp_path_factory.mktemp("label-studio-data")) as server:
            log.info("Label Studio up at %s after %.0fs", server.url, server.startup_s)
            yield server
    except ServerFailed as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random BERT written once per session: the text encoder of every tiny test model."""
    return write_text_encoder(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Tiny tensors: one thread is ~100x faster than two when other jobs share the 2 cores
    (OpenMP threads spin against each other). Restored after each test. Modules of tiny-model
    tests use it with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def app_checkpoint() -> Path:
    """The default model the app ships with: built by scripts/test.sh before the suite, or here if missing."""
    from dram.nn.config import DramConfig
    from training import build_default

    path = build_default.DEFAULT_OUT
    if not build_default.is_built(path):
        build_default.build(path)
    assert DramConfig.load(path / "config.json").attributes == ATTRIBUTES, "default model has another label map"
    return path


@pytest.fixture(scope="session")
def app_url(app_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log_file = tmp_path_factory.mktemp("app-log") / "app.log"
    url, process = launch_app(app_checkpoint, log_file)
    yield url
    stop_app(process)
    log.info("app log: %s", log_file)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session (a few seconds to start); tests each create a database in it."""
    if pg_bin() is None:
        pytest.skip("PostgreSQL is not installed: run scripts/install_postgres.sh (or set PG_BIN)")
    try:
        with running_postgres() as server:
            yield server
    except PostgresFailed as exc:
        pytest.fail(str(exc))


@pytest.fixture(params=["sqlite", "postgresql"])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store URL on each backend: a SQLite file, or a new database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    return request.getfixturevalue("postgres").create_database()
