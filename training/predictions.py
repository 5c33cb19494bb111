"""Listings to the lines `training.predict` writes, in either engine (this process or Ray's actors):
each listing's spans and attribute scores in input order, and its JSON record."""
from __future__ import annotations

from pathlib import Path

from dram.data.listings import Listing
from dram.nn.model import DramModel
from training.loop import ListingPrediction, predict, prepare
from training.options import DEFAULT_CACHE

NO_WORDS = "the text has no words the model can read"


def predict_listings(model: DramModel, tokenizer, listings: list[Listing], tau_r: float | None = None,
                     batch_size: int = 64, cache_dir: Path | None = DEFAULT_CACHE,
                     progress: bool = False) -> list[ListingPrediction | None]:
    """Each listing's spans and attribute scores, in order (None for one without readable words),
    decoded as the app decodes them (`dram.decoding`)."""
    data = prepare(model, tokenizer, listings, cache_dir)
    predicted = dict(zip(map(id, data.listings), predict(model, tokenizer, data, tau_r, batch_size, progress)))
    return [predicted.get(id(listing)) for listing in listings]


def prediction_record(listing_id: str | None, prediction: ListingPrediction | None, problem: str = "") -> dict:
    """One output line: {"id", "spans", "attribute_scores"} (scores to 4 places, as the app gives them),
    with an "error" instead for a row that could not be read (`problem`) or a listing the model could not read."""
    record: dict = {"id": listing_id, "spans": [], "attribute_scores": {}}
    if prediction is None:
        record["error"] = problem or NO_WORDS
        return record
    spans, scores = prediction
    record.update(spans=[s.to_dict() for s in spans], attribute_scores={a: round(v, 4) for a, v in scores.items()})
    return record
