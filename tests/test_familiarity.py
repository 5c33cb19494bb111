"""dram.familiarity: the reference, its score and threshold on made-up points; the tiny model's checkpoint
with and without the reference file; the Extractor's warning for a foreign listing."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dram.checkpoint import load_checkpoint, save_checkpoint
from dram.data.listings import Listing
from dram.familiarity import REFERENCE_FILE, FamiliarityReference, FamiliaritySettings, build_reference
from dram.inference import Extractor
from tests.tiny_model import tiny_model, train_listings
from training.familiarity import add_reference, describe, listing_embeddings
from training.loop import prepare

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def cluster(centre: np.ndarray, n: int, seed: int) -> np.ndarray:
    return centre + 0.05 * np.random.default_rng(seed).standard_normal((n, len(centre)))


AXIS_A, AXIS_B = np.eye(16)[0], np.eye(16)[1]


def test_points_of_another_cluster_are_unfamiliar_and_those_of_the_training_cluster_are_not():
    reference = build_reference(cluster(AXIS_A, 200, 0), cluster(AXIS_A, 100, 1), "made-up listings")
    assert not reference.unfamiliar(cluster(AXIS_A, 50, 2)).any()
    assert reference.unfamiliar(cluster(AXIS_B, 50, 3)).all()


def test_the_threshold_is_the_validation_quantile():
    valid = cluster(AXIS_A, 101, 1)
    reference = build_reference(cluster(AXIS_A, 300, 0), valid, "x", FamiliaritySettings(quantile=0.9))
    scores = reference.scores(valid)
    assert reference.threshold == pytest.approx(np.quantile(scores, 0.9))
    assert (scores > reference.threshold).sum() == 10  # 10 of 101 above the 90% quantile


def test_the_score_is_the_cosine_distance_to_the_nearest_reference_points():
    reference = FamiliarityReference(np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float16), 0.5, "x",
                                     FamiliaritySettings(neighbours=1))
    np.testing.assert_allclose(reference.scores(np.array([[2.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])),
                               [0.0, 1 - 2 ** -0.5, 1.0], atol=1e-3)
    reference.settings.neighbours = 2
    np.testing.assert_allclose(reference.scores(np.array([[2.0, 0.0]])), [0.5], atol=1e-3)


def test_the_reference_keeps_a_seeded_sample_of_at_most_max_reference_listings():
    settings = FamiliaritySettings(max_reference=30)
    first = build_reference(cluster(AXIS_A, 100, 0), cluster(AXIS_A, 20, 1), "x", settings)
    again = build_reference(cluster(AXIS_A, 100, 0), cluster(AXIS_A, 20, 1), "x", settings)
    assert first.points.shape == (30, 16)
    np.testing.assert_array_equal(first.points, first.points.astype(np.float16))  # what is saved is what scores
    np.testing.assert_array_equal(first.points, again.points)


def test_a_reference_needs_validation_listings():
    with pytest.raises(ValueError, match="validation"):
        build_reference(cluster(AXIS_A, 10, 0), np.zeros((0, 16)), "x")


def test_save_and_load_keep_everything_and_stay_small(tmp_path: Path):
    # MiniLM's 384 dimensions, more training listings than the reference keeps
    reference = build_reference(np.random.default_rng(0).standard_normal((1000, 384)),
                                np.random.default_rng(1).standard_normal((50, 384)), "3,000 listings of train.jsonl",
                                FamiliaritySettings(quantile=0.98))
    reference.save(tmp_path / REFERENCE_FILE)
    loaded = FamiliarityReference.load(tmp_path / REFERENCE_FILE)
    assert loaded.threshold == reference.threshold and loaded.learned_from == reference.learned_from
    assert loaded.settings == reference.settings
    np.testing.assert_array_equal(loaded.points, reference.points)
    assert (tmp_path / REFERENCE_FILE).stat().st_size < 320_000


def test_the_warning_names_what_the_model_learned_from():
    reference = build_reference(cluster(AXIS_A, 20, 0), cluster(AXIS_A, 20, 1), "3,000 listings of train.jsonl")
    assert reference.warning() == ("This listing is unlike the listings this model learned from (3,000 listings "
                                   "of train.jsonl): its values may be wrong.")


def test_describe_names_the_most_common_categories():
    listings = train_listings()
    for listing, category in zip(listings, ["Apparel"] * 4 + ["Footwear"] * 3 + ["Watches"]):
        listing.meta["category"] = category
    assert describe(listings, "train.jsonl") == "8 listings of train.jsonl, mostly Apparel, Footwear and Watches"
    assert describe(train_listings(), "train.jsonl") == "8 listings of train.jsonl"


# ---------------------------------------------------------------- with the tiny model

IN_DOMAIN = "blue cotton shirt for men"
# Listings like the training ones but not among them: a training listing is its own nearest neighbour.
VALIDATION = ["red silk dress for women", "black leather shoes", "navy wool jacket", "white denim jeans",
              "green cotton cap", "puma black belt", "nike blue socks", "raymond white shirt for men"]
FOREIGN = "1 / 2 & 3 ( 0 ) ! 红 色 棉 ! 0 / 1"


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, tiny_encoder_dir: str) -> Path:
    model, tokenizer = tiny_model(tiny_encoder_dir, variant="text-only")
    return save_checkpoint(model, tokenizer, tmp_path_factory.mktemp("models") / "tiny")


def test_a_checkpoint_without_the_reference_loads_and_warns_of_nothing(tiny_checkpoint: Path):
    assert not (tiny_checkpoint / REFERENCE_FILE).exists()
    model, _, _ = load_checkpoint(tiny_checkpoint, "cpu")
    assert model.familiarity is None
    result = Extractor.load(tiny_checkpoint, "cpu").extract(FOREIGN)
    assert result.unfamiliar is None and result.warnings == []


def test_added_reference_flags_a_foreign_listing_not_an_in_domain_one(tiny_checkpoint: Path, tmp_path: Path):
    checkpoint = Path(shutil.copytree(tiny_checkpoint, tmp_path / "tiny"))
    model, tokenizer, _ = load_checkpoint(checkpoint, "cpu")
    listings = train_listings()
    valid = [Listing(str(i), text) for i, text in enumerate(VALIDATION)]
    summary = add_reference(model, tokenizer, checkpoint, listings, valid, "train.jsonl", None)
    assert summary["reference_listings"] == 8 and (checkpoint / REFERENCE_FILE).exists()
    extractor = Extractor.load(checkpoint, "cpu")
    familiar, foreign = extractor.extract_batch([(IN_DOMAIN, None), (FOREIGN, None)])
    assert familiar.unfamiliar is False and familiar.warnings == []
    assert foreign.unfamiliar is True
    assert foreign.warnings == [extractor.model.familiarity.warning()]
    assert "8 listings of train.jsonl" in foreign.warnings[0]


def test_training_and_inference_place_a_listing_at_the_same_point(tiny_checkpoint: Path):
    model, tokenizer, _ = load_checkpoint(tiny_checkpoint, "cpu")
    listings = train_listings()[:3]
    trained = listing_embeddings(model, tokenizer, prepare(model, tokenizer, listings, None))
    served = [Extractor(model, tokenizer).encode(l.text).encoded.pooled.mean(0).numpy() for l in listings]
    np.testing.assert_allclose(trained, np.stack(served), atol=1e-5)


def test_a_saved_reference_travels_with_the_checkpoint(tiny_checkpoint: Path, tmp_path: Path):
    model, tokenizer, _ = load_checkpoint(tiny_checkpoint, "cpu")
    model.familiarity = build_reference(np.random.default_rng(0).standard_normal((20, 32)),
                                        np.random.default_rng(1).standard_normal((20, 32)), "x")
    save_checkpoint(model, tokenizer, tmp_path / "again")
    loaded, _, _ = load_checkpoint(tmp_path / "again", "cpu")
    np.testing.assert_array_equal(loaded.familiarity.points, model.familiarity.points)
    assert loaded.familiarity.threshold == model.familiarity.threshold
    torch.testing.assert_close(loaded.classifier.mlp[0].weight, model.classifier.mlp[0].weight)


def test_training_a_model_to_save_measures_its_reference_on_its_own_data(tiny_encoder_dir: str):
    from tests.tiny_model import tiny_config
    from training.loop import TrainSettings
    from training.train import train_model

    valid = [Listing(str(i), text) for i, text in enumerate(VALIDATION)]
    settings = TrainSettings(epochs=1, batch_size=4, cache_dir=None)
    config = tiny_config(tiny_encoder_dir, "text-only")
    model, tokenizer, _ = train_model(config, train_listings(), valid, settings, "cpu", progress=False,
                                      familiarity_source="shop/train.jsonl")
    assert model.familiarity.learned_from == "8 listings of shop/train.jsonl"
    scores = model.familiarity.scores(listing_embeddings(model, tokenizer, prepare(model, tokenizer, valid, None)))
    assert model.familiarity.threshold == pytest.approx(np.quantile(scores, 0.99), abs=1e-5)
    unsaved, _, _ = train_model(config, train_listings(), valid, settings, "cpu", progress=False)
    assert unsaved.familiarity is None  # the ablation's models are never saved: no reference pass


def test_source_name_is_the_folder_and_the_file():
    from training.familiarity import source_name

    assert source_name(Path("/work/shared/data/wdc-pave/train_large.jsonl")) == "wdc-pave/train_large.jsonl"
