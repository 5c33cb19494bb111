"""Whether a listing is like the listings the served model learned from.

A model trained on fashion titles still tags a laptop offer, confidently and wrongly. The check
sits in the fine-tuned text encoder's space, which the Extractor computes anyway: a listing is a
point there (its last layer's mean over its tokens, `EncoderOutput.pooled`), and its score is its
cosine distance to the nearest training listings. The threshold is a high quantile of the scores of
the validation listings, so in-domain listings are flagged only about as often as the quantile
leaves out. Chosen over unseen words, ARM scores and other distances on validation data
(BENCHMARKS.md, "Listings unlike the training data"). The reference is saved beside the checkpoint
(`REFERENCE_FILE`, about 300 KB); a checkpoint without one gives no such warning.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

REFERENCE_FILE = "familiarity.safetensors"


@dataclass
class FamiliaritySettings:
    """How the reference is built; saved with it."""

    # Training listings kept as the reference (a seeded sample when there are more): 400 vectors of
    # 384 float16 numbers are 300 KB.
    max_reference: int = 400
    neighbours: int = 1  # the score is the mean distance to this many nearest training listings
    quantile: float = 0.99  # of the validation scores: the threshold
    seed: int = 13


@dataclass
class FamiliarityReference:
    """Training listings as unit vectors in the encoder's space, and the threshold."""

    points: np.ndarray  # (n, H) float32 the reference listings' embeddings scaled to length 1 (float16 on disk)
    threshold: float  # a listing scoring above it is unlike the training listings
    learned_from: str  # what the model learned from, in words, for the warning
    settings: FamiliaritySettings

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """(B,) mean cosine distance of each listing (rows of `embeddings`, (B, H)) to its nearest reference listings."""
        # The product in torch, on the caller's threads: numpy's OpenBLAS pool spins a core for tens of
        # milliseconds after each product, taken from the batch workers beside it (BENCHMARKS.md, issue 24).
        points = torch.from_numpy(np.asarray(self.points, np.float32))
        similarity = (torch.from_numpy(_unit(np.atleast_2d(embeddings))) @ points.T).numpy()
        k = min(self.settings.neighbours, similarity.shape[1])
        nearest = -np.partition(-similarity, k - 1, axis=1)[:, :k]
        return 1.0 - nearest.mean(axis=1)

    def unfamiliar(self, embeddings: np.ndarray) -> np.ndarray:
        """(B,) whether each listing is unlike the training listings."""
        return self.scores(embeddings) > self.threshold

    def warning(self) -> str:
        return (f"This listing is unlike the listings this model learned from ({self.learned_from}): "
                "its values may be wrong.")

    def save(self, path: Path) -> None:
        save_file({"points": self.points.astype(np.float16)}, str(path),
                  metadata={"threshold": repr(float(self.threshold)), "learned_from": self.learned_from,
                            "settings": json.dumps(asdict(self.settings))})

    @classmethod
    def load(cls, path: Path) -> "FamiliarityReference":
        from safetensors import safe_open

        with safe_open(str(path), "numpy") as handle:
            metadata = handle.metadata()
        tensors = load_file(str(path))
        return cls(tensors["points"].astype(np.float32), float(metadata["threshold"]), metadata["learned_from"],
                   FamiliaritySettings(**json.loads(metadata["settings"])))


def listing_embedding(windows: np.ndarray) -> np.ndarray:
    """(H,) one listing from its windows' pooled rows (W, H): their mean, the same in training and at inference."""
    return np.asarray(windows, dtype=np.float32).mean(axis=0)


def build_reference(train: np.ndarray, valid: np.ndarray, learned_from: str,
                    settings: FamiliaritySettings | None = None) -> FamiliarityReference:
    """The reference from the training listings' embeddings (B, H) and the threshold from the validation
    listings' (which must not be training listings: a training listing is its own nearest neighbour)."""
    settings = settings or FamiliaritySettings()
    if len(train) == 0 or len(valid) == 0:
        raise ValueError("The familiarity reference needs training and validation listings.")
    keep = np.random.default_rng(settings.seed).permutation(len(train))[: settings.max_reference]
    points = _unit(train[np.sort(keep)]).astype(np.float16).astype(np.float32)  # as saved: the same scores loaded
    reference = FamiliarityReference(points, 0.0, learned_from, settings)
    reference.threshold = float(np.quantile(reference.scores(valid), settings.quantile))
    return reference


def _unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)
