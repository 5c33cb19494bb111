"""Mixed precision keeps the numbers: the default model's extractions in bfloat16 against float32.

This machine has no GPU, so the 16-bit path is checked with bfloat16 autocast on the CPU (the same
`torch.autocast` code path CUDA takes, with the same 8-bit mantissa); the CUDA test runs where a GPU is.
"""
from __future__ import annotations

import pytest
import torch

from dram.data.readers import read_listings
from dram.errors import DramInputError
from dram.inference import Extractor
from dram.nn.precision import autocast_dtype
from dram.paths import BUNDLE, DEFAULT_CHECKPOINT
from tests.tiny_model import tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU = torch.device("cpu")


def test_precision_choices() -> None:
    assert autocast_dtype("auto", CPU) is None  # on a CPU bf16 is opt-in (slow without bf16 instructions)
    assert autocast_dtype("fp32", CPU) is None
    assert autocast_dtype("bf16", CPU) is torch.bfloat16
    with pytest.raises(DramInputError, match="fp16 needs a CUDA device"):
        autocast_dtype("fp16", CPU)
    with pytest.raises(DramInputError, match="Unknown precision 'half'"):
        autocast_dtype("half", CPU)


def test_a_wrong_precision_is_refused_when_the_model_loads() -> None:
    with pytest.raises(DramInputError, match="fp16 needs a CUDA device"):
        Extractor.load(DEFAULT_CHECKPOINT, "cpu", "fp16")


def _extractions(precision: str, items: list, device: str = "cpu") -> list:
    extractor = Extractor.load(DEFAULT_CHECKPOINT, device, precision)
    return extractor.extract_batch(items, batch_size=8)


def _compare(fp32: list, mixed: list) -> tuple[float, float]:
    """(share of listings with exactly the same spans, largest ARM score difference)."""
    same = sum([(s.attribute, s.start, s.end) for s in a.spans] == [(s.attribute, s.start, s.end) for s in b.spans]
               for a, b in zip(fp32, mixed)) / len(fp32)
    gap = max(abs(a.attribute_scores[k] - b.attribute_scores[k]) for a, b in zip(fp32, mixed) for k in a.attribute_scores)
    return same, gap


@pytest.fixture(scope="module")
def listings() -> list:
    if not (DEFAULT_CHECKPOINT / "model.safetensors").exists():
        pytest.skip("the default model is not built (python -m training.build_default)")
    return [(l.text, l.image) for l in read_listings(BUNDLE / "test.jsonl", "jsonl")[0][:24]]


def test_bf16_encoders_give_the_fp32_spans_and_scores(listings: list) -> None:
    """Tolerance: the same spans on at least 23 of 24 listings (a span at a decision boundary may
    flip on another CPU), ARM scores within 0.03. Measured here on 100 bundled listings: the same
    spans on all 100, scores at most 0.0115 apart."""
    fp32, bf16 = _extractions("fp32", listings), _extractions("bf16", listings)
    same, gap = _compare(fp32, bf16)
    assert same >= 23 / 24 and 0 < gap < 0.03, (same, gap)  # 0 < gap: the encoders did run in 16 bits
    assert all(s.confidence == s.confidence for e in bf16 for s in e.spans)  # no NaN from 16-bit sums


def test_training_steps_run_under_bf16_autocast(tiny_encoder_dir: str) -> None:
    """Gradients flow through the 16-bit encoders into float32 parameters; the loss stays finite."""
    from tests.tiny_model import listing
    from training.loop import TrainSettings, fit, prepare

    model, tokenizer = tiny_model(tiny_encoder_dir, "dram")
    model.precision = "bf16"
    under_autocast, encode = [], model._encode
    model._encode = lambda batch: under_autocast.append(torch.is_autocast_enabled("cpu")) or encode(batch)
    data = prepare(model, tokenizer, [listing("red cotton shirt", [("red", "colour"), ("cotton", "material")]),
                                      listing("blue denim jeans", [("blue", "colour"), ("denim", "material")])],
                   None, training=TrainSettings())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = fit(model, tokenizer, data, None, TrainSettings(epochs=2, batch_size=2, cache_dir=None), progress=False)
    assert all(r["mean_loss"] == r["mean_loss"] and r["mean_loss"] < float("inf") for r in result["history"])
    assert under_autocast and all(under_autocast)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
@pytest.mark.parametrize("precision", ["auto", "fp16"])
def test_cuda_mixed_precision_gives_the_fp32_spans(listings: list, precision: str) -> None:
    fp32, mixed = _extractions("fp32", listings, "cuda"), _extractions(precision, listings, "cuda")
    same, gap = _compare(fp32, mixed)
    assert same >= 23 / 24 and gap < 0.03, (same, gap)
