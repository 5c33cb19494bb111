"""A correction's photo reaches training as the store's bytes: the same photo, the same pixels, no file written
between the store and the model (a real SQLite store, the tiny model's real CNN)."""
from __future__ import annotations

import hashlib
import io
import tempfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from dram.data.images import load_image
from dram.data.spans import Span
from review.training_data import corrections_as_listings
from store import open_store
from tests.tiny_model import IMAGE_SIZE, tiny_model
from training.loop import prepare

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def photo_with_detail() -> bytes:
    """A PNG whose every pixel differs, so a photo changed on the way would not give the same features."""
    image = Image.new("RGB", (40, 30))
    image.putdata([(x * 6, y * 8, (x * y) % 256) for y in range(30) for x in range(40)])
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def watched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working folder, which is also the temporary folder: where a photo written out for training would land."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    monkeypatch.delenv("DRAM_PHOTO_CACHE", raising=False)
    return work


def test_a_corrections_photo_reaches_training_unchanged_with_no_file_written(tiny_encoder_dir: str, tmp_path: Path,
                                                                            watched: Path) -> None:
    photo = photo_with_detail()
    with open_store(f"sqlite:///{tmp_path / 'store.sqlite'}") as store:
        listing_id = store.add_listing("red cotton shirt", photo, external_id="sku-1")
        store.save_correction(listing_id, "alice", [Span(0, 3, "colour")])
        (listing,) = corrections_as_listings(store)
        stored_sha = store.get_listing(listing_id).photo_sha256
    assert hashlib.sha256(listing.image).hexdigest() == stored_sha == hashlib.sha256(photo).hexdigest()
    assert listing.spans == [Span(0, 3, "colour")]

    model, tokenizer = tiny_model(tiny_encoder_dir)  # a frozen CNN: its region features are what training reads
    data = prepare(model, tokenizer, [listing], cache_dir=None)
    with torch.no_grad():
        expected = model.image_encoder.eval()(model.image_encoder.preprocess(load_image(photo), IMAGE_SIZE)[None])
    assert data.has_image == [True] and torch.equal(data.regions[0], expected[0].half())

    joint, _ = tiny_model(tiny_encoder_dir, freeze_image_encoder=False)  # a CNN that trains: the pixels themselves
    pixels = prepare(joint, tokenizer, [listing], cache_dir=None).pixels([0])
    assert torch.equal(pixels[0], joint.image_encoder.preprocess(load_image(photo), IMAGE_SIZE))
    assert list(watched.iterdir()) == []  # no photo written to be read back


def test_features_of_stored_photos_are_cached_by_their_content(tiny_encoder_dir: str, tmp_path: Path,
                                                               watched: Path) -> None:
    photo = photo_with_detail()
    with open_store(f"sqlite:///{tmp_path / 'store.sqlite'}") as store:
        for i, text in enumerate(("red cotton shirt", "blue silk dress")):
            store.save_correction(store.add_listing(text, photo, external_id=f"sku-{i}"), "alice", [])
        listings = corrections_as_listings(store)
    model, tokenizer = tiny_model(tiny_encoder_dir)
    data = prepare(model, tokenizer, listings, cache_dir=tmp_path / "features")
    (cache,) = (tmp_path / "features").iterdir()
    assert set(torch.load(cache)) == {hashlib.sha1(photo).hexdigest()}  # one photo, one entry, keyed by its bytes
    assert data.has_image == [True, True] and torch.equal(data.regions[0], data.regions[1])
    assert list(watched.iterdir()) == []
