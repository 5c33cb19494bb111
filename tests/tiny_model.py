"""Tiny random-init encoders for fast model tests.

`write_text_encoder(folder)` writes a 2-layer, 32-wide BERT (config, WordPiece tokenizer and
weights) that `DramConfig(text_encoder=<folder>)` loads through `load_tokenizer` /
`load_text_encoder`; `tiny_image_encoder()` is a one-conv CNN giving a 7x7 grid of 8-d regions.
`tiny_model(...)` puts them together into a DramModel with small heads.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn
from torchvision import transforms

from dram.data.listings import Listing
from dram.data.spans import Span, char_spans
from dram.metrics import ExtractionScorer
from dram.nn.batching import collate, encode_texts, gold_targets
from dram.nn.config import DramConfig
from dram.nn.encoders import ImageRegionEncoder, load_text_encoder, load_tokenizer
from dram.nn.model import DramModel

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [
    "red", "blue", "black", "white", "green", "navy", "cotton", "silk", "wool", "denim", "leather",
    "shirt", "shirts", "dress", "jeans", "shoes", "watch", "belt", "jacket", "men", "women", "kids",
    "nike", "puma", "adidas", "raymond", "short", "long", "sleeve", "slim", "fit", "casual", "formal",
    "colour", "material", "article", "type", "brand", "gender", "for", "with", "and", "the", "a",
    "deo", "perfume", "bag", "cap", "socks", "t", "s", "x", "l", "m",
    "红", "色", "棉", "衬", "衫", "短", "袖", "男", "女",
    "-", ",", ".", "/", "!", "(", ")", "&", "1", "2", "3", "0",
]
SUBWORDS = ["##s", "##ed", "##er", "##ing", "##x", "##l"]
VOCAB = SPECIAL + WORDS + SUBWORDS
IMAGE_SIZE = 32
ATTRIBUTES = ["colour", "material", "article_type"]


def write_text_encoder(folder: Path, seed: int = 0, architecture: str = "bert") -> str:
    """A BERT-style model folder: vocab.txt, tokenizer files, config.json and random weights.
    architecture "mpnet" writes an MPNet (relative position bias, as all-mpnet-base-v2) behind the
    same WordPiece tokenizer."""
    from transformers import BertConfig, BertModel, BertTokenizerFast, MPNetConfig, MPNetModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    # transformers 5 ignores `vocab_file=`; loading the folder reads vocab.txt.
    tokenizer = BertTokenizerFast.from_pretrained(str(folder), do_lower_case=True)
    assert tokenizer.tokenize("Red shirts") == ["red", "shirts"], "tiny vocabulary was not read"
    tokenizer.save_pretrained(folder)
    config_class, model_class = {"bert": (BertConfig, BertModel), "mpnet": (MPNetConfig, MPNetModel)}[architecture]
    config = config_class(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          vocab_size=len(VOCAB), max_position_embeddings=128, pad_token_id=0)
    config.save_pretrained(folder)
    torch.manual_seed(seed)
    model_class(config).save_pretrained(folder)
    return str(folder)


def tiny_image_encoder(seed: int = 0) -> ImageRegionEncoder:
    torch.manual_seed(seed)
    backbone = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4), nn.ReLU())
    return ImageRegionEncoder(backbone, 8, 7, transforms.Normalize([0.5] * 3, [0.5] * 3))


def tiny_config(folder: str, variant: str = "dram", attributes: list[str] | None = None, **overrides) -> DramConfig:
    values = dict(text_encoder=folder, image_encoder="tiny", image_size=IMAGE_SIZE, tem_dim=16,
                  lstm_hidden=16, max_tokens=32)
    values.update(overrides)
    return DramConfig.for_variant(variant, list(attributes or ATTRIBUTES), **values)


def tiny_model(folder: str, variant: str = "dram", attributes: list[str] | None = None, seed: int = 0,
               image: ImageRegionEncoder | None = None, **overrides) -> tuple[DramModel, object]:
    config = tiny_config(folder, variant, attributes, **overrides)
    tokenizer = load_tokenizer(folder)
    text = load_text_encoder(folder, pretrained=True)
    image = image if image is not None else tiny_image_encoder(seed)
    names = ([tokenizer(a.replace("_", " "))["input_ids"] for a in config.attributes]
             if config.arm_policy == "bert" else None)
    torch.manual_seed(seed)
    return DramModel(config, text, image if config.use_image else None, names), tokenizer


def listing(text: str, spans: list[tuple[str, str]], lid: str = "x") -> Listing:
    """A listing whose spans are given as (substring, attribute): the first occurrence of each."""
    out = []
    for value, attribute in spans:
        start = text.index(value)
        out.append(Span(start, start + len(value), attribute))
    return Listing(id=lid, text=text, spans=sorted(out))


def make_batch(model: DramModel, tokenizer, listings: list[Listing], with_image: bool | list[bool] = True,
               gold: bool = True, seed: int = 0):
    """A collated batch with random pixels (when the model reads images) and gold targets."""
    texts = [encode_texts(tokenizer, [l.text], model.config.max_tokens)[0][0] for l in listings]
    flags = with_image if isinstance(with_image, list) else [with_image] * len(listings)
    pixels = None
    if model.image_encoder is not None:
        generator = torch.Generator().manual_seed(seed)
        pixels = torch.randn(len(listings), 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
    else:
        flags = [False] * len(listings)
    targets = [gold_targets(model.config, t, l) for t, l in zip(texts, listings)] if gold else None
    return collate(texts, flags, pixels=pixels, gold=targets, pad_id=tokenizer.pad_token_id or 0), texts


def clone(module: nn.Module) -> nn.Module:
    return copy.deepcopy(module)


# Listings with a brand, an attribute the tiny model's ATTRIBUTES lack: what growing a model learns.
BRANDED = [
    ("nike red shirt for men", [("nike", "brand"), ("red", "colour"), ("shirt", "article_type")]),
    ("puma blue jeans", [("puma", "brand"), ("blue", "colour"), ("jeans", "article_type")]),
    ("black belt adidas", [("adidas", "brand"), ("black", "colour"), ("belt", "article_type")]),
    ("raymond white dress", [("raymond", "brand"), ("white", "colour"), ("dress", "article_type")]),
    ("green cap by puma", [("puma", "brand"), ("green", "colour"), ("cap", "article_type")]),
    ("nike navy socks", [("nike", "brand"), ("navy", "colour"), ("socks", "article_type")]),
    ("adidas black shoes", [("adidas", "brand"), ("black", "colour"), ("shoes", "article_type")]),
    ("puma red cap", [("puma", "brand"), ("red", "colour"), ("cap", "article_type")]),
]

TRAIN_LISTINGS = [
    ("red cotton shirt for men", [("red", "colour"), ("cotton", "material"), ("shirt", "article_type")]),
    ("blue denim jeans", [("blue", "colour"), ("denim", "material"), ("jeans", "article_type")]),
    ("black leather belt", [("black", "colour"), ("leather", "material"), ("belt", "article_type")]),
    ("women silk dress", [("silk", "material"), ("dress", "article_type")]),
    ("nike shoes white", [("white", "colour"), ("shoes", "article_type")]),
    ("puma casual cap green", [("green", "colour"), ("cap", "article_type")]),
    ("wool jacket navy blue", [("navy blue", "colour"), ("wool", "material"), ("jacket", "article_type")]),
    ("raymond formal watch", [("watch", "article_type")]),
]


def train_listings() -> list[Listing]:
    return [listing(text, spans, str(i)) for i, (text, spans) in enumerate(TRAIN_LISTINGS)]


def count_encoder_calls(model: DramModel, monkeypatch) -> dict[str, int]:
    """Patch the encoders' forward to count calls: proves a path (re-decoding) never runs them."""
    calls = {"text": 0, "image": 0}
    # The ONNX engine's text session stands in for the text encoder's forward (the photo still goes
    # through the image encoder's forward, with the session as its body).
    text = model.onnx if model.onnx is not None and model.onnx.text is not None else model.text_encoder
    for name, owner, method in (("text", text, "text_states" if text is model.onnx else "forward"),
                                ("image", model.image_encoder, "forward")):
        original = getattr(owner, method)

        def counted(*args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(owner, method, counted)
    return calls


def overfit(model: DramModel, tokenizer, listings: list[Listing], max_steps: int, with_image: bool = True,
            on_step=None) -> tuple[float, int, list]:
    """Train on `listings` until TAG-F1 1.0 on them (checked every 10 steps) or `max_steps`: (the last
    TAG-F1, its step, the last decoded spans). `on_step(step, loss parts)` sees every step's loss terms."""
    batch, texts = make_batch(model, tokenizer, listings, with_image=with_image)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    best, decoded = 0.0, []
    for step in range(1, max_steps + 1):
        model.train()
        loss, parts = model.loss(model.encode(batch), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if on_step is not None:
            on_step(step, parts)
        if step % 10:
            continue
        model.eval()
        with torch.no_grad():
            scores, decoded = model.decode(model.encode(batch))
        scorer = ExtractionScorer()
        for i, item in enumerate(listings):
            spans = char_spans(item.text, texts[i].words, [d for d in decoded if d.listing == i])
            scorer.add({(s.start, s.end, s.attribute) for s in item.spans},
                       {(s.start, s.end, s.attribute) for s in spans},
                       {a for a, s in zip(model.config.attributes, scores[i]) if s > model.config.tau_r})
        best = scorer.summary()["tag_f1"]
        if best == 1.0:
            break
    return best, step, decoded
