"""Which signal says "unlike the training listings": the candidates compared on validation data only.

    python -m benchmarks.familiarity_signals --checkpoint models/default \
        --foreign ../shared/data/wdc-pave/train_large.jsonl [--threads 1]

For a checkpoint trained on assets/myntra-small: each signal's threshold is its 99% quantile on the
Myntra validation split (with photos), and the table gives the share flagged of that split without
photos (in-domain text typed into the app) and of the foreign validation set, the titles of
WDC-PAVE train_large (offers for computers, office, garden, jewellery and food; the test split is
kept for bench_familiarity). dram.familiarity uses the row this table chose.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from dram.data.readers import read_listings
from dram.data.tagging import split_words
from dram.familiarity import FamiliaritySettings, build_reference, listing_embedding
from dram.inference import Extractor, ImageInput
from dram.paths import BUNDLE

QUANTILE = 0.99


def encodings(extractor: Extractor, items: list[tuple[str, ImageInput]]) -> tuple[np.ndarray, np.ndarray]:
    """(listings, H) pooled points and (listings,) highest ARM existence score, as the Extractor encodes them."""
    points, arm = [], []
    for start in range(0, len(items), 32):
        for listing in extractor.encode_many(items[start:start + 32]):
            points.append(listing_embedding(listing.encoded.pooled.numpy()))
            arm.append(float(torch.sigmoid(listing.encoded.attribute_logits).max()))
    return np.stack(points), np.array(arm)


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def knn_cosine(reference: np.ndarray, k: int, centre: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    shift = reference.mean(axis=0) if centre else 0.0
    points = unit(reference - shift)
    return lambda x: 1 - np.sort(unit(x - shift) @ points.T, axis=1)[:, -k:].mean(axis=1)


def knn_euclidean(reference: np.ndarray, k: int) -> Callable[[np.ndarray], np.ndarray]:
    def score(x: np.ndarray) -> np.ndarray:
        squared = (x ** 2).sum(1)[:, None] - 2 * x @ reference.T + (reference ** 2).sum(1)[None]
        return np.sqrt(np.maximum(np.sort(squared, axis=1)[:, :k], 0)).mean(axis=1)
    return score


def mahalanobis(train: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    mean, precision = train.mean(axis=0), np.linalg.inv(np.cov(train.T) + 1e-3 * np.eye(train.shape[1]))
    return lambda x: np.einsum("ij,jk,ik->i", x - mean, precision, x - mean)


def word_types(text: str) -> set[str]:
    return {w.text.casefold() for w in split_words(text) if w.text.isalpha()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=BUNDLE, help="the checkpoint's train.jsonl and valid.jsonl")
    parser.add_argument("--foreign", type=Path, required=True, help="WDC-PAVE-style JSONL: its titles are read")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    extractor = Extractor.load(args.checkpoint, "cpu")
    train, _ = read_listings(args.data / "train.jsonl")
    valid, _ = read_listings(args.data / "valid.jsonl")
    titles = [json.loads(line)["input_title"] for line in args.foreign.read_text().splitlines() if line.strip()]
    sets = {"valid": [(l.text, l.image) for l in valid], "valid, no photos": [(l.text, None) for l in valid],
            "foreign titles": [(t, None) for t in titles]}
    texts = {name: [text for text, _ in items] for name, items in sets.items()}
    train_points, _ = encodings(extractor, [(l.text, l.image) for l in train])
    points, arm = {}, {}
    for name, items in sets.items():
        points[name], arm[name] = encodings(extractor, items)

    sample = train_points[np.random.default_rng(13).permutation(len(train_points))[:400]]
    vocabulary = set().union(*(word_types(l.text) for l in train))
    on_points = lambda score: {name: score(p) for name, p in points.items()}
    signals = {
        "cosine to the nearest of 400 training listings (dram.familiarity)": on_points(knn_cosine(sample, 1)),
        "mean cosine to the 5 nearest of 400": on_points(knn_cosine(sample, 5)),
        "cosine to the nearest of all training listings": on_points(knn_cosine(train_points, 1)),
        "mean cosine to the 5 nearest of 400, centred on the training mean": on_points(knn_cosine(sample, 5, True)),
        "euclidean distance to the nearest of 400": on_points(knn_euclidean(sample, 1)),
        "Mahalanobis distance to the training listings": on_points(mahalanobis(train_points)),
        "share of word types never seen in training": {
            name: np.array([len(word_types(t) - vocabulary) / max(1, len(word_types(t))) for t in ts])
            for name, ts in texts.items()},
        "1 - highest ARM existence score": {name: 1 - a for name, a in arm.items()},
    }
    reference = build_reference(train_points, points["valid"], "check")
    check = reference.unfamiliar(points["foreign titles"]).mean()
    print(f"| signal | valid (threshold, {QUANTILE:.0%}) | valid, no photos | foreign titles |\n|---|--:|--:|--:|")
    for name, scores in signals.items():
        threshold = np.quantile(scores["valid"], QUANTILE)
        print(f"| {name} | " + " | ".join(f"{(s > threshold).mean():.1%}" for s in scores.values()) + " |")
    print(f"\ndram.familiarity.build_reference with {FamiliaritySettings()}: {check:.1%} of the foreign titles")


if __name__ == "__main__":
    main()
