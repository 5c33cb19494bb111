"""The inference API with the REAL pretrained encoders (MiniLM + EfficientNet-Lite0), untrained heads."""
from __future__ import annotations

import io
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from dram.checkpoint import build_model, save_checkpoint
from dram.data.tagging import split_words
from dram.errors import DramInputError, ImageError
from dram.inference import MAX_TEXT_CHARS, Extraction, Extractor
from dram.nn.batching import encode_texts
from dram.nn.config import DramConfig
from dram.nn.model import DecodedSpan
from dram.paths import BUNDLE
from tests.tiny_model import count_encoder_calls, tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PHOTO = sorted((BUNDLE / "images").glob("*.jpg"))[0]
ATTRIBUTES = ["brand", "gender", "colour", "article_type"]
TEXT = "Raymond Men Black Leather Belt"


@pytest.fixture(scope="module")
def extractor(tmp_path_factory) -> Extractor:
    torch.manual_seed(0)
    model, tokenizer = build_model(DramConfig.for_variant("dram", ATTRIBUTES))
    folder = tmp_path_factory.mktemp("real") / "ck"
    save_checkpoint(model, tokenizer, folder, {"note": "untrained heads"})
    return Extractor.load(folder)


def _png(mode: str, size=(40, 30), colour=None, fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, fmt)
    return buffer.getvalue()


def _check_spans(extraction: Extraction) -> None:
    for span in extraction.spans:
        assert extraction.text[span.start:span.end] == span.text and span.attribute in ATTRIBUTES
        assert 0.0 <= span.confidence <= 1.0


def test_loaded_extractor_uses_the_real_encoders(extractor: Extractor) -> None:
    assert extractor.config.text_encoder == "minilm" and extractor.config.image_encoder == "efficientnet-lite0"
    assert extractor.config.hidden_size == 384 and extractor.config.image_channels == 1280
    assert extractor.tokenizer.tokenize("black leather belt") == ["black", "leather", "belt"]
    assert extractor.attributes == ATTRIBUTES and extractor.metrics == {"note": "untrained heads"}


def test_extract_with_a_photo_gives_spans_scores_and_attention(extractor: Extractor) -> None:
    result = extractor.extract(TEXT, PHOTO)
    assert [w.text for w in result.words] == TEXT.split()
    assert set(result.attribute_scores) == set(ATTRIBUTES)
    assert all(0.0 <= s <= 1.0 for s in result.attribute_scores.values())
    assert result.tau_r == 0.5 and result.warnings == []
    assert result.attention.shape == (5, 7, 7)
    np.testing.assert_allclose(result.attention.reshape(5, -1).sum(-1), np.ones(5), rtol=1e-5)
    assert (result.attention >= 0).all()
    _check_spans(result)
    as_dict = result.to_dict()
    assert set(as_dict) == {"text", "spans", "attribute_scores", "tau_r", "selected", "warnings", "unfamiliar"}


def test_extract_without_a_photo_has_no_attention(extractor: Extractor) -> None:
    result = extractor.extract(TEXT)
    assert result.attention is None and result.warnings == []
    assert set(result.attribute_scores) == set(ATTRIBUTES)
    _check_spans(result)


def test_photo_as_bytes_path_and_pil_image_agree(extractor: Extractor) -> None:
    from_path = extractor.extract(TEXT, PHOTO).attention
    from_bytes = extractor.extract(TEXT, PHOTO.read_bytes()).attention
    from_pil = extractor.extract(TEXT, Image.open(PHOTO)).attention
    np.testing.assert_allclose(from_bytes, from_path, atol=1e-5)
    np.testing.assert_allclose(from_pil, from_path, atol=1e-5)


def test_decode_at_another_tau_does_not_rerun_the_encoders(extractor: Extractor, monkeypatch) -> None:
    model = extractor.model
    calls = count_encoder_calls(model, monkeypatch)
    listing = extractor.encode(TEXT, PHOTO)
    assert calls == {"text": 1, "image": 1}
    everything = extractor.decode(listing, 0.0)
    nothing = extractor.decode(listing, 1.0)
    middle = extractor.decode(listing, 0.5)
    assert calls == {"text": 1, "image": 1}
    assert everything.tau_r == 0.0 and everything.selected == ATTRIBUTES
    assert nothing.tau_r == 1.0 and nothing.selected == [] and nothing.spans == []
    assert middle.attribute_scores == everything.attribute_scores
    np.testing.assert_array_equal(middle.attention, everything.attention)
    assert {s.attribute for s in middle.spans} <= set(middle.selected)


@pytest.mark.parametrize("text", ["", "   \n\t", None])
def test_empty_text_is_a_dram_input_error(extractor: Extractor, text) -> None:
    with pytest.raises(DramInputError, match="empty"):
        extractor.extract(text, PHOTO)


def test_text_beyond_one_window_is_read_whole_and_a_value_near_the_end_is_reported_once(
        extractor: Extractor, monkeypatch: pytest.MonkeyPatch) -> None:
    text = " ".join(["a"] * 1400) + " made in navy"  # 1,403 words: 3 windows of 512 tokens
    words = split_words(text)
    navy = len(words) - 1
    real_decode = extractor.model.decode

    def decode_marking_navy(encoded, tau_r=None):
        """Untrained heads tag nothing: mark "navy" as a colour in every window that reads it."""
        scores, _ = real_decode(encoded, tau_r)
        found = []
        for row, window in enumerate(windows):
            for j, word in enumerate(window.words):
                if word.start == words[navy].start:
                    found.append(DecodedSpan(row, "colour", j, j + 1, 0.9))
        return scores, found

    windows = encode_texts(extractor.tokenizer, [text], extractor.config.max_tokens)[0]
    assert len(windows) >= 3 and sum("navy" in [w.text for w in win.words] for win in windows) >= 1
    monkeypatch.setattr(extractor.model, "decode", decode_marking_navy)
    result = extractor.extract(text)
    assert [(s.attribute, s.text, s.start) for s in result.spans] == [("colour", "navy", words[navy].start)]
    assert [w.start for w in result.words] == [w.start for w in words]  # every word read, once
    assert not result.warnings and result.text == text


def test_windows_fit_the_encoder_share_context_and_own_every_word_once(extractor: Extractor) -> None:
    text = " ".join(f"word{i} x" for i in range(700))
    windows = encode_texts(extractor.tokenizer, [text], 64)[0]
    assert all(len(w.input_ids) <= 64 for w in windows)
    owned = [w.words[j].start for w in windows for j in range(len(w.words)) if w.owns(j)]
    assert owned == [w.start for w in split_words(text)]
    for left, right in zip(windows, windows[1:]):
        assert right.words[0].start < left.words[-1].start  # neighbours overlap


TRICKY = ["Raymond Men Black Leather Belt", "HP C930H2MG 8MB-2x4MB/80W", "ナイキ 男性 青いシャツ 🎽 \x00\x01",
          "COLOR: BlackALTERNATE ITEM\n13w x 4d", "\x00\x01", " ".join(f"word{i} x" for i in range(700))]


def test_texts_tokenised_together_get_the_windows_each_gets_alone(extractor: Extractor) -> None:
    together = encode_texts(extractor.tokenizer, TRICKY, 64)
    for text, windows in zip(TRICKY, together, strict=True):
        alone = encode_texts(extractor.tokenizer, [text], 64)[0]
        assert [(w.words, w.input_ids, w.word_first_token, w.owned) for w in windows] == \
            [(w.words, w.input_ids, w.word_first_token, w.owned) for w in alone]
    assert len(together[-1]) > 2 and together[-2][0].words == []


@pytest.mark.parametrize("text", TRICKY[:4])
def test_each_word_starts_at_the_first_sub_word_that_covers_it(extractor: Extractor, text: str) -> None:
    encoded = extractor.tokenizer(text, return_offsets_mapping=True)
    tokens = [(i, a, b) for i, (a, b) in enumerate(encoded["offset_mapping"]) if b > a]
    expected = []  # each word: the first token ending past its start, if that token starts before its end
    for word in split_words(text):
        found = next(((i, a) for i, a, b in tokens if b > word.start), None)
        if found is not None and found[1] < word.end:
            expected.append((word, found[0]))
    [window] = encode_texts(extractor.tokenizer, [text], 512)[0]
    assert list(zip(window.words, window.word_first_token)) == expected
    if text.startswith("HP C930"):  # "930" begins at "##9" and runs into "##30"
        first = dict((w.text, extractor.tokenizer.convert_ids_to_tokens(window.input_ids[t])) for w, t in expected)
        assert first["930"] == "##9" and first["MG"] == "##mg"


def test_characters_the_tokenizer_drops_are_not_a_truncation(extractor: Extractor) -> None:
    result = extractor.extract("ナイキ 男性 青いシャツ 🎽 \x00\x01")
    assert not result.warnings and result.words


def test_very_long_text_is_cut_with_a_warning(extractor: Extractor) -> None:
    text = "red shirt " * 2100  # 21,000 characters
    result = extractor.extract(text)
    assert len(text) > MAX_TEXT_CHARS
    assert any(f"longer than {MAX_TEXT_CHARS} characters" in w for w in result.warnings)
    assert len(result.text) == MAX_TEXT_CHARS


@pytest.mark.parametrize("photo", [b"definitely not a jpeg", b"", _png("RGB")[:40]])
def test_bad_photo_bytes_raise_image_error(extractor: Extractor, photo: bytes) -> None:
    with pytest.raises(ImageError, match="photo could not be read"):
        extractor.extract(TEXT, photo)


@pytest.mark.parametrize("photo", [
    _png("CMYK", colour=(0, 255, 255, 0), fmt="JPEG"),
    _png("RGBA", colour=(255, 0, 0, 0)),
    _png("RGB", size=(1, 1), colour=(10, 20, 30)),
    _png("L", size=(3, 500), colour=128),
], ids=["cmyk-jpeg", "rgba-png", "1x1", "grey-thin"])
def test_awkward_photos_work(extractor: Extractor, photo: bytes) -> None:
    result = extractor.extract(TEXT, photo)
    assert result.attention.shape == (5, 7, 7) and np.isfinite(result.attention).all()
    assert result.warnings == []


def test_extract_batch_keeps_order_and_returns_errors_in_place(extractor: Extractor, caplog) -> None:
    items = [(TEXT, PHOTO), ("", None), ("Nike Women White Shoes", None), ("Puma Men Blue Cap", b"junk"),
             ("Police Men Watch", PHOTO)]
    with caplog.at_level(logging.WARNING, logger="dram.inference"):
        results = extractor.extract_batch(items, batch_size=3)
    assert len(results) == 5
    assert isinstance(results[1], DramInputError) and "empty" in str(results[1])
    assert isinstance(results[3], ImageError)
    for i in (0, 2, 4):
        assert isinstance(results[i], Extraction) and results[i].text == items[i][0]
    assert results[0].attention is not None and results[2].attention is None
    # Batched results equal one-by-one extraction.
    alone = extractor.extract(*items[2])
    assert results[2].attribute_scores == alone.attribute_scores
    assert [r.getMessage() for r in caplog.records if "skipped listing" in r.getMessage()]


def test_text_only_model_says_the_photo_was_not_used(tiny_encoder_dir) -> None:
    model, tokenizer = tiny_model(tiny_encoder_dir, "text-only")
    extractor = Extractor(model, tokenizer)
    result = extractor.extract("red cotton shirt", PHOTO)
    assert result.attention is None
    assert result.warnings == ["This model reads text only; the photo was not used."]
    assert extractor.extract("red cotton shirt").warnings == []
