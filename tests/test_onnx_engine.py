"""The ONNX engine (dram/nn/onnx_engine.py): chosen by --encoder-engine, $DRAM_ENCODER_ENGINE and auto, exported once per
set of weights, the same numbers as the torch encoders, gone once the model trains, and on the default
model the same spans as torch fp32 (the full 500 bundled test listings: `python -m benchmarks.bench_model`)."""
from __future__ import annotations

import argparse
import logging
import os
import threading

import pytest
import torch

from benchmarks.bench_model import agreement
from dram.data.readers import read_listings
from dram.errors import DramInputError
from dram.inference import Extractor
from dram.nn.onnx_engine import AUTO_CPU_ENGINE, ENGINE_VARIABLE, build_engine, resolve_engine
from dram.paths import BUNDLE, DEFAULT_CHECKPOINT
from tests.tiny_model import IMAGE_SIZE, listing, make_batch, tiny_model, write_text_encoder
from training.options import JobSettings, add_options, settings_from

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU, GPU = torch.device("cpu"), torch.device("cuda")


def test_engine_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENGINE_VARIABLE, raising=False)
    assert resolve_engine(None, "auto", CPU) == AUTO_CPU_ENGINE
    assert resolve_engine("auto", "fp32", CPU) == AUTO_CPU_ENGINE
    assert resolve_engine("auto", "bf16", CPU) == "torch"  # a 16-bit precision asked for is torch's autocast
    assert resolve_engine("auto", "auto", GPU) == "torch"
    assert resolve_engine("onnx", "fp32", CPU) == "onnx"
    with pytest.raises(DramInputError, match="runs on the CPU: use --encoder-engine torch"):
        resolve_engine("onnx", "auto", GPU)
    with pytest.raises(DramInputError, match="--precision bf16 is the torch engine's"):
        resolve_engine("onnx-int8", "bf16", CPU)
    with pytest.raises(DramInputError, match="Unknown engine 'fast'"):
        resolve_engine("fast", "auto", CPU)
    monkeypatch.setenv(ENGINE_VARIABLE, "torch")
    assert resolve_engine(None, "auto", CPU) == "torch"
    assert resolve_engine("onnx", "auto", CPU) == "onnx"  # an engine named by the caller beats the variable
    monkeypatch.setenv(ENGINE_VARIABLE, "quick")
    with pytest.raises(DramInputError, match="DRAM_ENCODER_ENGINE='quick' is no engine"):
        resolve_engine(None, "auto", CPU)


def test_the_engine_option_reaches_every_loader_of_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    """--encoder-engine sets $DRAM_ENCODER_ENGINE for the job (and its subprocesses), which every loader reads."""
    monkeypatch.setenv(ENGINE_VARIABLE, "auto")  # recorded, so the job's setting is undone after the test
    monkeypatch.delenv(ENGINE_VARIABLE)
    parser = argparse.ArgumentParser()
    add_options(parser, JobSettings)
    settings_from(JobSettings, parser.parse_args([])).apply()
    assert ENGINE_VARIABLE not in os.environ  # not given: the variable or auto decide
    job = settings_from(JobSettings, parser.parse_args(["--encoder-engine", "onnx"]))
    job.apply()
    assert job.encoder_engine == "onnx" and resolve_engine(None, "auto", CPU) == "onnx"
    with pytest.raises(SystemExit):
        parser.parse_args(["--encoder-engine", "tensorrt"])


@pytest.mark.parametrize("architecture", ["bert", "mpnet"])
def test_exported_encoders_give_the_torch_numbers_and_are_made_once(architecture: str, tmp_path) -> None:
    """MiniLM is a BERT; --text-encoder mpnet an MPNet, whose layers also take a relative position bias."""
    model, _ = tiny_model(write_text_encoder(tmp_path / f"tiny-{architecture}", architecture=architecture))
    assert model.text_encoder.config.model_type == architecture
    model.eval()
    engine = build_engine("onnx", model.text_encoder, model.image_encoder, IMAGE_SIZE, tmp_path)
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for rows, tokens in ((1, 3), (3, 40)):  # other shapes than the export's sample, and padding
            embeds = torch.randn(rows, tokens, 32, generator=generator)
            mask = torch.ones(rows, tokens, dtype=torch.bool)
            mask[-1, tokens // 2:] = False
            expected = model.text_encoder(inputs_embeds=embeds, attention_mask=mask.long(),
                                          output_hidden_states=True).hidden_states[-2:]
            for got, want in zip(engine.text_states(embeds, mask), expected):
                assert torch.allclose(got[mask], want[mask], atol=1e-4)
        pixels = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
        assert torch.allclose(engine.image_features(pixels), model.image_encoder.backbone(pixels), atol=1e-4)
        assert torch.allclose(model.image_encoder(pixels, engine.image_features), model.image_encoder(pixels), atol=1e-4)
        with engine.one_core():  # one-thread sessions, each photo alone: the same numbers
            assert torch.allclose(engine.image_features(pixels), model.image_encoder.backbone(pixels), atol=1e-4)
            assert torch.allclose(engine.text_states(embeds, mask)[1][mask], expected[1][mask], atol=1e-4)
    made = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "onnx").glob("*.onnx")}
    assert len(made) == 2
    build_engine("onnx", model.text_encoder, model.image_encoder, IMAGE_SIZE, tmp_path)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "onnx").glob("*.onnx")} == made
    with torch.no_grad():
        model.text_encoder.encoder.layer[0].output.dense.bias.add_(1.0)  # other weights: another graph
    build_engine("onnx", model.text_encoder, model.image_encoder, IMAGE_SIZE, tmp_path)
    assert len(list((tmp_path / "onnx").glob("text-*.onnx"))) == 2


def test_int8_leaves_an_mpnet_text_encoder_in_fp32(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    """int8 moved all-mpnet-base-v2's spans on half of the listings: its text runs fp32, and the log says so."""
    model, _ = tiny_model(write_text_encoder(tmp_path / "tiny-mpnet", architecture="mpnet"))
    model.eval()
    with caplog.at_level(logging.WARNING, logger="dram.nn.onnx_engine"):
        engine = build_engine("onnx-int8", model.text_encoder, None, IMAGE_SIZE, tmp_path)
    assert "the mpnet text encoder stays in fp32" in caplog.text
    assert [p.name[:10] for p in (tmp_path / "onnx").glob("*.onnx")] == ["text-fp32-"]
    embeds, mask = torch.randn(2, 5, 32), torch.ones(2, 5, dtype=torch.bool)
    with torch.inference_mode():
        expected = model.text_encoder(inputs_embeds=embeds, attention_mask=mask.long()).last_hidden_state
        assert torch.allclose(engine.text_states(embeds, mask)[1], expected, atol=1e-4)


@pytest.mark.parametrize("variant, span_scorer", [("dram", False), ("v-irc+tem", False), ("v-irc+tem", True)])
def test_exported_decoder_gives_the_torch_spans_on_rows_of_any_length(variant: str, span_scorer: bool,
                                                                      tiny_encoder_dir: str, tmp_path) -> None:
    """The BiLSTM's graph reads each row to its own length, as torch's packed LSTM does: the same
    states on padded rows, and the model decodes the same spans through it (ARM's per-attribute
    decoder, the joint one, and the joint one voting with a span scorer, which reads those states)."""
    model, tokenizer = tiny_model(tiny_encoder_dir, variant, span_scorer=span_scorer)
    model.eval()
    if span_scorer:  # untrained, it would find no value anywhere: make it propose some, so the vote has spans
        model.span_scorer.out.bias.data[1] = 9.0  # every span its first attribute's
    decoder = model.span_decoder
    engine = build_engine("onnx", model.text_encoder, None, IMAGE_SIZE, tmp_path, decoder)
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(4, 9, decoder.lstm.input_size, generator=generator)
    mask = torch.arange(9)[None] < torch.tensor([9, 4, 1, 7])[:, None]
    with torch.inference_mode():
        for rows in (slice(0, 1), slice(0, 4)):  # one full row (nothing to pack), and padded rows
            got, want = engine.decoder_states(features[rows], mask[rows]), decoder.states(features[rows], mask[rows])
            assert torch.allclose(got[mask[rows]], want[mask[rows]], atol=1e-5)
        encoded = model.encode(make_batch(model, tokenizer, [listing("Red cotton shirt by Acme", []),
                                                             listing("Blue denim jeans", [])], gold=False)[0])
        torch_answer = model.decode(encoded, tau_r=0.0)
        model.onnx = engine
        assert model._onnx_runs("decoder")
        onnx_answer = model.decode(encoded, tau_r=0.0)
    assert len(torch_answer[1]) > 0
    assert [(s.listing, s.attribute, s.first_word, s.end_word) for s in onnx_answer[1]] == \
        [(s.listing, s.attribute, s.first_word, s.end_word) for s in torch_answer[1]]
    model.add_attributes(["season"], seed=0)  # the decoder's weights change shape: its graph no longer fits
    assert model.onnx is None


def test_training_runs_the_torch_encoders(tiny_encoder_dir: str, tmp_path) -> None:
    """The graphs hold the weights as exported: anything that needs gradients, and a model put back
    into training (whose weights will move), runs torch."""
    model, _ = tiny_model(tiny_encoder_dir)
    model.eval()
    model.onnx = build_engine("onnx", model.text_encoder, model.image_encoder, IMAGE_SIZE, tmp_path)
    with torch.no_grad():
        assert model._onnx_runs("text") and model._onnx_runs("image")
    with torch.enable_grad():
        assert not model._onnx_runs("text")
    model.train()
    assert model.onnx is None


@pytest.fixture(scope="module")
def fp32_and_items() -> tuple[list, list]:
    if not (DEFAULT_CHECKPOINT / "model.safetensors").exists():
        pytest.skip("the default model is not built (python -m training.build_default)")
    items = [(l.text, l.image) for l in read_listings(BUNDLE / "test.jsonl", "jsonl")[0][:48]]
    return Extractor.load(DEFAULT_CHECKPOINT, "cpu", "fp32", "torch").extract_batch(items, batch_size=16), items


@pytest.mark.parametrize("engine", ["onnx", "auto"])
def test_default_model_engines_keep_the_fp32_spans(fp32_and_items: tuple, engine: str) -> None:
    """The issue's bar on a slice of the bundled test listings: the same spans as torch fp32 on at
    least 99% (here: all 48), ARM scores within 0.02; fp32 ONNX, what auto runs, within float rounding."""
    fp32, items = fp32_and_items
    extractor = Extractor.load(DEFAULT_CHECKPOINT, "cpu", "auto", engine)
    assert extractor.model.onnx is not None and extractor.model.onnx.engine == AUTO_CPU_ENGINE == "onnx"
    same, gap = agreement(fp32, extractor.extract_batch(items, batch_size=16))
    assert same == 1.0 and gap <= 1e-3, (same, gap)


def test_batches_run_side_by_side_one_core_each_with_the_same_answers(fp32_and_items: tuple) -> None:
    """extract_batch's workers: each batch on one-thread sessions, the answers those of one batch at a
    time on all the cores, in input order, a bad listing in its place, and the caller's threads kept."""
    _, items = fp32_and_items
    items = items[:20] + [("", None)] + items[20:]
    extractor = Extractor.load(DEFAULT_CHECKPOINT, "cpu", "auto", "onnx")
    one_at_a_time = extractor.extract_batch(items, batch_size=8, workers=1)
    torch.set_num_threads(2)  # the caller's two (the module's fixture puts its one back afterwards)
    side_by_side = extractor.extract_batch(items, batch_size=8, workers=2)
    seen = []  # a thread started afterwards (a new app request) gets the caller's two, not the workers' one
    later = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    later.start()
    later.join()
    assert torch.get_num_threads() == 2 and seen == [2]
    assert isinstance(side_by_side[20], DramInputError) and isinstance(one_at_a_time[20], DramInputError)
    kept = [i for i in range(len(items)) if i != 20]
    assert [side_by_side[i].text for i in kept] == [items[i][0] for i in kept]
    same, gap = agreement([one_at_a_time[i] for i in kept], [side_by_side[i] for i in kept])
    assert same == 1.0 and gap <= 1e-3, (same, gap)
    onnx = extractor.model.onnx
    assert onnx.one_thread_session("text").get_session_options().intra_op_num_threads == 1
    assert onnx.text.get_session_options().intra_op_num_threads == 1  # loaded under the fixture's one


def test_int8_text_encoder_moves_the_scores_a_little(fp32_and_items: tuple) -> None:
    """onnx-int8 runs int8 (the scores move) and keeps most spans; not auto's, since it misses the 0.02
    bar (on the 500: the same spans on 497, scores up to 0.18 apart)."""
    fp32, items = fp32_and_items
    int8 = Extractor.load(DEFAULT_CHECKPOINT, "cpu", "auto", "onnx-int8").extract_batch(items, batch_size=16)
    same, gap = agreement(fp32, int8)
    assert same >= 0.9 and 1e-3 < gap < 0.5, (same, gap)
