"""The Extract tab's handlers as app.py wires them, on the default model: one click decodes once and
reads the uploaded photo once; one tau_R move decodes once and runs no encoder.

The handlers are called as gradio calls them (the functions the page registered, with a photo path
as gradio hands it over), so what is counted is our work, not gradio's own copying of the upload.
Counting wraps the real model's methods; nothing is replaced.
"""
from __future__ import annotations

import builtins
import io
import shutil
from pathlib import Path
from typing import Callable, Iterator

import pytest

from dram.paths import EXAMPLES
from store import open_store
from tests.tiny_model import count_encoder_calls

TITLE = "U.S. Polo Assn. Men Checks Navy Blue Shirt"


@pytest.fixture(scope="module")
def page(app_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """The app's page (app.build_page) around the default model, with its own store."""
    import app
    from ui.serving import ModelHandle

    url = f"sqlite:///{tmp_path_factory.mktemp('extract-store') / 'store.sqlite'}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DRAM_DB_URL", url)  # read when the page first saves
        handle = ModelHandle(app_checkpoint, "cpu").load()
        yield app.build_page(handle), handle, url


def handler(demo, name: str) -> Callable:
    """The function the page runs for an event (the click and Enter share one), by its API name or its own name."""
    found = {f.fn for f in demo.fns.values() if name in (f.api_name, f.name)}
    assert len(found) == 1, f"{len(found)} handlers named {name}"
    return found.pop()


def count_calls(owner, method: str, monkeypatch: pytest.MonkeyPatch) -> list:
    """Wrap `owner.method` so each call is recorded and still runs."""
    calls, original = [], getattr(owner, method)

    def counted(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, method, counted)
    return calls


def count_opens(path: Path, monkeypatch: pytest.MonkeyPatch) -> list:
    """Record every opening of `path` (Path.read_bytes, Path.open, open() and Pillow all go through io.open)."""
    opened, original = [], io.open

    def counted(file, *args, **kwargs):
        if isinstance(file, (str, Path)) and Path(file).resolve() == path.resolve():
            opened.append(file)
        return original(file, *args, **kwargs)

    monkeypatch.setattr(io, "open", counted)
    monkeypatch.setattr(builtins, "open", counted)
    return opened


def test_one_click_decodes_once_and_reads_the_photo_once(page, tmp_path: Path, monkeypatch) -> None:
    demo, handle, url = page
    upload = tmp_path / "upload.jpg"  # where gradio would have put the uploaded file
    shutil.copy(EXAMPLES / "17187.jpg", upload)
    decodes = count_calls(handle.extractor.model, "decode", monkeypatch)
    encoders = count_encoder_calls(handle.extractor.model, monkeypatch)
    opened = count_opens(upload, monkeypatch)
    outputs = handler(demo, "extract_ui")(TITLE, str(upload), 0.3)
    session = outputs[0]
    assert len(decodes) == 1 and decodes[0][1] == 0.3
    assert encoders == {"text": 1, "image": 1}
    assert len(opened) == 1
    assert session.extraction.tau_r == 0.3 and session.photo is not None
    assert {("colour", "Navy Blue"), ("gender", "Men")} <= {(s.attribute, s.text) for s in session.extraction.spans}
    with open_store(url) as store:  # the one decode is what the review queue got, with the photo's bytes
        listing = store.find_listing(TITLE, upload.read_bytes())
        assert listing is not None
        [predicted] = store.predictions_for(listing)
        assert predicted.tau_r == 0.3 and predicted.attribute_scores == session.extraction.attribute_scores
        assert [s.bare() for s in predicted.spans] == [s.bare() for s in session.extraction.spans]


def test_one_tau_move_decodes_once_without_the_encoders(page, monkeypatch) -> None:
    demo, handle, _ = page
    session = handler(demo, "extract_ui")(TITLE, str(EXAMPLES / "17187.jpg"), 0.5)[0]
    decodes = count_calls(handle.extractor.model, "decode", monkeypatch)
    encoders = count_encoder_calls(handle.extractor.model, monkeypatch)
    retune = handler(demo, "retune")
    for tau in (0.0, 1.0):
        outputs = retune(tau, session)
        assert outputs[0].extraction.tau_r == tau
    assert [call[1] for call in decodes] == [0.0, 1.0]
    assert encoders == {"text": 0, "image": 0}
    assert outputs[0].extraction.spans == []  # tau_R 1.0: nothing selected, nothing decoded


def test_the_extract_endpoint_decodes_once(page, monkeypatch) -> None:
    demo, handle, _ = page
    decodes = count_calls(handle.extractor.model, "decode", monkeypatch)
    result = handler(demo, "extract")(TITLE, str(EXAMPLES / "17187.jpg"), 0.0)
    assert len(decodes) == 1 and result["tau_r"] == 0.0 and result["selected"] == handle.attributes
