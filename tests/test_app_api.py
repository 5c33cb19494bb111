"""The running app, through its documented API (gradio_client), as a script or a merchandiser would use it."""
from __future__ import annotations

import csv
import html
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from dram.paths import EXAMPLES
from tests.app_server import ATTRIBUTES, launch_app, stop_app
from ui.extract_tab import NO_PHOTO

TITLE = "U.S. Polo Assn. Men Checks Navy Blue Shirt"
PHOTO = EXAMPLES / "17187.jpg"


@pytest.fixture(scope="module")
def client(app_url: str) -> Client:
    return Client(app_url, verbose=False)


def extract(client: Client, text: str, image: Path | None = None, tau_r: float = 0.5) -> dict:
    return client.predict(text, handle_file(str(image)) if image else None, tau_r, api_name="/extract")


def check_result(result: dict, text: str, tau_r: float) -> None:
    """What every extraction must satisfy, trained model or not."""
    assert set(result) >= {"spans", "attribute_scores", "selected", "warnings"}
    assert list(result["attribute_scores"]) == ATTRIBUTES
    assert all(0.0 <= s <= 1.0 for s in result["attribute_scores"].values())
    assert result["selected"] == [a for a, s in result["attribute_scores"].items() if s > tau_r]
    for span in result["spans"]:
        assert text[span["start"] : span["end"]] == span["text"]
        assert span["attribute"] in result["selected"]  # ARM: only selected attributes are decoded
        assert 0.0 <= span["confidence"] <= 1.0


# ---------------------------------------------------------------- extraction

def test_extract_text_only(client: Client):
    result = extract(client, TITLE)
    check_result(result, TITLE, 0.5)
    assert result["warnings"] == [NO_PHOTO]


def page_notes(client: Client, text: str, image: Path | None = None) -> list[str]:
    """The warnings the Extract tab shows for a listing (its notes list), as the page's own endpoint returns them."""
    notes = client.predict(text, handle_file(str(image)) if image else None, 0.5, api_name="/extract_ui")[4]
    return [html.unescape(line.removeprefix("- ⚠️ ")) for line in notes.splitlines()]


@pytest.mark.parametrize("text, photo", [
    (TITLE, None),
    (TITLE, PHOTO),
    ("Lenovo ThinkPad T14 Gen 3 14 inch laptop, Intel Core i7-1260P, 16 GB DDR4, 512 GB NVMe SSD", None),
])
def test_the_api_returns_the_warnings_the_page_shows(client: Client, text: str, photo: Path | None):
    shown = page_notes(client, text, photo)
    assert extract(client, text, photo)["warnings"] == shown
    assert (NO_PHOTO in shown) == (photo is None)


def test_trained_default_model_finds_the_values(client: Client):
    result = extract(client, TITLE, PHOTO)
    found = {(s["attribute"], s["text"]) for s in result["spans"]}
    assert {("gender", "Men"), ("colour", "Navy Blue"), ("article_type", "Shirt")} <= found


def test_extract_with_photo(client: Client):
    result = extract(client, TITLE, PHOTO, 0.0)
    check_result(result, TITLE, 0.0)
    assert result["warnings"] == []


def test_tau_zero_selects_every_attribute_and_one_none(client: Client):
    everything = extract(client, TITLE, PHOTO, 0.0)
    assert everything["selected"] == ATTRIBUTES
    nothing = extract(client, TITLE, PHOTO, 1.0)
    assert nothing["selected"] == [] and nothing["spans"] == []
    # same encoders, same scores: tau_R only moves the cut
    assert nothing["attribute_scores"] == everything["attribute_scores"]


def test_tau_between_scores_splits_the_attributes(client: Client):
    scores = extract(client, TITLE, None, 0.0)["attribute_scores"]
    ordered = sorted(scores.values())
    cut = (ordered[1] + ordered[2]) / 2
    if ordered[1] == ordered[2]:
        pytest.skip("tied scores")
    result = extract(client, TITLE, None, cut)
    assert sorted(result["selected"]) == sorted(a for a, s in scores.items() if s > cut)
    assert len(result["selected"]) == len(ATTRIBUTES) - 2


def test_slider_redecodes_without_running_the_encoders(app_checkpoint: Path, monkeypatch: pytest.MonkeyPatch):
    """The UI keeps the EncodedListing in gr.State; moving tau_R must only call decode."""
    from ui.extract_tab import encode_listing, redecode
    from ui.serving import ModelHandle

    handle = ModelHandle(app_checkpoint).load()
    session = encode_listing(handle, TITLE, str(PHOTO))

    def no_encoding(*args, **kwargs):
        raise AssertionError("the encoders ran again")

    monkeypatch.setattr(handle.extractor, "encode", no_encoding)
    monkeypatch.setattr(handle.extractor, "encode_many", no_encoding)
    all_on = redecode(session, 0.0, handle)
    assert session.extraction.selected == ATTRIBUTES
    all_off = redecode(session, 1.0, handle)
    assert session.extraction.selected == [] and all_off[2] == []  # table rows
    assert all_off[1] == [(TITLE, None)]  # nothing highlighted
    chart_lines = [line.get_ydata()[0] for line in all_off[3].axes[0].get_lines()]
    assert 1.0 in chart_lines
    redecode(session, 0.0, handle)
    assert len(all_on[4]) == len(session.extraction.spans)  # one heatmap per extracted value


# ---------------------------------------------------------------- bad input

def _save(tmp_path: Path, name: str, image: Image.Image, **kwargs) -> Path:
    path = tmp_path / name
    image.save(path, **kwargs)
    return path


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text_is_refused_with_a_reason(client: Client, text: str):
    with pytest.raises(AppError, match="text is empty"):
        extract(client, text)


def test_text_over_the_model_window_is_read_to_its_end(client: Client):
    long_text = " ".join([TITLE] * 60)  # ~480 words: several windows of the model's length
    result = extract(client, long_text, None, 0.0)
    assert not any("only the start was read" in w for w in result["warnings"])
    # The title repeats to the end, and so do its values: the last copy is tagged too, once.
    assert max(s["end"] for s in result["spans"]) > len(long_text) - len(TITLE)
    assert len({(s["start"], s["attribute"]) for s in result["spans"]}) == len(result["spans"])


def test_text_over_the_character_limit_is_cut_and_said(client: Client):
    result = extract(client, "Roadster Men Navy Blue Shirt " * 800)  # 23,200 characters
    assert any("characters; only the start was read" in w for w in result["warnings"])


def test_file_that_is_not_an_image(client: Client, tmp_path: Path):
    fake = tmp_path / "photo.jpg"
    fake.write_text("this is a CSV, not a photo\n1,2,3\n")
    with pytest.raises(AppError, match="not an image file"):
        extract(client, TITLE, fake)


def test_photo_cut_after_500_bytes_is_refused_with_a_reason(client: Client, tmp_path: Path):
    cut = tmp_path / "cut.jpg"
    cut.write_bytes((EXAMPLES / "17187.jpg").read_bytes()[:500])
    with pytest.raises(AppError, match="photo could not be read: cut.jpg is incomplete or damaged"):
        extract(client, TITLE, cut)


def test_short_japanese_text_with_control_characters_gets_no_truncation_warning(client: Client):
    text = "ナイキ 男性 青いシャツ 🎽 \x00\x01"
    result = extract(client, text, None)
    assert result["text"] == text and not any("only the start was read" in w for w in result["warnings"])


def test_one_pixel_photo_works_with_a_warning(client: Client, tmp_path: Path):
    result = extract(client, TITLE, _save(tmp_path, "dot.png", Image.new("RGB", (1, 1), "navy")))
    check_result(result, TITLE, 0.5)
    assert any("1x1 pixels" in w for w in result["warnings"])


def test_a_12_megapixel_photo_is_read_not_refused(client: Client, tmp_path: Path):
    gradient = np.linspace(0, 255, 4000, dtype=np.uint8)
    big = Image.fromarray(np.tile(gradient, (3000, 1))).convert("RGB")
    result = extract(client, TITLE, _save(tmp_path, "big.jpg", big, quality=70))
    check_result(result, TITLE, 0.5)


def test_decompression_bomb_is_refused_with_a_reason(client: Client, tmp_path: Path):
    bomb = _save(tmp_path, "bomb.png", Image.new("1", (20000, 20000)))  # 400 Mpx, a few KB on disk
    with pytest.raises(AppError, match="too large to open safely"):
        extract(client, TITLE, bomb)


@pytest.mark.parametrize("name,make", [
    ("cmyk.jpg", lambda: Image.new("CMYK", (60, 80), (0, 80, 200, 20))),
    ("rgba.png", lambda: Image.new("RGBA", (60, 80), (200, 30, 30, 120))),
    ("grey.png", lambda: Image.new("L", (60, 80), 90)),
    ("palette.gif", lambda: Image.new("P", (60, 80), 3)),
])
def test_unusual_colour_modes_are_read(client: Client, tmp_path: Path, name: str, make):
    result = extract(client, TITLE, _save(tmp_path, name, make()), 0.0)
    check_result(result, TITLE, 0.0)
    assert result["warnings"] == []


def test_an_animated_gif_is_read(client: Client, tmp_path: Path):
    frames = [Image.new("P", (60, 80), i) for i in (1, 2, 3)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    result = extract(client, TITLE, path, 0.0)
    check_result(result, TITLE, 0.0)


# ---------------------------------------------------------------- batch audit

def audit(client: Client, listings: Path, photos: Path | None = None, tau_r: float = 0.5):
    csv_path, summary, missing, problems = client.predict(
        handle_file(str(listings)), handle_file(str(photos)) if photos else None, tau_r, api_name="/audit")
    rows = list(csv.DictReader(io.StringIO(Path(csv_path).read_text())))
    return rows, summary, missing["data"], problems["data"]


def test_audit_good_batch(client: Client):
    rows, summary, missing, problems = audit(client, EXAMPLES / "batch.csv", EXAMPLES / "batch_photos.zip", 0.0)
    ids = {r["id"] for r in csv.DictReader((EXAMPLES / "batch.csv").open())}
    assert problems == []
    assert "**24** listings read, **24** extracted" in summary
    assert rows and set(rows[0]) == {"id", "attribute", "value", "confidence", "unlike_training"}
    assert {r["id"] for r in rows} <= ids
    assert all(r["attribute"] in ATTRIBUTES and 0.0 <= float(r["confidence"]) <= 1.0 for r in rows)
    for category in ("Shirts", "Tshirts", "Kurtas", "Casual Shoes"):
        assert f"| {category} | 6 |" in summary


def _zip(tmp_path: Path, files: dict[str, bytes]) -> Path:
    path = tmp_path / "photos.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def test_audit_reports_bad_rows_and_processes_the_rest(client: Client, tmp_path: Path):
    listings = tmp_path / "listings.csv"
    listings.write_text(
        "id,text,image\n"
        f"good1,{TITLE},17187.jpg\n"
        "empty,,17187.jpg\n"
        f"unknown,{TITLE},missing.jpg\n"
        f"broken,{TITLE},broken.jpg\n"
        "good2,Puma Men Flux-L Black Watch,\n")
    photos = _zip(tmp_path, {"17187.jpg": PHOTO.read_bytes(), "broken.jpg": b"not a jpeg at all"})
    rows, summary, missing, problems = audit(client, listings, photos, 0.0)
    by_id = {p[1]: p[2] for p in problems}
    assert set(by_id) == {"empty", "unknown", "broken"}
    assert 'its "text" is empty' in by_id["empty"]
    assert "its photo 'missing.jpg' is not in the photo zip" in by_id["unknown"]
    assert "broken.jpg is not an image file" in by_id["broken"]
    assert {r["id"] for r in rows} == {"good1", "good2"}  # tau 0: every attribute decoded for the good rows
    assert "**5** listings read, **2** extracted, **3** skipped" in summary


def test_audit_jsonl_with_a_broken_line(client: Client, tmp_path: Path):
    listings = tmp_path / "listings.jsonl"
    listings.write_text(json.dumps({"id": "a", "text": TITLE}) + "\n{not json\n"
                        + json.dumps({"id": "b", "text": "Diva Women Printed Green Kurta", "category": "Kurtas"}) + "\n")
    rows, summary, missing, problems = audit(client, listings, None, 0.0)
    assert problems == [[2, "", "the line is not JSON (Expecting property name enclosed in double quotes)", "skipped"]]
    assert "**3** listings read, **2** extracted, **1** skipped" in summary  # the broken line keeps its place
    assert {r["id"] for r in rows} <= {"a", "b"}


def test_audit_image_named_without_a_zip(client: Client, tmp_path: Path):
    listings = tmp_path / "listings.csv"
    listings.write_text(f"id,text,image\nx,{TITLE},17187.jpg\n")
    rows, summary, missing, problems = audit(client, listings)
    assert problems and "no photo zip was uploaded" in problems[0][2]


def test_audit_missing_columns_is_a_clear_message(client: Client, tmp_path: Path):
    listings = tmp_path / "listings.csv"
    listings.write_text("sku,title\n1,Roadster Men Navy Blue Shirt\n")
    with pytest.raises(AppError, match=r"missing the column\(s\) id, text.*Columns found: sku, title"):
        audit(client, listings)


def test_audit_rejects_other_file_types(client: Client, tmp_path: Path):
    listings = tmp_path / "listings.txt"
    listings.write_text("id,text\n1,x\n")
    # gradio's own file_types check answers first, and clearly enough
    with pytest.raises(AppError, match=r"(?i)upload a .*csv"):
        audit(client, listings)


def test_audit_rejects_a_broken_zip(client: Client, tmp_path: Path):
    listings = tmp_path / "listings.csv"
    listings.write_text(f"id,text\n1,{TITLE}\n")
    broken = tmp_path / "photos.zip"
    broken.write_bytes(b"PK not really")
    with pytest.raises(AppError, match="not a valid zip"):
        audit(client, listings, broken)


# ---------------------------------------------------------------- no model

@pytest.fixture(scope="module")
def app_without_model(tmp_path_factory: pytest.TempPathFactory):
    log_file = tmp_path_factory.mktemp("no-model") / "app.log"
    url, process = launch_app(tmp_path_factory.getbasetemp() / "no-such-checkpoint", log_file)
    yield url
    stop_app(process)


def test_missing_checkpoint_shows_how_to_build_it(app_without_model: str):
    import httpx

    config = httpx.get(app_without_model + "config", timeout=10).text
    assert "The model is not available" in config and "python -m training.build_default" in config
    with pytest.raises(AppError, match="training.build_default"):
        Client(app_without_model, verbose=False).predict(TITLE, None, 0.5, api_name="/extract")
