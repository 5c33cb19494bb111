"""A checkpoint is a folder: config.json, model.safetensors, text_encoder/ (config + tokenizer), metrics.json,
value_lookup.json when the model reads the value lookup, category_schema.json when its training listings
stated each category's attributes, and familiarity.safetensors when training measured where its listings
sit (dram.familiarity; older checkpoints have neither of the last two and load as they are)."""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import torch
from safetensors.torch import load_file, save_file

from dram.errors import CheckpointError
from dram.familiarity import REFERENCE_FILE, FamiliarityReference
from dram.nn.category_schema import CategorySchema
from dram.nn.config import DramConfig
from dram.nn.encoders import load_image_encoder, load_text_encoder, load_tokenizer
from dram.nn.model import DramModel
from dram.nn.onnx_engine import CACHE_FOLDER, build_engine, resolve_engine
from dram.nn.precision import RunSettings, autocast_dtype
from dram.nn.value_lookup import ValueLookup

log = logging.getLogger(__name__)
LOOKUP_FILE = "value_lookup.json"
SCHEMA_FILE = "category_schema.json"


def pick_device(device: str | None = None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _name_ids(tokenizer, attributes: list[str]) -> list[list[int]]:
    return [tokenizer(a.replace("_", " "))["input_ids"] for a in attributes]


def add_attributes(model: DramModel, tokenizer, names: list[str], *, seed: int) -> None:
    """Grow `model` by attributes it has no outputs for (silent until `model.switch_on`); see
    `DramModel.add_attributes`. The grown model saves and loads as any other checkpoint."""
    needs_names = model.config.use_arm and model.config.arm_policy == "bert"
    name_ids = _name_ids(tokenizer, [*model.config.attributes, *names]) if needs_names else None
    model.add_attributes(names, name_ids, seed=seed)


def build_model(config: DramConfig, pretrained: bool = True, precision: str = RunSettings.precision) -> tuple[DramModel, object]:
    """A fresh model from the configured encoders (pretrained weights from the installed packages);
    `precision` is the encoders' arithmetic (dram/nn/precision.py)."""
    tokenizer = load_tokenizer(config.text_encoder)
    text = load_text_encoder(config.text_encoder, pretrained)
    image = load_image_encoder(config.image_encoder, frozen=config.freeze_image_encoder) if config.use_image else None
    names = _name_ids(tokenizer, config.attributes) if config.arm_policy == "bert" else None
    model = DramModel(config, text, image, names)
    model.precision = precision
    return model, tokenizer


def _state_to_save(model: DramModel) -> dict[str, torch.Tensor]:
    state = model.state_dict()
    if model.config.freeze_image_encoder:
        # The frozen CNN is the installed package's; no need to store 13 MB of it again.
        state = {k: v for k, v in state.items() if not k.startswith("image_encoder.")}
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


# What a save killed midway leaves beside a checkpoint: its temporary folder (".NAME." + mkdtemp's
# 8 characters) or the old copy it was swapping out (".NAME.old").
_SAVE_LEFTOVER = re.compile(r"^\.(.+)\.([a-z0-9_]{8}|old)$")
_CHECKPOINT_PARTS = {"config.json", "model.safetensors", "text_encoder", "metrics.json", LOOKUP_FILE, SCHEMA_FILE,
                     REFERENCE_FILE, CACHE_FOLDER}


@contextlib.contextmanager
def _saving_into(folder: Path) -> Iterator[None]:
    """Hold `folder`'s save lock, first removing what interrupted saves left there.

    Under the lock no other save is under way in the folder, so a leftover is an interrupted save's
    (a `kill -9` leaves a hidden folder with up to a whole model in it). Only folders holding nothing
    but checkpoint files are removed.
    """
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder, os.O_RDONLY)  # the lock is on the folder itself: no lock file left behind
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        for path in folder.iterdir():
            if path.is_dir() and _SAVE_LEFTOVER.match(path.name) and {p.name for p in path.iterdir()} <= _CHECKPOINT_PARTS:
                log.info("removing %s, left by an interrupted checkpoint save", path)
                shutil.rmtree(path, ignore_errors=True)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def save_checkpoint(model: DramModel, tokenizer, out_dir: Path, metrics: dict | None = None) -> Path:
    """Write to a temporary folder beside out_dir, then swap it in, so a crash never leaves half a model
    (and the next save removes what a crashed one left)."""
    out_dir = Path(out_dir)
    with _saving_into(out_dir.parent):
        _save(model, tokenizer, out_dir, metrics)
    return out_dir


def _save(model: DramModel, tokenizer, out_dir: Path, metrics: dict | None) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.config.save(tmp / "config.json")
        save_file(_state_to_save(model), str(tmp / "model.safetensors"))
        tokenizer.save_pretrained(tmp / "text_encoder")
        model.text_encoder.config.save_pretrained(tmp / "text_encoder")
        (tmp / "metrics.json").write_text(json.dumps(metrics or {}, indent=2))
        if model.value_lookup is not None:
            model.value_lookup.save(tmp / LOOKUP_FILE)
        if model.schema.attributes:
            model.schema.save(tmp / SCHEMA_FILE)
        if model.familiarity is not None:
            model.familiarity.save(tmp / REFERENCE_FILE)
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_metrics(path: Path | str) -> dict:
    """A checkpoint's metrics.json ({} when it has none: an untrained or unevaluated checkpoint)."""
    metrics_file = Path(path) / "metrics.json"
    return json.loads(metrics_file.read_text()) if metrics_file.exists() else {}


# Weights added to a module after checkpoints of it were saved, whose zeros give an older checkpoint
# the outputs it was trained to give: the span scorer's mean of a span's words.
ADDED_SINCE_SAVED = frozenset({"span_scorer.inside.weight"})


def _load_weights(model: DramModel, path: Path) -> None:
    """model.safetensors into `model`, refused with the reason when it is damaged or made for another
    attribute set or encoder (the frozen pretrained CNN's weights come from its package, not the file)."""
    try:
        state = load_file(str(path / "model.safetensors"))
    except Exception as err:  # safetensors raises its own error types for truncated or foreign files
        raise CheckpointError(f"{path}: model.safetensors is damaged ({err}); rebuild the checkpoint.") from err
    expected = model.state_dict()
    wrong = [k for k, v in state.items() if k in expected and expected[k].shape != v.shape]
    if wrong:
        raise CheckpointError(
            f"{path}: weights do not fit its config ({', '.join(wrong[:3])} have other shapes): the weights "
            "were trained for another attribute set or encoder. Rebuild the checkpoint.")
    result = model.load_state_dict(state, strict=False)
    grown = [k for k in result.missing_keys if k in ADDED_SINCE_SAVED]
    if grown:
        with torch.no_grad():
            for key in grown:
                model.get_parameter(key).zero_()
    missing_keys = [k for k in result.missing_keys if not k.startswith("image_encoder.") and k not in grown]
    if missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{path}: weights do not match its config (missing {missing_keys[:3]}, unexpected "
            f"{result.unexpected_keys[:3]}). The checkpoint is damaged or from another version; rebuild it.")


def load_checkpoint(path: Path | str, device: str | torch.device | None = None,
                    precision: str = RunSettings.precision, engine: str | None = RunSettings.encoder_engine
                    ) -> tuple[DramModel, object, dict]:
    """(model in eval mode on device, with the encoders in `precision` run by `engine` (None:
    $DRAM_ENCODER_ENGINE, else auto; dram/nn/onnx_engine.py); tokenizer, metrics). A precision or
    engine the device cannot run is refused here, not on the first listing."""
    path = Path(path)
    where = pick_device(device) if not isinstance(device, torch.device) else device
    autocast_dtype(precision, where)
    engine = resolve_engine(engine, precision, where)
    needed = ["config.json", "model.safetensors", "text_encoder"]
    missing = [n for n in needed if not (path / n).exists()]
    if missing:
        raise CheckpointError(
            f"{path} is not a DRAM checkpoint (missing {', '.join(missing)}). "
            "Build the default model with `python -m training.build_default` or train one with `python -m training.train`.")
    try:
        config = DramConfig.load(path / "config.json")
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: config.json is damaged ({err}); rebuild the checkpoint.") from err
    encoder_dir = path / "text_encoder"
    if not (encoder_dir / "config.json").exists() or not any(
            (encoder_dir / name).exists() for name in ("tokenizer.json", "vocab.txt")):
        raise CheckpointError(f"{path}: text_encoder/ lacks its config or tokenizer files; rebuild the checkpoint.")
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
    text = AutoModel.from_config(AutoConfig.from_pretrained(path / "text_encoder"))
    image = load_image_encoder(config.image_encoder, frozen=config.freeze_image_encoder) if config.use_image else None
    names = _name_ids(tokenizer, config.attributes) if config.arm_policy == "bert" else None
    model = DramModel(config, text, image, names)
    _load_weights(model, path)
    if config.value_prior:
        if not (path / LOOKUP_FILE).exists():
            raise CheckpointError(f"{path}: {LOOKUP_FILE} is missing (the model reads the value lookup); "
                                  "rebuild the checkpoint.")
        model.value_lookup = ValueLookup.load(path / LOOKUP_FILE)
    if (path / SCHEMA_FILE).exists():
        model.schema = CategorySchema.load(path / SCHEMA_FILE)
    if (path / REFERENCE_FILE).exists():
        try:
            model.familiarity = FamiliarityReference.load(path / REFERENCE_FILE)
        except Exception as err:  # safetensors raises its own error types for truncated files
            raise CheckpointError(f"{path}: {REFERENCE_FILE} is damaged ({err}); add it again with "
                                  f"`python -m training.familiarity --checkpoint {path}`, or delete it.") from err
    model.precision = precision
    model = model.to(where).eval()
    if engine != "torch":
        model.onnx = build_engine(engine, model.text_encoder, model.image_encoder, config.image_size, path,
                                  model.span_decoder)
    return model, tokenizer, read_metrics(path)
