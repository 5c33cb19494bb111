"""Checkpoint folders: round trip, contents, clear errors, and crash-safe saving."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import dram.checkpoint as checkpoint
from dram.checkpoint import load_checkpoint, save_checkpoint
from dram.errors import CheckpointError
from dram.nn.config import DramConfig
from tests.tiny_model import clone, make_batch, tiny_image_encoder, tiny_model, train_listings

pytestmark = pytest.mark.usefixtures("one_torch_thread")

METRICS = {"valid": {"tag_f1": 0.5, "cls_f1": 0.75}}


@pytest.fixture
def image_encoder(monkeypatch):
    """The checkpoint rebuilds the (frozen, not stored) CNN by name; give it the tiny one."""
    image = tiny_image_encoder(seed=5)
    monkeypatch.setattr(checkpoint, "load_image_encoder", lambda name, grid=7, frozen=True: clone(image))
    return image


@pytest.fixture
def trained(tiny_encoder_dir, image_encoder):
    model, tokenizer = tiny_model(tiny_encoder_dir, "dram", image=clone(image_encoder), tau_r=0.4)
    with torch.no_grad():  # weights unlike any fresh initialisation, TEM included
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.05)
    return model.eval(), tokenizer


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _outputs(model, tokenizer):
    batch, _ = make_batch(model, tokenizer, train_listings(), seed=3)
    with torch.no_grad():
        encoded = model.encode(batch)
        scores, spans = model.decode(encoded, 0.2)
    return encoded, scores, spans


def test_round_trip_gives_identical_outputs(trained, tmp_path) -> None:
    model, tokenizer = trained
    save_checkpoint(model, tokenizer, tmp_path / "ck", METRICS)
    # The torch engine: bit for bit is the torch modules' promise; the ONNX engine rounds the last bits
    # otherwise (its agreement is tests/test_onnx_engine.py's).
    loaded, loaded_tokenizer, metrics = load_checkpoint(tmp_path / "ck", "cpu", engine="torch")
    assert metrics == METRICS
    assert not loaded.training
    assert loaded_tokenizer.tokenize("Red cotton shirts") == tokenizer.tokenize("Red cotton shirts")
    before, after = _outputs(model, tokenizer), _outputs(loaded, loaded_tokenizer)
    torch.testing.assert_close(after[0].word_features, before[0].word_features, rtol=0, atol=0)
    torch.testing.assert_close(after[0].attribute_logits, before[0].attribute_logits, rtol=0, atol=0)
    torch.testing.assert_close(after[0].cross_attention, before[0].cross_attention, rtol=0, atol=0)
    torch.testing.assert_close(after[1], before[1], rtol=0, atol=0)
    assert after[2] == before[2] and before[2], "decoded spans differ (or there were none to compare)"
    assert loaded.config.tau_r == 0.4 and loaded.config.attributes == model.config.attributes


def test_fresh_model_differs_so_the_round_trip_test_means_something(trained, tiny_encoder_dir, image_encoder) -> None:
    model, tokenizer = trained
    fresh, _ = tiny_model(tiny_encoder_dir, "dram", image=clone(image_encoder), seed=1)
    assert not torch.allclose(_outputs(fresh.eval(), tokenizer)[0].word_features, _outputs(model, tokenizer)[0].word_features)


def test_saved_folder_contents(trained, tmp_path) -> None:
    model, tokenizer = trained
    out = save_checkpoint(model, tokenizer, tmp_path / "models" / "ck", METRICS)
    assert out == tmp_path / "models" / "ck"
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "metrics.json", "model.safetensors", "text_encoder",
                                                  "value_lookup.json"]
    config = json.loads((out / "config.json").read_text())
    assert config["attributes"] == ["colour", "material", "article_type"]
    assert config["text_encoder"] == model.config.text_encoder and config["image_encoder"] == "tiny"
    assert config["tau_r"] == 0.4 and config["variant"] == "dram"
    assert config["hidden_size"] == 32 and config["image_channels"] == 8
    assert json.loads((out / "metrics.json").read_text()) == METRICS
    text = {p.name for p in (out / "text_encoder").iterdir()}
    assert "config.json" in text and ({"tokenizer.json", "vocab.txt"} & text)
    state = load_file(str(out / "model.safetensors"))
    assert not any(k.startswith("image_encoder.") for k in state)  # frozen CNN comes from its package
    assert any(k.startswith("text_encoder.") for k in state) and any(k.startswith("tem.") for k in state)
    assert [p.name for p in out.parent.iterdir()] == ["ck"]  # no temporary folders left


def test_unfrozen_image_encoder_is_stored(tiny_encoder_dir, image_encoder, tmp_path) -> None:
    model, tokenizer = tiny_model(tiny_encoder_dir, "dram", image=clone(image_encoder), freeze_image_encoder=False)
    save_checkpoint(model, tokenizer, tmp_path / "ck")
    assert any(k.startswith("image_encoder.") for k in load_file(str(tmp_path / "ck" / "model.safetensors")))


def test_overwriting_a_checkpoint_replaces_it_cleanly(trained, tiny_encoder_dir, tmp_path) -> None:
    model, tokenizer = trained
    save_checkpoint(model, tokenizer, tmp_path / "ck", {"v": 1})
    save_checkpoint(model, tokenizer, tmp_path / "ck", {"v": 2})
    assert json.loads((tmp_path / "ck" / "metrics.json").read_text()) == {"v": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]


def test_missing_checkpoint_raises_a_helpful_error(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not a DRAM checkpoint") as err:
        load_checkpoint(tmp_path / "nowhere")
    assert "training.build_default" in str(err.value) and "training.train" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"missing config\.json, model\.safetensors, text_encoder"):
        load_checkpoint(tmp_path / "empty")


def test_checkpoint_missing_its_weights_names_them(trained, tmp_path) -> None:
    model, tokenizer = trained
    save_checkpoint(model, tokenizer, tmp_path / "ck")
    (tmp_path / "ck" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"missing model\.safetensors"):
        load_checkpoint(tmp_path / "ck")


def test_weights_missing_a_tensor_raise_checkpoint_error(trained, tmp_path) -> None:
    model, tokenizer = trained
    save_checkpoint(model, tokenizer, tmp_path / "ck")
    weights = tmp_path / "ck" / "model.safetensors"
    state = load_file(str(weights))
    del state["classifier.mlp.0.weight"]
    save_file(state, str(weights))
    with pytest.raises(CheckpointError, match="damaged or from another version"):
        load_checkpoint(tmp_path / "ck")


def _damage(folder: Path, how: str) -> None:
    if how == "garbage weights":
        (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    elif how == "truncated weights":
        data = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data[: len(data) // 3])
    elif how == "broken config.json":
        (folder / "config.json").write_text("{\"attributes\": [")
    elif how == "config for other attributes":
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "attributes": ["a", "b", "c", "d"]}))
    elif how == "no tokenizer files":
        for f in (folder / "text_encoder").iterdir():
            if f.name != "config.json":
                f.unlink()


@pytest.mark.parametrize("how", ["garbage weights", "truncated weights", "broken config.json",
                                 "config for other attributes", "no tokenizer files"])
def test_damaged_checkpoint_raises_checkpoint_error(trained, tmp_path, how: str) -> None:
    model, tokenizer = trained
    save_checkpoint(model, tokenizer, tmp_path / "ck")
    _damage(tmp_path / "ck", how)
    with pytest.raises(CheckpointError, match=str(tmp_path / "ck")):
        load_checkpoint(tmp_path / "ck")


def test_crash_during_save_leaves_the_old_checkpoint_and_no_temp_folder(trained, tmp_path, monkeypatch) -> None:
    model, tokenizer = trained
    save_checkpoint(model, tokenizer, tmp_path / "ck", {"version": "old"})
    before = _snapshot(tmp_path / "ck")

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(model, tokenizer, tmp_path / "ck", {"version": "new"})
    assert _snapshot(tmp_path / "ck") == before
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]
    loaded, _, metrics = load_checkpoint(tmp_path / "ck")
    assert metrics == {"version": "old"}


def test_crash_during_first_save_leaves_nothing(trained, tmp_path, monkeypatch) -> None:
    model, tokenizer = trained
    monkeypatch.setattr(checkpoint, "save_file", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(model, tokenizer, tmp_path / "ck")
    assert list(tmp_path.iterdir()) == []


def test_config_saved_before_classifier_pooling_existed_loads_as_cls(tmp_path) -> None:
    config = DramConfig(attributes=["brand", "colour"])
    config.save(tmp_path / "config.json")
    data = json.loads((tmp_path / "config.json").read_text())
    assert data.pop("classifier_pooling") == "mean"
    (tmp_path / "config.json").write_text(json.dumps(data))
    assert DramConfig.load(tmp_path / "config.json").classifier_pooling == "cls"


def test_checkpoint_saved_before_value_prior_and_frozen_fraction_loads_without_them(tmp_path) -> None:
    import json

    from dram.nn.config import DramConfig

    config = DramConfig(attributes=["colour"])
    config.save(tmp_path / "config.json")
    data = json.loads((tmp_path / "config.json").read_text())
    del data["value_prior"], data["frozen_fraction"]
    (tmp_path / "config.json").write_text(json.dumps(data))
    loaded = DramConfig.load(tmp_path / "config.json")
    assert loaded.value_prior is False and loaded.frozen_fraction == 0


def test_the_next_save_removes_what_a_killed_save_left_beside_any_checkpoint(trained, tmp_path) -> None:
    model, tokenizer = trained
    out = tmp_path / "models" / "mine"
    save_checkpoint(model, tokenizer, out, METRICS)
    half = tmp_path / "models" / ".mine.a1b2c3d4"  # a temporary folder a kill -9 left mid-write
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"partial")
    (half / "value_lookup.json").write_text("{}")
    unrelated = tmp_path / "models" / ".notes"
    unrelated.mkdir()
    save_checkpoint(model, tokenizer, tmp_path / "models" / "other", METRICS)
    assert not half.exists() and unrelated.exists() and (out / "model.safetensors").exists()


def test_a_span_scorer_saved_before_its_span_means_loads_as_it_was_trained(tiny_encoder_dir, tmp_path) -> None:
    """The span scorer gained the mean of a span's words (`span_scorer.inside`); a checkpoint saved
    before has no such weight and loads with it at zero, which gives the outputs it was trained to give."""
    model, tokenizer = tiny_model(tiny_encoder_dir, "text-only", use_arm=False, span_scorer=True, seed=2)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.05)
        model.span_scorer.inside.weight.zero_()  # the scorer as it was: no mean
        model.span_scorer.out.bias[1:] = 6.0  # spans to compare: the scorer backs many
    model.eval()
    save_checkpoint(model, tokenizer, tmp_path / "ck", METRICS)
    weights = tmp_path / "ck" / "model.safetensors"
    state = load_file(str(weights))
    del state["span_scorer.inside.weight"]
    save_file(state, str(weights))

    loaded, loaded_tokenizer, _ = load_checkpoint(tmp_path / "ck", "cpu", engine="torch")
    before, after = _outputs(model, tokenizer), _outputs(loaded, loaded_tokenizer)
    assert after[2] == before[2] and before[2], "decoded spans differ (or there were none to compare)"
    with torch.no_grad():  # the comparison can tell: a mean that is not zero changes what is decoded
        loaded.span_scorer.inside.weight.normal_(0, 1.0)
    assert _outputs(loaded, loaded_tokenizer)[2] != before[2]
