"""The Annotate tab through the running app's API (gradio_client): queue order, edits, save, skip, model switch.

The app gets its own SQLite store in a temporary folder (DRAM_DB_URL), filled here through the Store API.
"""
from __future__ import annotations

import hashlib
import subprocess
import zipfile
from pathlib import Path
from typing import Iterator

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from dram.checkpoint import save_checkpoint
from dram.paths import EXAMPLES
from store import open_store
from tests.app_server import ATTRIBUTES, launch_app, stop_app
from tests.tiny_model import ATTRIBUTES as TINY_ATTRIBUTES, tiny_model, write_text_encoder

SURE = "Puma Men Black Sports Shoes"
UNSURE = "Roadster Men Navy Blue Casual Shirt"
MIDDLE = "Nike Women White Running Shoes"


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store with three predicted listings; the model is least sure about UNSURE (score nearest tau_R)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('annotate') / 'store.sqlite'}"
    with open_store(url) as store:
        for text, score in ((SURE, 0.99), (UNSURE, 0.52), (MIDDLE, 0.8)):
            listing = store.add_listing(text, external_id=text.split()[0].lower())
            end = text.index(" ")
            store.add_prediction(listing, None, [{"start": 0, "end": end, "attribute": "brand", "confidence": score}],
                                 {"brand": score}, 0.5)
    return url


@pytest.fixture(scope="module")
def app(app_checkpoint: Path, db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen]]:
    url, process = launch_app(app_checkpoint, tmp_path_factory.mktemp("annotate-log") / "app.log", {"DRAM_DB_URL": db_url})
    yield url, process
    stop_app(process)


@pytest.fixture(scope="module")
def client(app: tuple[str, subprocess.Popen]) -> Client:
    return Client(app[0], verbose=False)


def view(result: tuple) -> dict:
    """The hidden JSON every review endpoint returns last: the listing shown and its spans."""
    return result[-1]


def test_queue_starts_with_the_listing_the_model_is_least_sure_about(client: Client) -> None:
    shown = view(client.predict(api_name="/review_next"))
    assert shown["text"] == UNSURE
    assert shown["spans"] == shown["predicted"] == [{"start": 0, "end": 8, "attribute": "brand"}]
    assert shown["attributes"] == ATTRIBUTES


def test_edit_and_save_a_correction(client: Client, db_url: str) -> None:
    client.predict(api_name="/review_next")
    # the selection as character offsets: "avy Bl" is widened to the whole words "Navy Blue"
    start = UNSURE.index("avy Bl")
    shown = view(client.predict(None, "colour", start, start + 6, api_name="/review_add"))
    assert {"start": UNSURE.index("Navy"), "end": UNSURE.index("Blue") + 4, "attribute": "colour"} in shown["spans"]
    shown = view(client.predict(0, "brand", None, None, api_name="/review_remove"))
    assert [s["attribute"] for s in shown["spans"]] == ["colour"]

    with pytest.raises(AppError, match="annotator name"):
        client.predict("", api_name="/review_save")
    with pytest.raises(AppError, match="'size' is not an attribute of this model"):
        client.predict(None, "size", 0, 4, api_name="/review_add")
    with pytest.raises(AppError, match="Select the value"):
        client.predict(None, "colour", None, None, api_name="/review_add")

    # an attribute the model does not have: added by the annotator, then used like the others
    client.predict("alice", "fit", api_name="/review_add_attribute")
    start = UNSURE.index("Casual")
    shown = view(client.predict(None, "fit", start, start + 6, api_name="/review_add"))
    assert [s["attribute"] for s in shown["spans"]] == ["colour", "fit"]

    after = view(client.predict("alice", api_name="/review_save"))
    assert after["text"] == MIDDLE  # the next most uncertain listing
    with open_store(db_url) as store:
        (correction,) = [c for c in store.all_corrections() if c.status != "skipped"]
        assert correction.annotator == "alice" and correction.status == "corrected"
        assert store.get_listing(correction.listing_id).text == UNSURE
        assert [s.attribute for s in correction.spans] == ["colour", "fit"]
        assert store.progress() == (1, 0, 2)
        assert store.attributes() == ["fit"]


def test_a_listing_handed_to_one_annotator_is_not_offered_to_another(client: Client, app, db_url: str) -> None:
    # alice's save claimed her next listing, MIDDLE: a second annotator (another browser) is not offered it.
    other = Client(app[0], verbose=False)
    assert view(other.predict("carol", api_name="/review_next"))["text"] == SURE
    assert view(other.predict("", api_name="/review_next"))["listing"] is None  # all claimed: nothing to look at
    assert view(client.predict("alice", api_name="/review_next"))["text"] == MIDDLE  # a reload keeps hers
    with open_store(db_url) as store:
        claims = store.claims()
        assert sorted(claims.values()) == ["alice", "carol"]
        for listing, annotator in claims.items():
            store.release_claim(listing, annotator)  # both walk away; the next test starts from a free queue


def test_skip_moves_on_and_accept_keeps_the_model_spans(client: Client, db_url: str) -> None:
    assert view(client.predict(api_name="/review_next"))["text"] == MIDDLE
    assert view(client.predict("bob", api_name="/review_skip"))["text"] == SURE
    # nothing is waiting any more: the skipped listing comes back
    assert view(client.predict("bob", api_name="/review_save"))["text"] == MIDDLE
    with open_store(db_url) as store:
        statuses = {store.get_listing(c.listing_id).text: c.status for c in store.all_corrections()}
        assert store.progress() == (2, 1, 0)
    assert statuses == {UNSURE: "corrected", MIDDLE: "skipped", SURE: "accepted"}


def test_extracting_queues_the_listing(client: Client, db_url: str) -> None:
    text = "Levis Men Blue Slim Fit Jeans"
    client.predict(text, None, 0.5, api_name="/extract_ui")
    assert view(client.predict(api_name="/review_next"))["text"] == text
    with open_store(db_url) as store:
        (version,) = store.list_model_versions()
        (prediction,) = store.predictions_for(store.review_queue(0.5)[0].listing_id)
    assert prediction.model_version_id == version.id and version.active


def test_import_listings_for_review(client: Client, db_url: str, tmp_path: Path) -> None:
    upload = tmp_path / "listings.jsonl"
    upload.write_text('{"id": "u1", "text": "Red cotton shirt"}\n{"id": "u2", "text": "   "}\n'
                      '{"id": "u3", "text": "Blue jeans", "image": "missing.jpg"}\n')
    report, progress = client.predict(handle_file(str(upload)), None, api_name="/review_import")
    assert "1 listings added" in report and "u2" in report and "missing.jpg" in report
    with open_store(db_url) as store:
        assert "u1" in {i.external_id for i in store.review_queue(0.5)}


def test_imported_photos_come_from_the_zip_as_they_are(client: Client, db_url: str, tmp_path: Path) -> None:
    """The import reads the file and the zip as the audit does: a photo by its name in the zip, stored byte for
    byte (never unpacked to disk), and a bad row named with its reason."""
    photo = (EXAMPLES / "17187.jpg").read_bytes()
    upload = tmp_path / "listings.csv"
    upload.write_text("ID,Text,Image\nz1,Puma Men Black Sports Shoes,shoes.jpg\nz2,Nike cap,cap.jpg\n")
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("photos/shoes.jpg", photo)
    report, _ = client.predict(handle_file(str(upload)), handle_file(str(archive)), api_name="/review_import")
    assert "1 listings added" in report and "row 2 (z2): its photo 'cap.jpg' is not in the photo zip" in report
    with open_store(db_url) as store:
        (item,) = [i for i in store.review_queue(0.5) if i.external_id == "z1"]
        assert item.photo_sha256 == hashlib.sha256(photo).hexdigest() and store.photo_bytes(item.photo_sha256) == photo


def test_switch_model_without_restart(client: Client, app: tuple[str, subprocess.Popen], db_url: str,
                                      tmp_path: Path) -> None:
    model, tokenizer = tiny_model(write_text_encoder(tmp_path / "tiny-bert"), "text-only")
    tiny = save_checkpoint(model, tokenizer, tmp_path / "tiny")
    with open_store(db_url) as store:
        tiny_id = store.register_model_version("tiny", tiny, {}, activate=False)
    pid = app[1].pid

    choices = client.predict(api_name="/model_versions")
    assert choices is not None
    note, _ = client.predict(tiny_id, api_name="/use_model")
    assert "tiny" in note

    result = client.predict("red cotton shirt", None, 0.5, api_name="/extract")
    assert list(result["attribute_scores"]) == TINY_ATTRIBUTES
    assert app[1].poll() is None and app[1].pid == pid
    with open_store(db_url) as store:
        assert store.active_model_version().id == tiny_id
    with pytest.raises(AppError, match="Pick a registered model version"):
        client.predict(None, api_name="/use_model")
