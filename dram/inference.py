"""Inference API: text (+ optional photo) -> spans, ARM scores and TEM attention. No gradio here.

`encode` runs the encoders once; `decode` re-runs only ARM and the CRF, so moving tau_R is cheap.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence, Union

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from dram.checkpoint import load_checkpoint, pick_device
from dram.data.images import load_image
from dram.data.spans import Span
from dram.data.tagging import Word
from dram.decoding import decode_listings, listing_windows
from dram.errors import DramInputError
from dram.familiarity import listing_embedding
from dram.nn.batching import TextWindow, collate
from dram.nn.model import EncoderOutput
from dram.nn.precision import RunSettings

log = logging.getLogger(__name__)

ImageInput = Union[str, Path, bytes, Image.Image, None]
MAX_TEXT_CHARS = 20_000  # a long description is read whole (in windows); a pasted web page is cut


@dataclass
class Extraction:
    text: str
    spans: list[Span]
    attribute_scores: dict[str, float]
    tau_r: float
    words: list[Word]
    # (n_words, grid, grid): each word's TEM attention over the photo's regions, summing to 1.
    attention: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)
    # Unlike the listings the model learned from (dram.familiarity); None: the checkpoint has no reference.
    unfamiliar: bool | None = None

    @property
    def selected(self) -> list[str]:
        return [a for a, s in self.attribute_scores.items() if s > self.tau_r]

    def to_dict(self) -> dict:
        return {"text": self.text, "spans": [s.to_dict() for s in self.spans],
                "attribute_scores": self.attribute_scores, "tau_r": self.tau_r,
                "selected": self.selected, "warnings": self.warnings, "unfamiliar": self.unfamiliar}


@dataclass
class EncodedListing:
    """Encoder outputs for one listing (one row per text window), kept (e.g. in a UI session) to
    re-decode at another tau_R."""

    windows: list[TextWindow]
    encoded: EncoderOutput
    has_image: bool
    warnings: list[str]
    unfamiliar: bool | None = None


@dataclass
class PhotoRegions:
    """A batch's photos through the CNN: one row of region features per listing (a blank photo's where
    a listing has none), or None when no listing of the batch has a photo."""

    regions: torch.Tensor | None
    has_image: list[bool]
    notes: list[list[str]]


class Extractor:
    def __init__(self, model, tokenizer, metrics: dict | None = None, path: Path | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.metrics = metrics or {}
        self.path = path
        self.config = model.config

    @classmethod
    def load(cls, path: Path | str, device: str | None = None, precision: str = RunSettings.precision,
             engine: str | None = RunSettings.encoder_engine) -> "Extractor":
        """`precision`: the encoders' arithmetic, see dram/nn/precision.py; `engine`: what runs them,
        see dram/nn/onnx_engine.py."""
        model, tokenizer, metrics = load_checkpoint(path, pick_device(device), precision, engine)
        return cls(model, tokenizer, metrics, Path(path))

    @property
    def attributes(self) -> list[str]:
        return list(self.config.attributes)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def _prepare_texts(self, texts: list[str], categories: Sequence[str | None] | None = None
                       ) -> tuple[list[list[TextWindow]], list[list[str]]]:
        """Each text's windows (tokenised in one call, limited to the attributes of its category where
        the model learned that category's schema) and warnings; DramInputError for the first text that
        is empty or has no word the model can read."""
        kept, warnings = [], []
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                raise DramInputError("The listing text is empty: paste a product title or description.")
            kept.append(text[:MAX_TEXT_CHARS])
            warnings.append([f"The text is longer than {MAX_TEXT_CHARS} characters; only the start was read."]
                            if len(text) > MAX_TEXT_CHARS else [])
        allowed = [self.model.schema.allowed(c, self.config.attributes) for c in categories or [None] * len(kept)]
        windows = listing_windows(self.tokenizer, self.config, kept, [self.model.value_lookup] * len(kept), allowed)
        if not all(windows):
            raise DramInputError("The listing text has no words the model can read.")
        return windows, warnings

    def _prepare_image(self, image: ImageInput) -> tuple[torch.Tensor | None, list[str]]:
        if image is None or self.model.image_encoder is None:
            note = ["This model reads text only; the photo was not used."] if image is not None else []
            return None, note
        picture = load_image(image)
        return self.model.image_encoder.preprocess(picture, self.config.image_size), []

    def _photos(self, images: list[ImageInput]) -> PhotoRegions:
        """The batch's photos read and through the CNN, one row per listing; DramInputError for the
        first photo that cannot be read."""
        pixels, notes = zip(*(self._prepare_image(image) for image in images)) if images else ((), ())
        has_image = [px is not None for px in pixels]
        if self.model.image_encoder is None or not any(has_image):  # no photo at all: skip the CNN
            return PhotoRegions(None, has_image, list(notes))
        size = self.config.image_size
        stacked = torch.stack([px if px is not None else torch.zeros(3, size, size) for px in pixels])
        with torch.inference_mode():
            return PhotoRegions(self.model.photo_regions(stacked.to(self.device)), has_image, list(notes))

    def encode_many(self, items: list[tuple[str, ImageInput]], categories: Sequence[str | None] | None = None
                    ) -> list[EncodedListing]:
        """Encoder outputs for listings in one batch (`categories`: each listing's, or None); raises
        DramInputError for the first bad text, else for the first bad photo."""
        windows, notes = self._prepare_texts([text for text, _ in items], categories)
        photos = self._photos([image for _, image in items])
        owner = [i for i, wins in enumerate(windows) for _ in wins]
        rows = [w for wins in windows for w in wins]
        regions = photos.regions[owner] if photos.regions is not None else None
        batch = collate(rows, [photos.has_image[i] for i in owner], regions=regions,
                        pad_id=self.tokenizer.pad_token_id or 0).to(self.device)
        with torch.inference_mode():
            encoded = self.model.encode(batch)
        out, first = [], 0
        for i, wins in enumerate(windows):
            out.append(EncodedListing(wins, encoded.select(first, len(wins)), photos.has_image[i],
                                      notes[i] + photos.notes[i]))
            first += len(wins)
        self._check_familiarity(out)
        return out

    def _check_familiarity(self, listings: list[EncodedListing]) -> None:
        """Flag (and warn about) listings unlike the training listings, from the encodings already made."""
        reference = self.model.familiarity
        if reference is None:
            return
        points = np.stack([listing_embedding(l.encoded.pooled.float().cpu().numpy()) for l in listings])
        for listing, unfamiliar in zip(listings, reference.unfamiliar(points)):
            listing.unfamiliar = bool(unfamiliar)
            if unfamiliar:
                listing.warnings.append(reference.warning())

    def encode(self, text: str, image: ImageInput = None, category: str | None = None) -> EncodedListing:
        return self.encode_many([(text, image)], [category])[0]

    def _extractions(self, listings: list[EncodedListing], tau_r: float | None) -> list[Extraction]:
        """ARM + CRF once for the whole batch (`decode_listings`), then one Extraction per listing."""
        tau = self.config.tau_r if tau_r is None else float(tau_r)
        decoded = decode_listings(self.model, [l.windows for l in listings],
                                  EncoderOutput.concat([l.encoded for l in listings]), tau,
                                  photos=[l.has_image for l in listings])
        return [Extraction(l.windows[0].text, d.spans, {a: round(v, 4) for a, v in d.scores.items()}, tau, d.words,
                           d.attention, list(l.warnings), l.unfamiliar) for l, d in zip(listings, decoded)]

    def decode(self, listing: EncodedListing, tau_r: float | None = None) -> Extraction:
        return self._extractions([listing], tau_r)[0]

    def extract(self, text: str, image: ImageInput = None, tau_r: float | None = None,
                category: str | None = None) -> Extraction:
        return self.decode(self.encode(text, image, category), tau_r)

    def extract_batch(self, items: Iterable[tuple[str, ImageInput]], tau_r: float | None = None,
                      batch_size: int = 32, progress: bool = False, workers: int | None = None,
                      categories: Sequence[str | None] | None = None) -> list[Extraction | DramInputError]:
        """Extractions in input order; a bad listing yields its DramInputError and the rest go on.
        `categories`: each listing's category (None: unknown), for a model that learned their schemas.

        Listings are batched by text length (less padding for the text encoder), and `workers` batches
        run side by side (default: on a CPU one per core torch may use, else 2), each whole batch,
        photos to spans, on one core: one-core encoders outrun the cores sharing each small step, and
        the photo reading, tokenising and Python of one batch overlap the others' arithmetic
        (BENCHMARKS.md, issue 24). One worker runs each batch on all the cores."""
        items = list(items)
        categories = list(categories) if categories is not None else [None] * len(items)
        by_length = sorted(range(len(items)), key=lambda i: len(items[i][0]) if isinstance(items[i][0], str) else 0)
        batches = [by_length[start:start + batch_size] for start in range(0, len(items), batch_size)]
        cores = torch.get_num_threads()
        workers = workers or (cores if self.device.type == "cpu" else 2)
        workers = max(1, min(workers, len(batches)))
        one_core = workers > 1
        results: list[Extraction | DramInputError | None] = [None] * len(items)
        bar = tqdm(total=len(items), desc="extract", unit="listing", disable=not progress)
        # A worker's torch runs on its own OpenMP team of one thread; the caller's keeps its cores.
        one_thread = (lambda: torch.set_num_threads(1)) if one_core else None
        try:
            with ThreadPoolExecutor(workers, thread_name_prefix="dram-batch", initializer=one_thread) as pool:
                for numbers, done in zip(batches, pool.map(lambda numbers: self._batch(items, categories, numbers, tau_r, one_core),
                                                           batches)):
                    for number, result in zip(numbers, done):
                        results[number] = result
                    bar.update(len(done))
            return results
        finally:
            bar.close()
            if one_core:
                torch.set_num_threads(cores)  # the workers set the default for threads started later to 1

    def _batch(self, items: list[tuple[str, ImageInput]], categories: list[str | None], numbers: list[int],
               tau_r: float | None, one_core: bool = False) -> list[Extraction | DramInputError]:
        """The extractions of the listings `numbers` of `items`, on one-thread encoder sessions with
        `one_core`; a bad listing is found and reported in place and the others still go through."""
        chunk = [items[number] for number in numbers]
        lane = self.model.onnx.one_core() if one_core and self.model.onnx is not None else nullcontext()
        with lane:
            try:
                return self._extractions(self.encode_many(chunk, [categories[n] for n in numbers]), tau_r)
            except DramInputError:
                out: list[Extraction | DramInputError] = []
                for number, (text, image) in zip(numbers, chunk):
                    try:
                        out.append(self.extract(text, image, tau_r, categories[number]))
                    except DramInputError as err:
                        log.warning("skipped listing %d: %s", number, err)
                        out.append(err)
                return out
