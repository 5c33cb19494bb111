"""Where a listing file's photos come from: a zip read in place (by path or unique base name, nothing outside it,
bounded in size) or files beside the listing file."""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import pytest

from dram.data import photo_sources
from dram.data.images import load_image
from dram.data.photo_sources import PhotoBytes, PhotoFolder, PhotoNotFound, PhotoZip, photo_label
from dram.errors import DramInputError, ImageError


def test_a_zip_gives_photos_by_path_and_unique_base_name_and_nothing_outside_it(tmp_path: Path) -> None:
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../escape.jpg", b"evil")
        zf.writestr("/abs.jpg", b"evil")
        zf.writestr("a/../../up.jpg", b"evil")
        zf.writestr("__MACOSX/._shirt.jpg", b"junk")
        zf.writestr("shirts/shirt.jpg", b"shirt")
        zf.writestr("a/same.jpg", b"1")
        zf.writestr("b/same.jpg", b"2")
    with PhotoZip(archive) as photos:
        assert sorted(photos.members) == ["a/same.jpg", "b/same.jpg", "shirt.jpg", "shirts/shirt.jpg"]
        assert photos.find("shirts/shirt.jpg") == photos.find("shirt.jpg") == photos.find("shirts\\shirt.jpg") == b"shirt"
        assert photos.find("b/same.jpg") == b"2"
        for name in ("../escape.jpg", "escape.jpg", "/abs.jpg", "abs.jpg", "up.jpg", "._shirt.jpg"):
            with pytest.raises(PhotoNotFound, match="is not in the photo zip"):
                photos.find(name)
        with pytest.raises(PhotoNotFound) as err:
            photos.find("same.jpg")
    assert str(err.value) == ("its photo 'same.jpg' is ambiguous: several photos in the zip have that name; "
                              "give its path in the zip instead")
    assert [p.name for p in tmp_path.iterdir()] == ["photos.zip"]  # read in place, nothing unpacked


def test_broken_and_oversized_zips_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK not really")
    with pytest.raises(DramInputError) as err:
        PhotoZip(broken)
    assert str(err.value) == "The photo archive is not a valid zip file."
    monkeypatch.setattr(photo_sources, "MAX_ZIP_BYTES", 2 * 2**20)
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("one.jpg", b"\0" * 2**20)
        zf.writestr("two.jpg", b"\0" * (2**20 + 1))
    with pytest.raises(DramInputError) as err:
        PhotoZip(big)
    assert str(err.value) == "The photo zip unpacks to more than 2 MB; upload smaller photos or fewer at a time."


def test_a_damaged_photo_in_the_zip_is_named(tmp_path: Path) -> None:
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("shirt.jpg", b"shirt" * 1000)
    data = bytearray(archive.read_bytes())
    start = data.index(b"shirt.jpg") + len(b"shirt.jpg")  # the local header's name, then the compressed bytes
    data[start + 10:start + 20] = b"\xff" * 10
    archive.write_bytes(bytes(data))
    with PhotoZip(archive) as photos, pytest.raises(PhotoNotFound, match=r"^its photo 'shirt.jpg' is damaged in the zip"):
        photos.find("shirt.jpg")


def test_photo_bytes_name_the_photo_in_errors_and_logs_and_survive_pickling() -> None:
    photo = PhotoBytes(b"not a jpeg", "img/broken.jpg")
    with pytest.raises(ImageError, match="img/broken.jpg is not an image file"):
        load_image(photo)
    again = pickle.loads(pickle.dumps(photo))
    assert again == b"not a jpeg" and again.name == "img/broken.jpg"
    assert photo_label(photo) == "img/broken.jpg" and photo_label(b"abc") == "a photo of 3 bytes"
    assert photo_label(Path("/x/y.jpg")) == "/x/y.jpg"


def test_a_folder_gives_photos_relative_to_it_or_by_absolute_path(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.jpg").write_bytes(b"x")
    folder = PhotoFolder(tmp_path)
    assert folder.find("img/a.jpg") == folder.find(str(tmp_path / "img" / "a.jpg")) == (tmp_path / "img" / "a.jpg")
    with pytest.raises(PhotoNotFound, match=r"its photo 'b.jpg' does not exist \(looked for .*b.jpg\)"):
        folder.find("b.jpg")
