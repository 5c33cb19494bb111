"""ONNX Runtime for the two encoders and the decoder's BiLSTM at inference on a CPU, exported from the
loaded model itself.

"onnx" runs both encoders in float32 (the same numbers as PyTorch's, to ~1e-5); "onnx-int8" gives the
text encoder int8 weights (ONNX Runtime's dynamic quantisation: activations quantised per call, VNNI/AMX
integer matmuls) and keeps the CNN in float32, since int8 moved its region features away from those the
heads learned from. On this project's listings (short titles, one 224x224 photo) PyTorch spends most of
an encoder pass between kernels; ONNX Runtime's fused graph runs the CNN ~2.8x and the text encoder
~2.5x (int8: ~7x) faster on one core (BENCHMARKS.md, "Faster than the bare fp32 encoders").

The span decoder's BiLSTM runs as a graph of its own (fp32 under both engines):
PyTorch's LSTM spends most of a listing's few rows in per-call overhead, and ONNX Runtime's LSTM takes
each row's length, so a batch needs no packing.

Only inference takes this path: ARM, TEM and the CRF stay in PyTorch, anything that needs gradients
runs the torch modules, and `DramModel.train()` drops the engine, since training changes the weights
the exported graphs hold. The graphs are made once per set of weights (a hash of them and of the
library versions names the files) and kept beside the checkpoint in `onnx/` (models/ is not in git),
or in the temporary folder when the checkpoint's folder is read-only.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from dram.errors import DramInputError
from dram.nn.encoders import run_text_layers
from dram.files import write_atomically

log = logging.getLogger(__name__)

ENGINES = ("auto", "torch", "onnx", "onnx-int8")
# The engine a loader runs when its caller names none: the app's setting, and what a job's
# --encoder-engine sets (--engine is predict's choice between this process and Ray).
ENGINE_VARIABLE = "DRAM_ENCODER_ENGINE"
# What "auto" runs on a CPU when ONNX Runtime is installed: fp32 ONNX gives torch fp32's spans and
# scores (500 of 500 bundled test listings, scores within 1e-4). int8 text is faster but moved ARM
# scores by up to 0.18 and changed the spans of 3 of the 500 (BENCHMARKS.md): past the 0.02 bar.
AUTO_CPU_ENGINE = "onnx"
CACHE_FOLDER = "onnx"
OPSET = 17


def onnx_runtime_missing() -> str | None:
    """Why the ONNX engine cannot run here (a message that says what to install), or None."""
    try:
        import onnx  # noqa: F401  (the quantiser and the exporter's checks read ONNX files with it)
        import onnxruntime  # noqa: F401
    except ImportError as err:
        return (f"The ONNX engine needs onnxruntime and onnx ({err}): `pip install onnxruntime onnx`, "
                "or run with --encoder-engine torch.")
    return None


def resolve_engine(engine: str | None, precision: str, device: torch.device) -> str:
    """The engine a model loaded with these settings runs: `engine` (None: $DRAM_ENCODER_ENGINE, else "auto"),
    and for "auto" the fastest one that keeps fp32's spans. A combination that cannot run is refused
    with what to use instead."""
    if engine is None:
        engine = os.environ.get(ENGINE_VARIABLE) or "auto"
        if engine not in ENGINES:
            raise DramInputError(f"{ENGINE_VARIABLE}={engine!r} is no engine: set it to one of {', '.join(ENGINES)}.")
    if engine not in ENGINES:
        raise DramInputError(f"Unknown engine {engine!r}: use one of {', '.join(ENGINES)}.")
    if engine == "auto":
        if device.type != "cpu" or precision in ("bf16", "fp16") or onnx_runtime_missing():
            return "torch"  # on a GPU torch's autocast; a 16-bit precision asked for is torch's
        return AUTO_CPU_ENGINE
    if engine != "torch":
        if device.type != "cpu":
            raise DramInputError(f"The {engine} engine runs on the CPU: use --encoder-engine torch (or auto) on {device}.")
        if precision in ("bf16", "fp16"):
            raise DramInputError(f"--precision {precision} is the torch engine's: use --encoder-engine torch "
                                 f"with it, or --precision fp32/auto with --encoder-engine {engine}.")
        missing = onnx_runtime_missing()
        if missing:
            raise DramInputError(missing)
    return engine


class _TextCore(nn.Module):
    """A BERT- or MPNet-style encoder from input embeddings to its last two layers' states (all the heads
    read), with the padding mask as an additive bias written out, so the graph has no branch on the mask."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, embeds: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        states = self.encoder.embeddings(inputs_embeds=embeds)
        bias = (1.0 - mask[:, None, None, :].to(states.dtype)) * torch.finfo(states.dtype).min
        outputs = run_text_layers(self.encoder, self.encoder.encoder.layer, states, bias)
        return outputs[-2], outputs[-1]


EXPORTABLE_TEXT_ENCODERS = ("bert", "mpnet")  # MiniLM is a BERT; all-mpnet-base-v2 an MPNet
# int8 kept MiniLM's spans on 497 of the 500 bundled test listings; all-mpnet-base-v2's on 176 of 354
# WDC-PAVE titles (ARM scores up to 0.94 apart), so an MPNet's text stays fp32 under onnx-int8.
INT8_TEXT_ENCODERS = ("bert",)


def exportable_text(encoder: nn.Module) -> bool:
    """The encoders whose layers `_TextCore` runs as their own forward pass does; others stay in torch."""
    config = getattr(encoder, "config", None)
    return (getattr(config, "model_type", None) in EXPORTABLE_TEXT_ENCODERS and hasattr(encoder, "embeddings")
            and hasattr(getattr(encoder, "encoder", None), "layer"))


def _weights_key(module: nn.Module, kind: str) -> str:
    """Names a graph by everything it is made from: the weights, the libraries and the kind."""
    import onnxruntime

    digest = hashlib.sha1(f"{kind}:{torch.__version__}:{onnxruntime.__version__}:{OPSET}".encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())  # C order, whatever the strides
    return digest.hexdigest()[:16]


def _cache_folder(checkpoint: Path | None) -> Path:
    """`<checkpoint>/onnx`, or a folder in the temporary directory when that one cannot be written."""
    if checkpoint is not None:
        folder = Path(checkpoint) / CACHE_FOLDER
        try:
            folder.mkdir(exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".probe.")
            probe.close()
            return folder
        except OSError:
            log.info("%s is read-only: the ONNX graphs go to the temporary folder", checkpoint)
    folder = Path(tempfile.gettempdir()) / "dram-onnx"
    folder.mkdir(exist_ok=True)
    return folder


def _export(module: nn.Module, inputs: tuple, path: Path, names: tuple[list[str], list[str]],
            axes: dict[str, dict[int, str]], edit: Callable | None = None) -> None:
    """`module` traced into an ONNX graph at `path`; `edit`: changes the graph (an onnx.ModelProto) in place."""
    def write(staging: Path) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(module.eval(), inputs, str(staging), dynamo=False, input_names=names[0],
                              output_names=names[1], dynamic_axes=axes, opset_version=OPSET)
        if edit is not None:
            import onnx

            graph = onnx.load(str(staging))
            edit(graph)
            onnx.checker.check_model(graph)
            onnx.save(graph, str(staging))

    write_atomically(path, write)


def _quantise(source: Path, path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    before = logging.getLogger().disabled
    logging.getLogger().disabled = True  # quiet its advice to pre-process, which goes to the root logger
    try:
        # Per output channel: the spans of fp32 on 497 of the 500 bundled test listings, against 494 per tensor.
        write_atomically(path, lambda staging: quantize_dynamic(str(source), str(staging), per_channel=True,
                                                                weight_type=QuantType.QInt8))
    finally:
        logging.getLogger().disabled = before


def _session(path: Path, threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()  # the process's budget (--threads), as torch's
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle pool threads sleep instead of spinning: spinning, they took the cores from torch's own threads
    # (TEM, the heads) and from the other session, and one listing with photo took 47 ms instead of 17
    # on 2 quiet cores. Spinning only while a run lasts (force_spinning_stop) was 1-2 ms faster on a
    # quiet box but 1-2 ms slower beside two idle app processes (BENCHMARKS.md, issue 24).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _text_graph(encoder: nn.Module, folder: Path, int8: bool) -> Path:
    key = _weights_key(encoder, "text")
    fp32 = folder / f"text-fp32-{key}.onnx"
    if not fp32.exists():
        log.info("exporting the text encoder to ONNX (once for these weights): %s", fp32)
        sample = (torch.zeros(2, 4, encoder.config.hidden_size), torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]))
        axes = {"embeds": {0: "rows", 1: "tokens"}, "mask": {0: "rows", 1: "tokens"},
                "before_last": {0: "rows", 1: "tokens"}, "last": {0: "rows", 1: "tokens"}}
        _export(_TextCore(encoder), sample, fp32, (["embeds", "mask"], ["before_last", "last"]), axes)
    if not int8:
        return fp32
    quantised = folder / f"text-int8-{key}.onnx"
    if not quantised.exists():
        log.info("quantising the text encoder to int8 (once for these weights): %s", quantised)
        _quantise(fp32, quantised)
    return quantised


def _image_graph(body: nn.Module, size: int, folder: Path) -> Path:
    path = folder / f"cnn-fp32-{_weights_key(body, f'cnn{size}')}.onnx"
    if not path.exists():
        log.info("exporting the image encoder to ONNX (once for these weights): %s", path)
        axes = {"pixels": {0: "photos"}, "features": {0: "photos"}}
        _export(body, (torch.zeros(1, 3, size, size),), path, (["pixels"], ["features"]), axes)
    return path


class _DecoderCore(nn.Module):
    """A span decoder's BiLSTM: word features (M, W, D) -> states (M, W, 2 x hidden), which the emission
    layer (and a span scorer) read in torch."""

    def __init__(self, decoder: nn.Module):
        super().__init__()
        self.decoder = decoder

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.decoder.unpacked_states(features)


def _with_row_lengths(graph) -> None:
    """Give the traced LSTM each row's length (input `lengths`, int32): ONNX's LSTM then reads a row's
    words only, its backward direction starting at the row's last word, as PyTorch's packed LSTM does."""
    from onnx import TensorProto, helper

    (lstm,) = [node for node in graph.graph.node if node.op_type == "LSTM"]
    graph.graph.input.append(helper.make_tensor_value_info("lengths", TensorProto.INT32, ["rows"]))
    lstm.input[4] = "lengths"  # sequence_lens, left empty by the exporter


def _decoder_graph(decoder: nn.Module, folder: Path) -> Path:
    core = _DecoderCore(decoder)
    path = folder / f"decoder-states-fp32-{_weights_key(core, 'decoder')}.onnx"
    if not path.exists():
        log.info("exporting the span decoder's BiLSTM to ONNX (once for these weights): %s", path)
        axes = {"features": {0: "rows", 1: "words"}, "states": {0: "rows", 1: "words"}}
        _export(core, (torch.zeros(2, 3, decoder.lstm.input_size),), path, (["features"], ["states"]), axes,
                edit=_with_row_lengths)
    return path


class _Body(nn.Module):
    """The CNN's feature extractor as a module of its own (efficientnet's is a bound method)."""

    def __init__(self, features: Callable[[torch.Tensor], torch.Tensor], owner: nn.Module):
        super().__init__()
        self.owner = owner
        self.features = features

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.features(pixels)


class OnnxEngine:
    """ONNX Runtime sessions standing in for the encoders' forward passes (`text`, `image`) and the span
    decoder's BiLSTM (`decoder`); None: that one stays in torch.

    Called as is, a session uses all the cores: one listing's text and photo, or a batch's photos in
    chunks of `chunk_size`, one chunk per core at a time, each on a one-thread session: splitting a
    chunk's small convolutions across cores keeps them waiting on each other. Inside `one_core()`
    the calling thread runs everything on one-thread sessions, each photo alone (the fastest on one
    core): `Extractor.extract_batch` runs one batch per core that way. The one-thread sessions, a
    second copy of the weights each, are made on first use."""

    chunk_size = 4

    def __init__(self, engine: str, text_graph: Path | None, image_graph: Path | None,
                 decoder_graph: Path | None = None):
        self.engine = engine
        self._graphs = {"text": text_graph, "image": image_graph, "decoder": decoder_graph}
        self.text = _session(text_graph) if text_graph is not None else None
        self.image = _session(image_graph) if image_graph is not None else None
        self.decoder = _session(decoder_graph) if decoder_graph is not None else None
        self._one_thread: dict[str, object] = {}
        self._lock = threading.Lock()
        self._lane = threading.local()
        self._workers: ThreadPoolExecutor | None = None

    @contextmanager
    def one_core(self) -> Iterator[None]:
        """This thread's encoder calls run on one core (one-thread sessions) until the block ends."""
        self._lane.one_core = True
        try:
            yield
        finally:
            self._lane.one_core = False

    def _on_one_core(self) -> bool:
        return getattr(self._lane, "one_core", False)

    def one_thread_session(self, part: str):
        """The one-thread session of `part` ("text", "image" or "decoder")."""
        with self._lock:
            if part not in self._one_thread:
                self._one_thread[part] = _session(self._graphs[part], threads=1)
            return self._one_thread[part]

    def text_states(self, embeds: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(second-to-last, last) layer states (B, T, H) for input embeddings (B, T, H) and mask (B, T)."""
        feeds = {"embeds": embeds.detach().float().contiguous().numpy(),
                 "mask": mask.detach().to(torch.int64).numpy()}
        session = self.one_thread_session("text") if self._on_one_core() else self.text
        before_last, last = session.run(None, feeds)
        return torch.from_numpy(before_last), torch.from_numpy(last)

    def decoder_states(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The decoder's BiLSTM states (M, W, 2 x hidden) for guided word features (M, W, D) and the word mask (M, W)."""
        feeds = {"features": features.detach().float().contiguous().numpy(),
                 "lengths": mask.sum(1).clamp(min=1).to(torch.int32).numpy()}
        session = self.one_thread_session("decoder") if self._on_one_core() else self.decoder
        return torch.from_numpy(session.run(None, feeds)[0])

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """The CNN body's feature map (B, C, h, w) for normalised pixels (B, 3, S, S)."""
        array = np.ascontiguousarray(pixels.detach().float().numpy())
        if self._on_one_core():
            single = self.one_thread_session("image")
            return torch.from_numpy(np.concatenate([single.run(None, {"pixels": photo[None]})[0] for photo in array]))
        cores = self.image.get_session_options().intra_op_num_threads
        if len(array) <= self.chunk_size or cores < 2:
            return torch.from_numpy(self.image.run(None, {"pixels": array})[0])
        single = self.one_thread_session("image")
        if self._workers is None:
            self._workers = ThreadPoolExecutor(cores, thread_name_prefix="dram-cnn")
        chunks = [array[i:i + self.chunk_size] for i in range(0, len(array), self.chunk_size)]
        maps = self._workers.map(lambda chunk: single.run(None, {"pixels": chunk})[0], chunks)
        return torch.from_numpy(np.concatenate(list(maps)))


def build_engine(engine: str, text_encoder: nn.Module, image_encoder: nn.Module | None, image_size: int,
                 checkpoint: Path | None, decoder: nn.Module | None = None) -> OnnxEngine:
    """Sessions for `engine` ("onnx" or "onnx-int8"), exporting what this set of weights lacks;
    `decoder`: the model's SpanDecoder (None: it stays in torch)."""
    folder = _cache_folder(checkpoint)
    text_graph = image_graph = None
    if exportable_text(text_encoder):
        int8 = engine == "onnx-int8"
        if int8 and text_encoder.config.model_type not in INT8_TEXT_ENCODERS:
            log.warning("onnx-int8: the %s text encoder stays in fp32 (in int8 all-mpnet-base-v2 gave other spans on "
                        "half of WDC-PAVE's titles test listings; BENCHMARKS.md)", text_encoder.config.model_type)
            int8 = False
        text_graph = _text_graph(text_encoder, folder, int8=int8)
    else:
        log.info("the %s text encoder has no ONNX export here: it runs in torch",
                 getattr(text_encoder.config, "model_type", "?"))
    if image_encoder is not None:
        body = image_encoder._features or image_encoder.backbone
        module = body if isinstance(body, nn.Module) else _Body(body, image_encoder.backbone)
        image_graph = _image_graph(module, image_size, folder)
    decoder_graph = _decoder_graph(decoder, folder) if decoder is not None else None
    return OnnxEngine(engine, text_graph, image_graph, decoder_graph)
