"""DramModel end to end on a tiny BERT + CNN: every variant trains, loss parts, selection, decoding."""
from __future__ import annotations

import pytest
import torch

from dram.nn.config import VARIANTS
from tests.tiny_model import count_encoder_calls, listing, make_batch, overfit, tiny_model, train_listings

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _nonzero_grad(param: torch.Tensor) -> bool:
    return param.grad is not None and bool(param.grad.abs().sum() > 0)


def _two_listings():
    return [listing("red cotton shirt for men", [("red", "colour"), ("cotton", "material"), ("shirt", "article_type")]),
            listing("raymond formal watch", [("watch", "article_type")])]


CASES = [(v, "prototype") for v in VARIANTS] + [("dram", "dynet"), ("dram", "bert")]


@pytest.mark.parametrize("variant, policy", CASES)
def test_variant_forward_loss_backward_and_gradient_flow(tiny_encoder_dir, variant: str, policy: str) -> None:
    # The whole language model trains here (the paper's IRC); the default's frozen lower half is tested below.
    model, tokenizer = tiny_model(tiny_encoder_dir, variant, arm_policy=policy, frozen_fraction=0.0)
    model.train()
    batch, _ = make_batch(model, tokenizer, _two_listings())
    loss, parts = model.loss(model.encode(batch), batch)
    assert torch.isfinite(loss) and loss.item() > 0 and parts["nll"] > 0 and parts["bce"] > 0
    loss.backward()
    cfg = model.config
    assert _nonzero_grad(model.classifier.mlp[0].weight)
    if cfg.use_arm:
        assert _nonzero_grad(model.arm.decoder.lstm.weight_ih_l0)
        assert _nonzero_grad(model.arm.decoder.crf.transitions)
        guidance = {"prototype": "prototypes.weight", "dynet": "down", "bert": "project.weight"}[policy]
        assert _nonzero_grad(model.arm.guidance.get_parameter(guidance))
    else:
        assert _nonzero_grad(model.joint_decoder.lstm.weight_ih_l0)
    if cfg.use_tem:
        assert _nonzero_grad(model.tem.out.weight)  # zero-initialised, but it does learn
    else:
        assert model.tem is None
    if cfg.vanilla_irc:
        assert _nonzero_grad(model.region_tokens.weight)
    word_embeddings = model.text_encoder.get_input_embeddings().weight
    if variant == "frozen":
        assert all(not p.requires_grad and p.grad is None for p in model.text_encoder.parameters())
    else:
        assert _nonzero_grad(word_embeddings)
        assert _nonzero_grad(model.text_encoder.encoder.layer[0].attention.self.query.weight)
    if cfg.use_image:
        assert all(not p.requires_grad and p.grad is None for p in model.image_encoder.parameters())
    else:
        assert model.image_encoder is None


def test_unfrozen_image_encoder_gets_gradients(tiny_encoder_dir) -> None:
    model, tokenizer = tiny_model(tiny_encoder_dir, "v-irc", freeze_image_encoder=False)
    batch, _ = make_batch(model, tokenizer, _two_listings())
    loss, _ = model.loss(model.encode(batch), batch)
    loss.backward()
    assert _nonzero_grad(model.image_encoder.backbone[0].weight)


@pytest.mark.parametrize("variant", ["dram", "v-irc"])
def test_listing_without_photo_encodes_like_text_only(tiny_encoder_dir, variant: str) -> None:
    model, tokenizer = tiny_model(tiny_encoder_dir, variant)
    model.eval()
    if model.tem is not None:
        torch.nn.init.normal_(model.tem.out.weight, std=0.1)  # make the photo matter
    batch, _ = make_batch(model, tokenizer, _two_listings(), with_image=[True, False])
    with torch.no_grad():
        mixed = model.encode(batch)
        batch.pixels = None
        text_only = model.encode(batch)
    torch.testing.assert_close(mixed.word_features[1], text_only.word_features[1])
    assert not torch.allclose(mixed.word_features[0], text_only.word_features[0])


def test_loss_is_nll_plus_lambda_bce(tiny_encoder_dir) -> None:
    model, tokenizer = tiny_model(tiny_encoder_dir, "dram")
    batch, _ = make_batch(model, tokenizer, _two_listings())
    with torch.no_grad():
        encoded = model.encode(batch)
        logits, gold = encoded.attribute_logits, batch.gold_attributes
        p = torch.sigmoid(logits)
        bce = -(gold * p.log() + (1 - gold) * (1 - p).log()).mean()
        model.config.loss_lambda = 1e-3
        small, parts = model.loss(encoded, batch)
        model.config.loss_lambda = 1.0
        big, parts_big = model.loss(encoded, batch)
    assert parts["bce"] == pytest.approx(bce.item(), rel=1e-5)
    torch.testing.assert_close(big - small, (1.0 - 1e-3) * bce, rtol=1e-4, atol=1e-6)
    assert small.item() == pytest.approx(parts["nll"] + 1e-3 * parts["bce"], rel=1e-5)
    assert parts["nll"] == pytest.approx(parts_big["nll"])


def _force_scores(model, logits: list[float]) -> None:
    last = model.classifier.mlp[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor(logits))


def test_training_selects_predicted_or_gold_and_wrong_picks_learn_all_o(tiny_encoder_dir) -> None:
    model, tokenizer = tiny_model(tiny_encoder_dir, "dram")
    _force_scores(model, [10.0, -10.0, -10.0])  # colour predicted everywhere, the rest never
    batch, texts = make_batch(model, tokenizer, _two_listings())
    seen = {}
    original_conditioned, original_nll = model.arm.conditioned, model.arm.decoder.nll

    def conditioned(features, rows, names, prior=None):
        seen["rows"] = rows.tolist()
        return original_conditioned(features, rows, names, prior)

    def nll(features, tags, mask):
        seen["tags"], seen["mask"] = tags, mask
        return original_nll(features, tags, mask)

    model.arm.conditioned, model.arm.decoder.nll = conditioned, nll
    model.loss(model.encode(batch), batch)
    # Listing 0 has all three gold; listing 1 has gold article_type (2) and predicted colour (0).
    assert seen["rows"] == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 2]]
    n1 = len(texts[1].words)
    assert seen["tags"][3, :n1].tolist() == [0] * n1  # wrongly selected colour: all O
    assert seen["tags"][4, :n1].tolist() == [0, 0, 1]  # "watch" is B
    assert seen["mask"][3].sum() == n1
    # Inference selects by tau_R alone: only colour.
    seen.clear()
    model.decode(model.encode(batch))
    assert seen["rows"] == [[0, 0], [1, 0]]


def test_with_nothing_selected_and_no_gold_only_bce_trains(tiny_encoder_dir) -> None:
    model, tokenizer = tiny_model(tiny_encoder_dir, "dram")
    _force_scores(model, [-10.0, -10.0, -10.0])
    batch, _ = make_batch(model, tokenizer, [listing("raymond formal watch", [])])
    assert batch.gold_attributes.sum() == 0
    loss, parts = model.loss(model.encode(batch), batch)
    assert parts["nll"] == 0.0
    assert loss.item() == pytest.approx(model.config.loss_lambda * parts["bce"], rel=1e-5)
    loss.backward()
    assert all(p.grad is None for p in model.arm.parameters())
    assert model.classifier.mlp[-1].bias.grad is not None and model.classifier.mlp[-1].bias.grad.abs().sum() > 0


def test_decode_at_new_tau_does_not_call_the_encoders(tiny_encoder_dir, monkeypatch) -> None:
    model, tokenizer = tiny_model(tiny_encoder_dir, "dram")
    model.eval()
    batch, _ = make_batch(model, tokenizer, _two_listings())
    calls = count_encoder_calls(model, monkeypatch)
    with torch.no_grad():
        encoded = model.encode(batch)
    assert calls == {"text": 1, "image": 1}  # the counters do count
    for tau in (0.0, 0.3, 0.7, 1.0):
        scores, _ = model.decode(encoded, tau)
        assert scores.shape == (2, 3)
    assert calls == {"text": 1, "image": 1}


def test_tau_zero_selects_everything_and_tau_one_nothing(tiny_encoder_dir) -> None:
    model, tokenizer = tiny_model(tiny_encoder_dir, "dram")
    model.eval()
    batch, _ = make_batch(model, tokenizer, _two_listings())
    rows = []
    original = model.arm.decoder.decode
    model.arm.decoder.decode = lambda features, *rest, **kw: rows.append(features.shape[0]) or original(features, *rest, **kw)
    with torch.no_grad():
        _force_scores(model, [30.0, 30.0, 30.0])  # sigmoid rounds to exactly 1.0
        encoded = model.encode(batch)
        scores, _ = model.decode(encoded, 0.0)
        assert rows == [6]
        assert torch.all(scores == 1.0)
        scores, spans = model.decode(encoded, 1.0)
    assert spans == [] and rows == [6]  # the decoder did not run at all


def test_model_overfits_eight_listings(tiny_encoder_dir) -> None:
    """Loss and decode work together: a tiny model learns 8 listings to TAG-F1 1.0."""
    model, tokenizer = tiny_model(tiny_encoder_dir, "dram", seed=0)
    best, step, decoded = overfit(model, tokenizer, train_listings(), max_steps=200)
    assert best == 1.0, f"TAG-F1 {best:.3f} after {step} steps"
    assert all(0.0 < d.confidence <= 1.0 for d in decoded)


def test_classifier_reads_the_mean_over_text_tokens_or_cls(tiny_encoder_dir) -> None:
    model, _ = tiny_model(tiny_encoder_dir, "v-irc")
    states = torch.arange(12.0).reshape(1, 6, 2)  # 4 text positions (2 of them padding) + 2 region tokens
    text_mask = torch.tensor([[True, True, False, False]])
    assert model.config.classifier_pooling == "mean"
    torch.testing.assert_close(model._sentence(states, text_mask), torch.tensor([[1.0, 2.0]]))
    model.config.classifier_pooling = "cls"
    torch.testing.assert_close(model._sentence(states, text_mask), torch.tensor([[0.0, 1.0]]))


def test_attribute_scores_do_not_depend_on_padding(tiny_encoder_dir) -> None:
    model, tokenizer = tiny_model(tiny_encoder_dir, "dram")
    model.eval()
    short = listing("red shirt", [])
    alone, _ = make_batch(model, tokenizer, [short])
    padded, _ = make_batch(model, tokenizer, [short, listing("blue cotton formal shirt for men with pockets", [])])
    with torch.no_grad():
        torch.testing.assert_close(model.encode(alone).attribute_logits[0], model.encode(padded).attribute_logits[0],
                                   atol=1e-5, rtol=1e-5)


def test_frozen_fraction_keeps_embeddings_and_lower_layers_and_trains_the_upper_ones(tiny_encoder_dir) -> None:
    model, tokenizer = tiny_model(tiny_encoder_dir, "dram", frozen_fraction=0.5)  # 1 of the 2 tiny layers
    model.train()
    batch, _ = make_batch(model, tokenizer, _two_listings())
    model.loss(model.encode(batch), batch)[0].backward()
    layers = model.text_encoder.encoder.layer
    assert model.n_frozen == 1
    assert model.text_encoder.get_input_embeddings().weight.grad is None
    assert all(p.grad is None and not p.requires_grad for p in layers[0].parameters())
    assert _nonzero_grad(layers[1].attention.self.query.weight)
    assert _nonzero_grad(model.tem.out.weight)  # TEM still learns through the frozen layers


def test_the_model_reads_its_config_without_writing_into_it(tiny_encoder_dir) -> None:
    from dram.nn.encoders import load_text_encoder
    from dram.nn.model import DramModel
    from tests.tiny_model import tiny_config, tiny_image_encoder

    config = tiny_config(tiny_encoder_dir)
    given = repr(config)
    model = DramModel(config, load_text_encoder(tiny_encoder_dir), tiny_image_encoder())
    assert repr(config) == given and config.hidden_size == 0
    assert model.config.hidden_size > 0 and model.config.image_channels > 0 and model.config.attributes == config.attributes
