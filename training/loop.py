"""The training loop shared by train, finetune and the ablation: prepare, fit, evaluate, predict."""
from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from dram.data.images import load_image
from dram.data.photo_sources import photo_label
from dram.data.listings import Listing
from dram.data.spans import Span
from dram.decoding import decode_listings, listing_windows
from dram.errors import ImageError
from dram.metrics import ExtractionScorer, SlotScorer, best_answers
from dram.nn.batching import Batch, TextWindow, collate, gold_targets
from dram.nn.config import DramConfig
from dram.nn.model import DramModel, EncoderOutput
from dram.nn.precision import autocast_dtype
from dram.nn.region_cache import region_features
from dram.nn.value_lookup import ValueLookup, cross_fitted, prior_features
from training import distributed
from training.options import DEFAULT_CACHE

log = logging.getLogger(__name__)


@dataclass
class TrainSettings:
    # None: the budget follows the data (`planned_epochs`): about `target_steps` optimizer steps,
    # at least `min_epochs` and at most `max_epochs` passes, and with a validation set, a stop
    # once `patience` epochs in a row (or a quarter of the planned epochs, if more) did not
    # improve on the best validation TAG-F1 (not before half the planned epochs).
    epochs: int | None = field(default=None, metadata={
        "help": "passes over the data",
        "default_help": "a budget of optimizer steps that follows the data, stopping early on the validation set"})
    target_steps: int = field(default=1000, metadata={"help": "optimizer steps the data-driven budget aims at"})
    min_epochs: int = field(default=3, metadata={"help": "fewest passes of the data-driven budget"})
    # 100, not 40: 190 listings (12 steps an epoch) then get the whole 1,000 steps; capped at 40
    # they scored 1.8 value F1 less on WDC-PAVE (BENCHMARKS.md, "The epoch cap").
    max_epochs: int = field(default=100, metadata={"help": "most passes of the data-driven budget"})
    patience: int | None = field(default=3, metadata={
        "help": "stop after this many epochs (at least a quarter of the planned ones) without a better "
                "validation TAG-F1 (0: never)"})
    batch_size: int = field(default=16, metadata={"help": "listings per batch"})  # small sets need updates more
    lr_encoder: float = field(default=5e-5, metadata={  # the paper's fine-tuning rate
        "help": "learning rate of the language model", "decided_later": True,
        "default_help": "{default}; the text-only profile's when no training listing has a photo"})
    lr_heads: float = field(default=1e-3, metadata={  # fresh layers (TEM, ARM, decoder) learn faster
        "help": "learning rate of TEM, ARM and the decoder"})
    value_swap: float = field(default=0.5, metadata={
        "help": "each photo-less training listing also trains as a copy in which each labelled value is swapped, "
                "with this chance, for another training value of its attribute, within the step budget (0: no copies)"})
    seed: int = field(default=13, metadata={
        "help": "random seed (validation split, initialisation, batch order, the value lookups' folds)"})
    max_minutes: float | None = field(default=None, metadata={"help": "stop training after this many minutes"})
    cache_dir: Path | None = DEFAULT_CACHE
    # With a validation split, an ARM model's tau_R is chosen on this grid (`calibrate_tau`); a value
    # other than the configured one must beat it by more than `tau_margin` TAG-F1: on Myntra the curve
    # is flat (0.1-0.6 within 0.1 point) and the bare maximum moved the default model to 0.2 for
    # +0.03, costing CLS-F1.
    tau_grid: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    tau_margin: float = 0.005


def planned_epochs(n_train: int, settings: TrainSettings) -> int:
    """A fixed number of epochs gives 200 listings a tenth of the updates 2,000 get; a step budget
    does not. Large sets still see each listing `min_epochs` times."""
    if settings.epochs:
        return settings.epochs
    steps_per_epoch = max(1, math.ceil(n_train / settings.batch_size))
    wanted = math.ceil(settings.target_steps / steps_per_epoch)
    return max(settings.min_epochs, min(settings.max_epochs, wanted))


def rows_within_budget(n_train: int, settings: TrainSettings) -> int:
    """How many rows can join `n_train` within the step budget: up to the size at which `min_epochs`
    passes take `target_steps` steps; none with a fixed number of epochs. (A set so small that
    `max_epochs` caps its budget gets more steps from the rows, up to `target_steps`.)"""
    if settings.epochs:
        return 0
    return max(0, math.floor(settings.target_steps * settings.batch_size / settings.min_epochs) - n_train)


def patience_epochs(planned: int, settings: TrainSettings) -> int:
    """On a small set an epoch is a handful of steps and the validation score is noisy: 3 epochs
    without a gain are no sign of a plateau there, a quarter of the budget is."""
    return max(settings.patience, planned // 4) if settings.patience else 0


def length_bucketed(order: list[int], lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Batches of similar length in random order: long descriptions are not padded alongside titles."""
    window = batch_size * 50
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


@dataclass
class PreparedData:
    """Listings and the rows the model reads: one per text window (usually one per listing)."""

    listings: list[Listing]
    texts: list[TextWindow]  # rows
    listing_of: list[int]  # row -> index into listings; a listing's rows are consecutive
    gold: list[tuple[torch.Tensor, torch.Tensor]]  # per row
    regions: torch.Tensor | None  # per listing
    has_image: list[bool]  # per listing
    # Joint fine-tuning of the CNN: photos are decoded per batch instead of read from the cache.
    pixels: Callable[[list[int]], torch.Tensor] | None = None
    lower_states: list[torch.Tensor] | None = None  # per row, when the model caches its frozen layers

    def __len__(self) -> int:
        return len(self.texts)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare(model: DramModel, tokenizer, listings: list[Listing], cache_dir: Path | None = DEFAULT_CACHE,
            use_images: bool = True, training: TrainSettings | None = None,
            lookups: list[ValueLookup] | None = None) -> PreparedData:
    """Tokenize, build gold tags, and look up (or compute) region features. Texts without words are skipped.

    For `training` (its settings), each listing's value-lookup features come from a lookup built
    without it (`cross_fitted` with the settings' seed), so the model learns how far the dictionary
    can be trusted on unseen listings; `lookups` gives one per listing instead (a fine-tune's, on
    top of the checkpoint's lookup). Otherwise they come from the model's own lookup.
    """
    config = model.config
    if not config.value_prior:
        lookups = None
    elif lookups is None:
        lookups = (cross_fitted(listings, seed=training.seed) if training is not None
                   else [model.value_lookup] * len(listings))
    kept, texts, listing_of = [], [], []
    allowed = [model.schema.allowed(l.category(), config.attributes) for l in listings]
    all_windows = listing_windows(tokenizer, config, [l.text for l in listings], lookups or [None] * len(listings),
                                  allowed)
    for listing, windows in zip(listings, all_windows):
        if not windows:
            log.warning("skipping listing %s: no readable words", listing.id)
            continue
        texts += windows
        listing_of += [len(kept)] * len(windows)
        kept.append(listing)
    unknown = sorted({s.attribute for l in kept for s in l.spans} - set(config.attributes))
    if unknown:
        log.warning("spans of attributes the model does not know are ignored: %s", ", ".join(unknown))
    gold = [gold_targets(config, t, kept[k]) for t, k in zip(texts, listing_of)]
    regions, has_image, pixels = None, [False] * len(kept), None
    if model.image_encoder is not None and config.freeze_image_encoder:
        paths = [l.image if use_images else None for l in kept]
        with distributed.main_first():  # under torchrun rank 0 fills the cache, the others then read it
            regions, has_image = region_features(model.image_encoder, config.image_encoder, config.image_size, paths,
                                                 cache_dir, device=model.device)
    elif model.image_encoder is not None:
        photos = [_readable(l.image) if use_images else None for l in kept]
        has_image = [p is not None for p in photos]
        blank = torch.zeros(3, config.image_size, config.image_size)

        def decoded_pixels(index: list[int]) -> torch.Tensor:
            return torch.stack([model.image_encoder.preprocess(photos[i], config.image_size) if photos[i] is not None
                                else blank for i in index])

        pixels = decoded_pixels
    data = PreparedData(kept, texts, listing_of, gold, regions, has_image, pixels)
    if training is not None and model.caches_lower_layers:
        data.lower_states = _lower_states(model, texts, tokenizer.pad_token_id or 0)
    return data


def refresh_prior(model: DramModel, data: PreparedData) -> None:
    """Recompute the value-lookup features of prepared data from the model's (new) lookup."""
    for text in data.texts:
        text.prior = prior_features(model.value_lookup, text.words, model.config.attributes)


LOWER_CACHE_LIMIT_BYTES = 2 * 1024 ** 3


def _lower_states(model: DramModel, texts: list[TextWindow], pad: int, batch_size: int = 32) -> list[torch.Tensor] | None:
    """The frozen layers' output for every training row, once (float16, at most 2 GiB in memory)."""
    size = sum(len(t.input_ids) for t in texts) * model.config.hidden_size * 2
    if size > LOWER_CACHE_LIMIT_BYTES:
        log.info("not caching the frozen layers: %.1f GiB is more than the limit", size / 1024 ** 3)
        return None
    order = sorted(range(len(texts)), key=lambda i: len(texts[i].input_ids))
    states: list[torch.Tensor | None] = [None] * len(texts)
    for start in tqdm(range(0, len(order), batch_size), desc="frozen layers", unit="batch"):
        index = order[start:start + batch_size]
        batch = collate([texts[i] for i in index], [False] * len(index), pad_id=pad).to(model.device)
        out = model.lower_states(batch.input_ids, batch.attention_mask)
        for row, i in enumerate(index):
            states[i] = out[row, : len(texts[i].input_ids)].to("cpu", torch.float16)
    return states


def _readable(photo: Path | bytes | None):
    """The photo (a file or its bytes) as an RGB image, or None (logged) when it is missing or unreadable."""
    if photo is None:
        return None
    try:
        return load_image(photo)
    except ImageError as err:
        log.warning("skipping photo %s: %s", photo_label(photo), err)
        return None


def make_batch(data: PreparedData, index: list[int], pad_id: int, with_gold: bool = True) -> Batch:
    owners = [data.listing_of[i] for i in index]
    regions = data.regions[owners].float() if data.regions is not None else None
    pixels = data.pixels(owners) if data.pixels is not None else None
    lower = [data.lower_states[i] for i in index] if data.lower_states is not None else None
    return collate([data.texts[i] for i in index], [data.has_image[k] for k in owners], regions=regions, pixels=pixels,
                   gold=[data.gold[i] for i in index] if with_gold else None, pad_id=pad_id, lower_states=lower)


# TEM and the V-IRC region projection write into the word-embedding space, whose values are
# ~0.05: at the heads' rate they swamp the embeddings within a few steps and the language model
# forgets what it knew (measured: TAG-F1 stuck at 0). They learn at the encoder's rate.
EMBEDDING_SPACE = ("text_encoder.", "image_encoder.", "tem.", "region_tokens.", "region_norm.")


def _optimizer(model: DramModel, settings: TrainSettings) -> torch.optim.Optimizer:
    encoder, heads = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (encoder if name.startswith(EMBEDDING_SPACE) else heads).append(param)
    return torch.optim.Adam([{"params": encoder, "lr": settings.lr_encoder}, {"params": heads, "lr": settings.lr_heads}])


class _LossStep(torch.nn.Module):
    """The training step as a module's forward, so DistributedDataParallel sees the call and syncs gradients."""

    def __init__(self, model: DramModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict]:
        return self.model.loss(self.model.encode(batch), batch)


# Told (epochs finished, epochs planned) before the first epoch and after each: how a caller that
# is not a terminal (the app building its model) follows the training.
EpochCallback = Callable[[int, int], None]


@dataclass
class _Stepper:
    """One optimizer step on a batch: the loss (under DDP, synchronised), the scaled backward pass,
    clipping, the step and the learning-rate schedule."""

    model: DramModel
    step: torch.nn.Module  # `_LossStep`, or it wrapped in DistributedDataParallel
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    schedule: torch.optim.lr_scheduler.LambdaLR
    ddp: bool

    def __call__(self, batch: Batch) -> tuple[float, dict]:
        loss, parts = self.step(batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.schedule.step()
        return (distributed.mean(loss.item()) if self.ddp else loss.item()), parts


def _stepper(model: DramModel, settings: TrainSettings, total_steps: int) -> _Stepper:
    """The optimizer with a linear warm-up (a tenth of the steps) and decay, in DDP under torchrun."""
    ddp = distributed.launched() and distributed.active()
    step: torch.nn.Module = _LossStep(model)
    if ddp:
        # ARM trains only the decoders of the attributes it selects for a batch: the others get no
        # gradient in that step, which DDP must be told to expect.
        step = torch.nn.parallel.DistributedDataParallel(
            step, device_ids=[model.device.index] if model.device.type == "cuda" else None,
            find_unused_parameters=True)
    optimizer = _optimizer(model, settings)
    # float16 gradients underflow without loss scaling; bfloat16 and float32 need none.
    scaler = torch.amp.GradScaler(model.device.type,
                                  enabled=autocast_dtype(model.precision, model.device) == torch.float16)
    warmup = max(1, total_steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total_steps - s) / max(1, total_steps - warmup))))
    return _Stepper(model, step, optimizer, scaler, schedule, ddp)


@dataclass
class _BestEpoch:
    """The best validation TAG-F1 so far, its epoch and a copy of the weights then."""

    tag_f1: float = -1.0
    epoch: int = 0
    state: dict[str, torch.Tensor] | None = None

    def offer(self, model: DramModel, tag_f1: float, epoch: int) -> None:
        if tag_f1 > self.tag_f1:
            self.tag_f1, self.epoch = tag_f1, epoch
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}


def _epoch_batches(train: PreparedData, settings: TrainSettings, epoch: int, ddp: bool, rng: random.Random,
                   lengths: list[int]) -> list[list[int]]:
    """This process's batches of one epoch: its shard under DDP, else length-bucketed in random order."""
    if ddp:
        return distributed.shard_batches(len(train), settings.batch_size, epoch, settings.seed)
    order = list(range(len(train)))
    rng.shuffle(order)
    return length_bucketed(order, lengths, settings.batch_size, rng)


def _train_epoch(stepper: _Stepper, train: PreparedData, batches: list[list[int]], pad: int, desc: str,
                 progress: bool, out_of_time: Callable[[], bool]) -> dict:
    """One pass over `batches` (cut short when `out_of_time`); the running and the mean loss."""
    bar = tqdm(batches, desc=desc, unit="batch", disable=not progress)
    running, total_loss, steps = None, 0.0, 0
    for index in bar:
        value, parts = stepper(make_batch(train, index, pad).to(stepper.model.device))
        total_loss, steps = total_loss + value, steps + 1
        running = value if running is None else 0.9 * running + 0.1 * value
        bar.set_postfix(loss=f"{running:.3f}", bce=f"{parts['bce']:.3f}")
        if out_of_time():
            break
    return {"loss": running, "mean_loss": total_loss / max(1, steps)}


def fit(model: DramModel, tokenizer, train: PreparedData, valid: PreparedData | None, settings: TrainSettings,
        progress: bool = True, on_epoch: EpochCallback | None = None) -> dict:
    """Train with a linear warm-up/decay schedule; keep the weights with the best validation TAG-F1.

    TAG-F1, not the value F1 the figures report, chooses the epoch: on WDC-PAVE choosing by value F1
    picked earlier epochs that scored 0.4-0.6 lower on test in 3 of 3 paired runs (BENCHMARKS.md).

    Under torchrun (training/distributed.py) the step runs in DistributedDataParallel, each rank on
    its shard of every global batch of `settings.batch_size`; rank 0 validates and decides when to
    stop, and only its model ends with the best weights (it is the one that saves).
    """
    seed_everything(settings.seed)
    epochs = planned_epochs(len(train), settings)
    total = max(1, math.ceil(len(train) / settings.batch_size) * epochs)
    stepper = _stepper(model, settings, total)
    progress = progress and distributed.is_main()
    pad = tokenizer.pad_token_id or 0
    started = time.monotonic()
    history, best = [], _BestEpoch()
    lengths = [len(t.input_ids) for t in train.texts]
    # A tagger can score 0 for several epochs before it tags anything (and a fluke above 0 on the
    # first one); early stopping waits for half the planned budget.
    earliest_stop = max(1, epochs // 2)
    patience = patience_epochs(epochs, settings)
    rng = random.Random(settings.seed)
    log.info("training for up to %d epochs (%d steps of %d listings)%s", epochs, total, settings.batch_size,
             f", stopping after {patience} epochs without a better validation TAG-F1"
             if valid is not None and patience else "")

    def out_of_time() -> bool:
        return bool(settings.max_minutes) and distributed.agree(time.monotonic() - started > settings.max_minutes * 60)

    if on_epoch:
        on_epoch(0, epochs)
    for epoch in range(epochs):
        model.train()
        batches = _epoch_batches(train, settings, epoch, stepper.ddp, rng, lengths)
        record = {"epoch": epoch + 1, **_train_epoch(stepper, train, batches, pad, f"epoch {epoch + 1}/{epochs}",
                                                      progress, out_of_time),
                  "minutes": (time.monotonic() - started) / 60}
        if valid is not None and len(valid) and distributed.is_main():
            summary = evaluate(model, tokenizer, valid)
            record.update(valid_tag_f1=summary["tag_f1"], valid_cls_f1=summary["cls_f1"],
                          valid_value_f1=summary["value"]["f1"])
            best.offer(model, summary["tag_f1"], epoch + 1)
        log.info("epoch %s", {k: round(v, 4) if isinstance(v, float) else v for k, v in record.items()})
        history.append(record)
        if on_epoch:
            on_epoch(epoch + 1, epochs)
        if _stop_after(epoch + 1, best, patience, earliest_stop, settings, started):
            break
    if best.state is not None:
        model.load_state_dict(best.state)
    model.eval()
    return {"history": history, "train_minutes": (time.monotonic() - started) / 60, "best_valid_tag_f1": best.tag_f1,
            "best_epoch": best.epoch, "planned_epochs": epochs}


def _stop_after(done: int, best: _BestEpoch, patience: int, earliest_stop: int, settings: TrainSettings,
                started: float) -> bool:
    """Whether training stops after `done` epochs (every rank agrees): the time budget is spent, or
    `patience` epochs past the earliest stop brought no better validation TAG-F1."""
    if distributed.agree(bool(settings.max_minutes) and time.monotonic() - started > (settings.max_minutes or 0) * 60):
        log.info("stopping: time budget of %.1f minutes reached", settings.max_minutes)
        return True
    if distributed.agree(best.state is not None and bool(patience) and done >= earliest_stop
                         and done - best.epoch >= patience):
        log.info("stopping: no better validation TAG-F1 for %d epochs (best %.4f at epoch %d)",
                 patience, best.tag_f1, best.epoch)
        return True
    return False


# One listing's extracted spans and attribute scores.
ListingPrediction = tuple[list[Span], dict[str, float]]

# Windows per model call when predicting (`training.predict --batch-size` and every caller below).
PREDICTION_BATCH_SIZE = 64


def listing_batches(data: PreparedData, batch_size: int) -> list[list[int]]:
    """Row indices in batches of at most `batch_size` rows that hold whole listings (all of a listing's
    windows, so `decode_listings` can merge them; a listing of more windows is a batch of its own)."""
    batches: list[list[int]] = []
    current: list[int] = []
    row = 0
    for _, windows in groupby(data.listing_of):  # a listing's rows are consecutive
        n = sum(1 for _ in windows)
        if current and len(current) + n > batch_size:
            batches.append(current)
            current = []
        current += range(row, row + n)
        row += n
    return batches + ([current] if current else [])


def encoded_batches(model: DramModel, tokenizer, data: PreparedData, batch_size: int = PREDICTION_BATCH_SIZE, progress: bool = False,
                    desc: str = "predict") -> Iterator[tuple[list[int], EncoderOutput]]:
    """The encoders' outputs batch by batch (whole listings, `listing_batches`), with each batch's row indices."""
    model.eval()
    pad = tokenizer.pad_token_id or 0
    for index in tqdm(listing_batches(data, batch_size), desc=desc, unit="batch", disable=not progress):
        with torch.no_grad():
            encoded = model.encode(make_batch(data, index, pad, with_gold=False).to(model.device))
        yield index, encoded


def decode_rows(model: DramModel, data: PreparedData, index: list[int], encoded: EncoderOutput,
                tau_r: float | None = None) -> list[ListingPrediction]:
    """Spans and attribute scores of each listing of one encoded batch, as the app decodes them."""
    windows = [[data.texts[i] for i in rows] for _, rows in groupby(index, key=data.listing_of.__getitem__)]
    return [(d.spans, d.scores) for d in decode_listings(model, windows, encoded, tau_r)]


def predict(model: DramModel, tokenizer, data: PreparedData, tau_r: float | None = None, batch_size: int = PREDICTION_BATCH_SIZE,
            progress: bool = False) -> list[ListingPrediction]:
    """One prediction per listing of `data`, in order; `batch_size` rows (text windows) per model call."""
    return [prediction for index, encoded in encoded_batches(model, tokenizer, data, batch_size, progress)
            for prediction in decode_rows(model, data, index, encoded, tau_r)]


def score(model: DramModel, data: PreparedData, predictions, tau_r: float | None = None,
          subset: list[int] | None = None) -> dict:
    tau = model.config.tau_r if tau_r is None else tau_r
    known = set(model.config.attributes)
    scorer, slots = ExtractionScorer(), SlotScorer()
    for i in subset if subset is not None else range(len(data.listings)):
        spans, scores = predictions[i]
        gold = {(s.start, s.end, s.attribute) for s in data.listings[i].spans if s.attribute in known}
        scorer.add(gold, {(s.start, s.end, s.attribute) for s in spans}, {a for a, v in scores.items() if v > tau})
        slots.add(data.listings[i].target_values(), best_answers(spans))
    return {**scorer.summary(), "value": slots.summary()}


def evaluate(model: DramModel, tokenizer, data: PreparedData, tau_r: float | None = None, progress: bool = False) -> dict:
    return score(model, data, predict(model, tokenizer, data, tau_r, progress=progress), tau_r)


def sweep(model: DramModel, tokenizer, data: PreparedData, taus: list[float], batch_size: int = PREDICTION_BATCH_SIZE,
          progress: bool = False) -> dict[float, dict]:
    """`score` at each tau_R; the encoders run once, ARM and the CRF once per tau_R."""
    predictions: dict[float, list[ListingPrediction]] = {tau: [] for tau in taus}
    for index, encoded in encoded_batches(model, tokenizer, data, batch_size, progress=progress, desc="sweep"):
        for tau in taus:
            predictions[tau] += decode_rows(model, data, index, encoded, tau)
    return {tau: score(model, data, predictions[tau], tau) for tau in taus}


TAU_GRID = TrainSettings.tau_grid  # the calibration's grid, under the name `training.sweep_tau` reads


def best_tau(tag_f1: dict[float, float], default: float = DramConfig.tau_r,
             margin: float = TrainSettings.tau_margin) -> float:
    """The tau_R with the best validation TAG-F1 if it beats `default` by more than `margin`, else
    `default`; ties go to the one nearest `default`."""
    best = max(tag_f1, key=lambda tau: (round(tag_f1[tau], 6), -abs(tau - default)))
    if default in tag_f1 and tag_f1[best] - tag_f1[default] <= margin:
        return default
    return best


@dataclass
class TauCalibration:
    """The tau_R `calibrate_tau` chose, the validation figures there, and TAG-F1 across the grid."""

    chosen: float
    valid: dict  # `evaluate`'s figures at `chosen`
    valid_tag_f1: dict[float, float]

    def summary(self) -> dict:
        """What the checkpoint's metrics keep: the chosen tau_R and the grid's TAG-F1."""
        return {"chosen": self.chosen, "valid_tag_f1": {f"{tau:.1f}": round(f1, 6) for tau, f1 in self.valid_tag_f1.items()}}


def calibrate_tau(model: DramModel, tokenizer, valid: PreparedData, settings: TrainSettings) -> TauCalibration:
    """The grid value with the best validation TAG-F1 for ARM's tau_R (`best_tau` against the model's
    own, TAG-F1 as for the epoch); the model is left as it is: the caller gives it the chosen value.
    With many rare attributes the existence classifier is unsure of them: on WDC-PAVE (51 attributes)
    three ARM models moved to 0.3 and scored 0.8-3.1 higher on test; on Myntra (5 attributes) 0.5
    stays (BENCHMARKS.md, tau_R chosen on validation). The validation figures at the chosen tau_R are
    `evaluate`'s, without running the encoders again."""
    results = sweep(model, tokenizer, valid, list(settings.tau_grid))
    tag_f1 = {tau: r["tag_f1"] for tau, r in results.items()}
    before = model.config.tau_r
    chosen = best_tau(tag_f1, before, settings.tau_margin)
    log.info("tau_R chosen on the validation split: %.1f (TAG-F1 %.4f; %.4f at %.1f)", chosen, tag_f1[chosen],
             tag_f1.get(before, float("nan")), before)
    return TauCalibration(chosen, results[chosen], tag_f1)
