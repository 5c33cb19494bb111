"""The shared training loop: cached region features by default, photos decoded per batch when the CNN trains."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from dram.data.listings import Listing
from dram.nn.batching import encode_texts
from dram.nn.value_lookup import cross_fitted, prior_features
from tests.tiny_model import listing, tiny_config, tiny_model, train_listings, write_text_encoder
from training.loop import TAU_GRID, TrainSettings, best_tau, fit, make_batch, prepare

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def words(model, tokenizer, item: Listing) -> list:
    return encode_texts(tokenizer, [item.text], model.config.max_tokens)[0][0].words


def with_photos(tmp_path, listings: list[Listing], broken: int | None = None) -> list[Listing]:
    for i, item in enumerate(listings):
        path = tmp_path / f"{i}.png"
        if i == broken:
            path.write_bytes(b"not an image")
        else:
            Image.new("RGB", (20, 30), (40 * i % 255, 90, 200)).save(path)
        item.image = path
    return listings


def data(tmp_path, broken=None):
    return with_photos(tmp_path, [listing("red cotton shirt", [("red", "colour"), ("cotton", "material")], "a"),
                                  listing("blue silk dress", [("blue", "colour"), ("dress", "article_type")], "b"),
                                  listing("green wool coat", [("green", "colour")], "c")], broken)


def test_frozen_cnn_reads_cached_features_and_skips_broken_photos(tiny_encoder_dir, tmp_path):
    model, tokenizer = tiny_model(tiny_encoder_dir)
    prepared = prepare(model, tokenizer, data(tmp_path, broken=1), tmp_path / "cache")
    assert prepared.pixels is None and prepared.regions.shape == (3, 49, 8)
    assert prepared.has_image == [True, False, True]
    assert list((tmp_path / "cache").iterdir()), "features were not cached on disk"


def test_joint_finetuning_decodes_photos_and_trains_the_cnn(tiny_encoder_dir, tmp_path):
    model, tokenizer = tiny_model(tiny_encoder_dir, freeze_image_encoder=False)
    prepared = prepare(model, tokenizer, data(tmp_path, broken=2), tmp_path / "cache")
    assert prepared.regions is None and prepared.has_image == [True, True, False]
    batch = make_batch(prepared, [0, 1, 2], tokenizer.pad_token_id)
    assert batch.pixels.shape == (3, 3, model.config.image_size, model.config.image_size)
    before = [p.detach().clone() for p in model.image_encoder.parameters()]
    # TEM's output starts at zero, so the photo gets gradient from the second step on.
    fit(model, tokenizer, prepared, None, TrainSettings(epochs=3, batch_size=3, cache_dir=None), progress=False)
    after = list(model.image_encoder.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(after, before)), "the CNN did not train"


@pytest.mark.parametrize("architecture", ["bert", "mpnet"])
def test_cached_frozen_layers_give_the_full_models_outputs_and_train_the_rest(architecture, tmp_path):
    # MPNet's layers need the relative position bias its encoder computes: run by hand they must match too.
    encoder = write_text_encoder(tmp_path / architecture, architecture=architecture)
    model, tokenizer = tiny_model(encoder, "text-only", frozen_fraction=0.5, use_arm=False, value_prior=False)
    assert model.caches_lower_layers
    listings = [listing("red cotton shirt for men", [("red", "colour"), ("cotton", "material")], "a"),
                listing("navy silk dress", [("navy", "colour")], "b")]
    model.eval()
    full = prepare(model, tokenizer, listings, None)
    cached = prepare(model, tokenizer, listings, None, training=TrainSettings())
    assert full.lower_states is None and len(cached.lower_states) == 2
    with torch.no_grad():
        a = model.encode(make_batch(full, [0, 1], 0))
        b = model.encode(make_batch(cached, [0, 1], 0))
    torch.testing.assert_close(b.word_features, a.word_features, atol=5e-3, rtol=0)  # float16 cache
    frozen = [p.clone() for p in model.text_encoder.encoder.layer[0].parameters()]
    fit(model, tokenizer, cached, None, TrainSettings(epochs=2, batch_size=2, cache_dir=None), progress=False)
    assert all(torch.equal(p, q) for p, q in zip(model.text_encoder.encoder.layer[0].parameters(), frozen))
    assert all(p.requires_grad for p in model.text_encoder.encoder.layer[1].parameters())
    shared = [p for n, p in model.text_encoder.encoder.named_parameters() if not n.startswith("layer.")]
    assert not any(p.requires_grad for p in shared)  # MPNet's relative position bias feeds the cached layers


def test_best_tau_leaves_the_papers_half_only_for_a_clear_gain_on_validation() -> None:
    assert best_tau({0.3: 0.80, 0.5: 0.70, 0.7: 0.75}) == 0.3
    assert best_tau({0.4: 0.80, 0.5: 0.80, 0.6: 0.80}) == 0.5  # ties: 0.5
    assert best_tau({0.2: 0.9830, 0.5: 0.9827}) == 0.5  # Myntra's flat curve: +0.03 point is noise
    assert best_tau({0.2: 0.9830, 0.5: 0.9827}, margin=0.0) == 0.2
    assert best_tau({0.1: 0.80, 0.4: 0.80, 0.9: 0.10}) == 0.4  # no 0.5 on the grid: the best, nearest 0.5


def test_calibration_chooses_the_best_of_the_sweep_and_leaves_the_model_as_it_was(tiny_encoder_dir,
                                                                                   monkeypatch) -> None:
    """The sweep itself is the one `training.sweep_tau` runs (tested there); here it is replaced by a
    fixed table so the test knows which tau_R must be chosen."""
    from training import loop

    model, tokenizer = tiny_model(tiny_encoder_dir, "text-only")
    config = model.config
    table = {tau: {"tag_f1": 0.9 - abs(tau - 0.3)} for tau in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)}
    swept = []
    monkeypatch.setattr(loop, "sweep", lambda _model, _tokenizer, _data, taus: swept.append(taus) or
                        {tau: table[tau] for tau in taus})
    valid = prepare(model, tokenizer, train_listings()[:3], None)
    calibration = loop.calibrate_tau(model, tokenizer, valid, TrainSettings())
    assert calibration.chosen == calibration.summary()["chosen"] == 0.3 and swept == [list(TAU_GRID)]
    assert calibration.summary()["valid_tag_f1"]["0.3"] == pytest.approx(0.9)
    assert model.config is config and config.tau_r == 0.5  # the caller gives the model the chosen value
    # The grid and the margin are the training settings': on (0.2, 0.5) the best is 0.2, unless the margin is wider.
    assert loop.calibrate_tau(model, tokenizer, valid, TrainSettings(tau_grid=(0.2, 0.5))).chosen == 0.2
    assert loop.calibrate_tau(model, tokenizer, valid, TrainSettings(tau_grid=(0.2, 0.5), tau_margin=0.2)).chosen == 0.5


def test_training_data_cross_fits_the_value_lookup_with_the_settings_seed(tiny_encoder_dir) -> None:
    model, tokenizer = tiny_model(tiny_encoder_dir, "text-only")
    # Each colour is labelled in one listing and read in the one before: whether the lookup that listing
    # reads knows it depends on how the seed dealt the two into folds.
    colours = ["red", "blue", "green", "black", "white", "navy", "pink", "grey", "olive", "teal"]
    listings = [listing(f"{c} {colours[(i + 1) % 10]} shirt", [(c, "colour")], str(i)) for i, c in enumerate(colours)]
    priors = {seed: [t.prior for t in prepare(model, tokenizer, listings, None, training=TrainSettings(seed=seed)).texts]
              for seed in (13, 14)}
    for seed, rows in priors.items():
        folds = cross_fitted(listings, seed=seed)
        expected = [prior_features(folds[i], words(model, tokenizer, l), model.config.attributes)
                    for i, l in enumerate(listings)]
        assert all(torch.equal(row, want) for row, want in zip(rows, expected)), seed
    assert any(not torch.equal(a, b) for a, b in zip(priors[13], priors[14]))  # another seed, other folds


@pytest.mark.parametrize("use_arm, calibrate", [(True, True), (True, False), (False, True)])
def test_training_chooses_tau_r_on_validation_only_for_arm_and_when_not_given(tiny_encoder_dir, use_arm: bool,
                                                                               calibrate: bool) -> None:
    from training.train import train_model

    config = tiny_config(tiny_encoder_dir, "text-only", use_arm=use_arm)
    listings = train_listings()
    model, _, metrics = train_model(config, listings, listings[:4], TrainSettings(epochs=2, batch_size=4, cache_dir=None),
                                    "cpu", progress=False, calibrate=calibrate)
    if not (use_arm and calibrate):
        assert "tau_r" not in metrics["train"] and model.config.tau_r == 0.5
        return
    sweep = metrics["train"]["tau_r"]
    assert set(sweep["valid_tag_f1"]) == {f"{tau:.1f}" for tau in TAU_GRID}
    assert model.config.tau_r == sweep["chosen"] == best_tau({float(t): f for t, f in sweep["valid_tag_f1"].items()})
    # The validation figures saved with the checkpoint are those at the chosen tau_R.
    assert metrics["valid"]["tag_f1"] == pytest.approx(sweep["valid_tag_f1"][f"{sweep['chosen']:.1f}"], abs=1e-6)
