"""Session-wide fixtures: ONE real Label Studio server for every test module that needs it."""
from __future__ import annotations

import logging
from typing import Iterator

import pytest

from tests.label_studio_server import Server, ServerFailed, label_studio_bin, running_label_studio

log = logging.getLogger(__name__)


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
