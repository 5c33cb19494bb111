"""Inference API: text (+ optional photo) -> spans, ARM scores and TEM attention. No gradio here.

`encode` runs the encoders once; `decode` re-runs only ARM and the CRF, so moving tau_R is cheap.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Union

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from dram.batching import EncodedText, collate, encode_text
from dram.checkpoint import load_checkpoint, pick_device
from dram.errors import DramInputError
from dram.images import load_image
from dram.model import DecodedSpan, Encoded
from dram.tagging import Word
from dram.value_lookup import prior_features

log = logging.getLogger(__name__)

ImageInput = Union[str, Path, bytes, Image.Image, None]
MAX_TEXT_CHARS = 5000  # far beyond any title; keeps tokenization of pasted pages bounded


@dataclass
class ExtractedSpan:
    start: int
    end: int
    attribute: str
    text: str
    confidence: float


@dataclass
class Extraction:
    text: str
    spans: list[ExtractedSpan]
    attribute_scores: dict[str, float]
    tau_r: float
    words: list[Word]
    # (n_words, grid, grid): each word's TEM attention over the photo's regions, summing to 1.
    attention: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def selected(self) -> list[str]:
        return [a for a, s in self.attribute_scores.items() if s > self.tau_r]

    def to_dict(self) -> dict:
        return {"text": self.text, "spans": [asdict(s) for s in self.spans],
                "attribute_scores": self.attribute_scores, "tau_r": self.tau_r,
                "selected": self.selected, "warnings": self.warnings}


@dataclass
class EncodedListing:
    """Encoder outputs for one listing, kept (e.g. in a UI session) to re-decode at another tau_R."""

    text: EncodedText
    encoded: Encoded
    has_image: bool
    warnings: list[str]


def char_spans(text: str, words: list[Word], decoded: list[DecodedSpan]) -> list[ExtractedSpan]:
    """Word-level decoder output -> character spans, in reading order."""
    spans = []
    for d in decoded:
        start, end = words[d.first_word].start, words[d.end_word - 1].end
        spans.append(ExtractedSpan(start, end, d.attribute, text[start:end], round(d.confidence, 4)))
    return sorted(spans, key=lambda s: (s.start, s.attribute))


class Extractor:
    def __init__(self, model, tokenizer, metrics: dict | None = None, path: Path | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.metrics = metrics or {}
        self.path = path
        self.config = model.config

    @classmethod
    def load(cls, path: Path | str, device: str | None = None) -> "Extractor":
        model, tokenizer, metrics = load_checkpoint(path, pick_device(device))
        return cls(model, tokenizer, metrics, Path(path))

    @property
    def attributes(self) -> list[str]:
        return list(self.config.attributes)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def _prepare_text(self, text: str) -> tuple[EncodedText, list[str]]:
        if not isinstance(text, str) or not text.strip():
            raise DramInputError("The listing text is empty: paste a product title or description.")
        warnings = []
        if len(text) > MAX_TEXT_CHARS:
            text = text[:MAX_TEXT_CHARS]
            warnings.append(f"The text is longer than {MAX_TEXT_CHARS} characters; only the start was read.")
        enc = encode_text(self.tokenizer, text, self.config.max_tokens)
        if not enc.words:
            raise DramInputError("The listing text has no words the model can read.")
        if self.model.value_lookup is not None:
            enc.prior = prior_features(self.model.value_lookup, enc.words, self.config.attributes)
        if enc.truncated:
            end = enc.words[-1].end
            warnings.append(f"The text is longer than the model reads ({self.config.max_tokens} tokens): "
                            f"only the first {len(enc.words)} words (up to character {end}) were used.")
        return enc, warnings

    def _prepare_image(self, image: ImageInput) -> tuple[torch.Tensor | None, list[str]]:
        if image is None or self.model.image_encoder is None:
            note = ["This model reads text only; the photo was not used."] if image is not None else []
            return None, note
        picture = load_image(image)
        return self.model.image_encoder.preprocess(picture, self.config.image_size), []

    def _encode_batch(self, items: list[tuple[str, ImageInput]]) -> tuple[list[EncodedText], Encoded, list[bool], list[list[str]]]:
        """Encoder outputs for listings in one batch; raises DramInputError for the first bad one."""
        texts, notes, pixels, has_image = [], [], [], []
        for text, image in items:
            enc, warn = self._prepare_text(text)
            px, warn_img = self._prepare_image(image)
            texts.append(enc)
            notes.append(warn + warn_img)
            has_image.append(px is not None)
            pixels.append(px)
        stacked = None
        if self.model.image_encoder is not None and any(has_image):  # no photo at all: skip the CNN
            size = self.config.image_size
            stacked = torch.stack([p if p is not None else torch.zeros(3, size, size) for p in pixels])
        batch = collate(texts, has_image, pixels=stacked, pad_id=self.tokenizer.pad_token_id or 0).to(self.device)
        with torch.inference_mode():
            return texts, self.model.encode(batch), has_image, notes

    def encode_many(self, items: list[tuple[str, ImageInput]]) -> list[EncodedListing]:
        texts, encoded, has_image, notes = self._encode_batch(items)
        return [EncodedListing(texts[i], encoded.select(i), has_image[i], notes[i]) for i in range(len(items))]

    def encode(self, text: str, image: ImageInput = None) -> EncodedListing:
        return self.encode_many([(text, image)])[0]

    @torch.inference_mode()
    def _extractions(self, texts: list[EncodedText], encoded: Encoded, has_image: list[bool],
                     notes: list[list[str]], tau_r: float | None) -> list[Extraction]:
        """ARM + CRF once for the whole batch, then one Extraction per listing."""
        tau = self.config.tau_r if tau_r is None else float(tau_r)
        scores, decoded = self.model.decode(encoded, tau)
        results = []
        for i, text in enumerate(texts):
            attention = None
            if encoded.cross_attention is not None and has_image[i]:
                rows = encoded.cross_attention[i, text.word_first_token]  # (W, R)
                if not self.config.tem_softmax:
                    rows = rows.softmax(-1)
                grid = int(round(rows.shape[-1] ** 0.5))
                attention = rows.reshape(len(text.words), grid, grid).float().cpu().numpy()
            spans = char_spans(text.text, text.words, [d for d in decoded if d.listing == i])
            scored = {a: round(float(s), 4) for a, s in zip(self.config.attributes, scores[i])}
            results.append(Extraction(text.text, spans, scored, tau, text.words, attention, list(notes[i])))
        return results

    def decode(self, listing: EncodedListing, tau_r: float | None = None) -> Extraction:
        return self._extractions([listing.text], listing.encoded, [listing.has_image], [listing.warnings], tau_r)[0]

    def extract(self, text: str, image: ImageInput = None, tau_r: float | None = None) -> Extraction:
        return self.decode(self.encode(text, image), tau_r)

    def extract_batch(self, items: Iterable[tuple[str, ImageInput]], tau_r: float | None = None,
                      batch_size: int = 32, progress: bool = False) -> list[Extraction | DramInputError]:
        """Extractions in input order; a bad listing yields its DramInputError and the rest go on."""
        items = list(items)
        results: list[Extraction | DramInputError] = []
        bar = tqdm(total=len(items), desc="extract", unit="listing", disable=not progress)
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            try:
                results += self._extractions(*self._encode_batch(chunk), tau_r)
            except DramInputError:
                for text, image in chunk:  # find the bad one(s); the others still go through
                    try:
                        results.append(self.extract(text, image, tau_r))
                    except DramInputError as err:
                        log.warning("skipped listing %d: %s", len(results), err)
                        results.append(err)
            bar.update(len(chunk))
        bar.close()
        return results
