"""Each category's attributes (dram/nn/category_schema.py): learned from listings that state their slots,
saved with the checkpoint, and limiting the joint decoder's tags and ARM's selection per listing."""
from __future__ import annotations

import pytest
import torch

from dram.checkpoint import load_checkpoint, save_checkpoint
from dram.data.listings import Listing
from dram.nn.category_schema import CategorySchema
from tests.tiny_model import listing, tiny_model
from training.loop import make_batch, predict, prepare

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _slotted(text: str, category: str | None, slots: dict[str, list[str]], spans=()) -> Listing:
    """A listing as WDC-PAVE's reader gives it: its category and the attributes people checked."""
    made = listing(text, list(spans))
    made.meta = {"target_values": slots, **({"category": category} if category else {})}
    return made


def test_schema_is_the_union_of_the_slots_each_category_states() -> None:
    schema = CategorySchema.from_listings([
        _slotted("red shirt", "Apparel", {"colour": ["red"], "material": []}),
        _slotted("blue jeans", "Apparel", {"article_type": ["jeans"]}),
        _slotted("nike watch", "Watches", {"article_type": []}),
        _slotted("green cap", None, {"colour": ["green"]}),  # no category: teaches nothing
        listing("cotton dress", [("cotton", "material")]),  # spans only: says nothing of what was checked
    ])
    assert schema.attributes == {"Apparel": ["article_type", "colour", "material"], "Watches": ["article_type"]}
    attributes = ["colour", "material", "article_type", "brand"]
    assert schema.allowed("Watches", attributes).tolist() == [False, False, True, False]
    assert schema.allowed("Apparel", attributes).tolist() == [True, True, True, False]
    assert schema.allowed("Shoes", attributes) is None  # a category never seen may take any attribute
    assert schema.allowed(None, attributes) is None


def test_a_fine_tune_widens_a_category_by_the_attributes_its_corrections_mark() -> None:
    schema = CategorySchema({"Watches": ["article_type"]})
    corrected = listing("nike watch", [("nike", "brand")])
    corrected.meta = {"category": "Watches"}
    other = listing("puma cap", [("puma", "brand")])
    other.meta = {"category": "Caps"}  # a category the schema does not limit stays unlimited
    grown = schema.learned([corrected, other])
    assert grown.attributes == {"Watches": ["article_type", "brand"]}
    assert schema.attributes == {"Watches": ["article_type"]}


def _joint_model_tagging_colour_everywhere(folder: str):
    """A joint tiny model whose emissions make every word B-colour unless colour is masked."""
    model, tokenizer = tiny_model(folder, "text-only", use_arm=False, value_prior=False)
    tags = model.config.tags
    with torch.no_grad():
        model.joint_decoder.emit.weight.zero_()
        model.joint_decoder.emit.bias.fill_(-5.0)
        model.joint_decoder.emit.bias[tags.index("B-colour")] = 5.0
        model.joint_decoder.emit.bias[tags.index("B-material")] = 3.0
        model.joint_decoder.crf.transitions.zero_()
    return model.eval(), tokenizer


def test_the_joint_decoder_tags_a_listing_only_with_its_category_s_attributes(tiny_encoder_dir) -> None:
    model, tokenizer = _joint_model_tagging_colour_everywhere(tiny_encoder_dir)
    model.schema = CategorySchema({"Fabrics": ["material"]})
    fabric, shirt, unknown = (listing("red cotton shirt", [], lid) for lid in ("a", "b", "c"))
    fabric.meta, shirt.meta = {"category": "Fabrics"}, {"category": "Shirts"}
    predicted = predict(model, tokenizer, prepare(model, tokenizer, [fabric, shirt, unknown], cache_dir=None))
    assert {s.attribute for s in predicted[0][0]} == {"material"}  # colour is not a Fabrics attribute
    assert {s.attribute for s in predicted[1][0]} == {"colour"}  # a category never seen: no limit
    assert {s.attribute for s in predicted[2][0]} == {"colour"}  # no category: no limit
    model.config.category_schema = False  # the switch turns the limit off
    predicted = predict(model, tokenizer, prepare(model, tokenizer, [fabric], cache_dir=None))
    assert {s.attribute for s in predicted[0][0]} == {"colour"}


def test_arm_never_selects_an_attribute_outside_the_category(tiny_encoder_dir) -> None:
    model, tokenizer = tiny_model(tiny_encoder_dir, "text-only", value_prior=False)
    model.eval()
    with torch.no_grad():
        model.classifier.mlp[-1].weight.zero_()
        model.classifier.mlp[-1].bias.fill_(10.0)  # every attribute scored ~1
    model.schema = CategorySchema({"Fabrics": ["material"]})
    fabric = listing("red cotton shirt", [])
    fabric.meta = {"category": "Fabrics"}
    selected = []
    original = model.arm.select
    model.arm.select = lambda scores, tau, gold=None: selected.append(original(scores, tau, gold).tolist()) or original(scores, tau, gold)
    (spans, scores), = predict(model, tokenizer, prepare(model, tokenizer, [fabric], cache_dir=None))
    assert selected == [[[0, model.config.attributes.index("material")]]]
    assert scores["colour"] > 0.99  # the scores shown are the classifier's, unmasked
    assert {s.attribute for s in spans} <= {"material"}


def test_a_labelled_value_outside_its_category_still_trains(tiny_encoder_dir) -> None:
    """A correction of an attribute the schema leaves out: the loss must stay finite (not the masked
    logit's 1e4), as the gold attributes join the row's allowed ones."""
    model, tokenizer = _joint_model_tagging_colour_everywhere(tiny_encoder_dir)
    model.schema = CategorySchema({"Fabrics": ["material"]})
    model.train()
    shirt = listing("red cotton shirt", [("red", "colour")])
    shirt.meta = {"category": "Fabrics"}
    data = prepare(model, tokenizer, [shirt], cache_dir=None)
    batch = make_batch(data, [0], 0, with_gold=True)
    assert batch.allowed[0].tolist() == [False, True, False]
    loss, parts = model.loss(model.encode(batch), batch)
    assert parts["nll"] < 100


def test_the_schema_is_saved_with_the_checkpoint(tiny_encoder_dir, tmp_path) -> None:
    model, tokenizer = tiny_model(tiny_encoder_dir, "text-only", use_arm=False)
    model.schema = CategorySchema({"Fabrics": ["material", "colour"]})
    save_checkpoint(model, tokenizer, tmp_path / "ck")
    loaded, _, _ = load_checkpoint(tmp_path / "ck", "cpu", engine="torch")
    assert loaded.schema.attributes == {"Fabrics": ["colour", "material"]}
    bare, _ = tiny_model(tiny_encoder_dir, "text-only", use_arm=False)
    save_checkpoint(bare, tokenizer, tmp_path / "bare")
    assert not (tmp_path / "bare" / "category_schema.json").exists()
    assert load_checkpoint(tmp_path / "bare", "cpu", engine="torch")[0].schema.attributes == {}


def test_the_extractor_limits_a_listing_of_a_known_category(tiny_encoder_dir) -> None:
    """The app's and the batch audit's path: one listing, and a batch with categories beside it."""
    from dram.inference import Extractor

    model, tokenizer = _joint_model_tagging_colour_everywhere(tiny_encoder_dir)
    model.schema = CategorySchema({"Fabrics": ["material"]})
    extractor = Extractor(model, tokenizer)
    assert {s.attribute for s in extractor.extract("red cotton shirt", category="Fabrics").spans} == {"material"}
    assert {s.attribute for s in extractor.extract("red cotton shirt").spans} == {"colour"}
    batch = extractor.extract_batch([("red cotton shirt", None)] * 3, categories=["Fabrics", None, "Shirts"],
                                    batch_size=1, workers=2)
    assert [{s.attribute for s in e.spans} for e in batch] == [{"material"}, {"colour"}, {"colour"}]
