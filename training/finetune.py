"""Fine-tune a checkpoint on the annotators' corrections: `python -m training.finetune --from CKPT --db URL --out DIR`
(or `torchrun --nproc-per-node N -m training.finetune ...`: DistributedDataParallel, see training/distributed.py).

Continues from the checkpoint's weights on the store's corrections mixed with a seeded replay sample
of the original training data, so the model learns the fixes without forgetting the rest; each
correction counts up to 4 times an epoch against once for a replayed listing
(`correction_weight_for`). A seeded share of the corrections is held out: the old and the new model
are scored on it and on a held-out data file (the replay test), side by side. The new checkpoint is
written atomically and only then registered in the store, so a crash at any point leaves the
current model and the store's active version as they were.

Attributes the checkpoint does not know (an annotator added them to the store's attribute set and
marked their values) grow the model: they get their own outputs and parameters
(`DramModel.add_attributes`) while the old attributes keep theirs, and the value lookup learns the
corrections' values. The replayed listings teach "no value" for a new attribute: fine for a new
category's attributes; an attribute the old data has unlabelled values of needs those corrected too.

Corrections are checked before they teach (review/suspicion.py): a corrected span whose attribute
contradicts what the checkpoint and its training data strongly agree on ('Black' is colour in 643
training listings and the model says colour at 0.99; the correction says brand) is flagged, and the
flagged spans are listed in the log before training.

Promotion gate: the new version becomes the active one only if its TAG-F1 on the held-out
corrections is not lower than the old model's, its replay-test TAG-F1 is at most 0.3 points
lower, and it did not learn the flagged contradictions: both models read the flagged listings, and
if at least 3 values there moved from the attribute the model and the data agreed on to the one a
flagged correction says ('27 values moved colour -> brand'), the version is refused. Held-out
corrections that carry the same mistake cannot catch it (they reward it), so the gate counts what
moved instead of trusting the labels. Otherwise it is registered as not promoted, saying which
figure failed. `--promote` (or `--force`) activates it anyway; `--no-activate` never activates.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from dram.checkpoint import add_attributes, load_checkpoint, read_metrics, save_checkpoint
from dram.data.listings import Listing
from dram.data.spans import Span
from dram.errors import DramInputError
from dram.inference import Extractor
from dram.nn.model import DramModel
from dram.nn.precision import RunSettings
from dram.nn.value_lookup import ValueLookup, cross_fitted
from dram.paths import BUNDLE
from review.suspicion import Suspicion, SuspicionSettings, check_corrections, suspicion_table
from review.training_data import corrections_as_listings, training_id
from store import ModelVersionInfo, Store, open_store
from store.db import default_url, sqlite_file
from training import distributed
from training.common import attribute_set, check_attributes, load_data, run_cli, setup_logging
from training.familiarity import attach_reference
from training.loop import PreparedData, TrainSettings, evaluate, fit, predict, prepare, refresh_prior
from training.moved_values import attribute_table, moved_summary, moved_values, values_per_attribute
from training.options import JobSettings, add_options, settings_from
from training.train import add_training_arguments, train_provenance, train_settings_from

log = logging.getLogger("training.finetune")
REPORTED = ("tag_f1", "precision", "recall", "cls_f1")
MAX_REPLAY_DROP = 0.003  # TAG-F1 (a fraction): 0.3 points
# Values on the flagged listings that moved the way a flagged correction asks: one or two can be a
# single listing's doubt (a second look settles it); three make a pattern the new model learned.
MIN_MOVED_AGAINST_FLAGS = 3
# Each correction is seen EPOCHS x weight times, a replayed listing EPOCHS times. Seen twice, 100
# corrections of a new category taught it 44 value F1; 16 times, 90 (BENCHMARKS.md, "Fine-tuning budget").
EPOCHS = 4
MAX_CORRECTION_WEIGHT = 4
CORRECTION_VIEWS = 800  # per epoch: past this many corrections, each is seen once an epoch
MIN_THRESHOLD_LISTINGS = 10  # fewer listings cannot place a 99% quantile
THRESHOLD_SAMPLE = 400  # listings of the original training data, not replayed, the threshold is also set on


def correction_weight_for(corrections: int) -> int:
    """A few dozen corrections are weighted up against the replay; a few thousand are plenty as they are."""
    return max(1, min(MAX_CORRECTION_WEIGHT, math.ceil(CORRECTION_VIEWS / max(1, corrections))))


class FinetuneError(DramInputError):
    """A fine-tuning run that cannot start as asked; nothing was written."""


@dataclass
class CorrectionData:
    """The store's corrections split for training/held-out, and the attributes the model grows by."""

    train: list[Listing]
    heldout: list[Listing]
    new_attributes: list[str] = field(default_factory=list)  # in training corrections, not in the checkpoint
    dropped_spans: dict[str, int] = field(default_factory=dict)  # held-out spans of attributes nothing trains


@dataclass
class FinetuneResult:
    checkpoint: Path
    version_id: int
    parent_id: int
    metrics: dict
    active: bool  # the new version is the store's active one now


def promotion_failures(old: dict, new: dict, max_replay_drop: float = MAX_REPLAY_DROP) -> list[str]:
    """Why the new model must not replace the old one, in words (empty: it may).

    `old`/`new`: figures per held-out set ("corrections", "heldout") as `evaluate` returns them.
    A set that was not measured cannot vouch for the new model, so its absence is a failure too.
    """
    failures = []
    if "corrections" not in new:
        failures.append("no held-out corrections to compare on (fewer than 2 corrections, or "
                        "--heldout-corrections 0)")
    elif new["corrections"]["tag_f1"] < old["corrections"]["tag_f1"]:
        failures.append(f"TAG-F1 on the held-out corrections fell from {old['corrections']['tag_f1']:.2%} to "
                        f"{new['corrections']['tag_f1']:.2%}; it may not be lower")
    if "heldout" not in new:
        failures.append("no replay test to compare on (no --heldout data)")
    elif new["heldout"]["tag_f1"] < old["heldout"]["tag_f1"] - max_replay_drop:
        drop = old["heldout"]["tag_f1"] - new["heldout"]["tag_f1"]
        failures.append(f"TAG-F1 on the replay test fell {drop * 100:.2f} points ({old['heldout']['tag_f1']:.2%} to "
                        f"{new['heldout']['tag_f1']:.2%}); at most {max_replay_drop * 100:.1f} is allowed")
    return failures


def flagged_failures(flags: list[Suspicion], moved: Counter[tuple[str, str]],
                     min_moved: int = MIN_MOVED_AGAINST_FLAGS) -> list[str]:
    """Why the new model must not replace the old one because it learned flagged corrections (empty: it may).

    `moved`: (old attribute, new attribute) -> values on the flagged listings (`moved_values`). A
    direction is refused when flagged corrections ask for it (the model and the data said the old
    attribute, the correction the new one) and at least `min_moved` values went that way.
    """
    asked = Counter((f.agreed_attribute, f.corrected_attribute) for f in flags)
    listings = len({f.listing_id for f in flags})
    return [f"{moved[direction]} values moved {direction[0]} -> {direction[1]} on the {listings} flagged listings, "
            f"as {n} flagged correction{'s' if n != 1 else ''} ask against the old model and the training data "
            f"(e.g. {_example(flags, direction)}); give them a second look in the Annotate tab, or --force"
            for direction, n in asked.most_common() if moved[direction] >= min_moved]


def _example(flags: list[Suspicion], direction: tuple[str, str]) -> str:
    words = Counter(f.text for f in flags if (f.agreed_attribute, f.corrected_attribute) == direction)
    return ", ".join(f"'{w}'" for w, _ in words.most_common(3))


def restrict_to(listings: list[Listing], attributes: list[str]) -> tuple[list[Listing], dict[str, int]]:
    """Drop spans of attributes the model has no output for; count them per attribute so they can be reported."""
    known = set(attributes)
    dropped: Counter[str] = Counter()
    kept = []
    for listing in listings:
        dropped.update(s.attribute for s in listing.spans if s.attribute not in known)
        kept.append(replace(listing, spans=[s for s in listing.spans if s.attribute in known]))
    return kept, dict(sorted(dropped.items()))


def split_corrections(listings: list[Listing], fraction: float, seed: int) -> tuple[list[Listing], list[Listing]]:
    """Seeded (train, held-out) split; at least one correction always stays for training."""
    if not 0 <= fraction < 1:
        raise FinetuneError(f"--heldout-corrections must be in [0, 1), got {fraction}.")
    order = list(listings)
    random.Random(seed).shuffle(order)
    n_heldout = min(len(order) - 1, round(fraction * len(order)))
    if fraction > 0 and len(order) >= 2:
        n_heldout = max(1, n_heldout)
    return order[n_heldout:], order[:n_heldout]


def replay_sample(replay: list[Listing], size: int, corrections: list[Listing], seed: int) -> list[Listing]:
    """A seeded sample of the original training data, leaving out listings that were corrected.

    A corrected listing must not come back with its old labels, and a held-out correction must
    not be trained on through the replay.
    """
    corrected = {l.text for l in corrections}
    pool = [l for l in replay if l.text not in corrected]
    return random.Random(seed).sample(pool, min(size, len(pool)))


def unreplayed(replay: list[Listing], used: list[Listing], size: int, seed: int) -> list[Listing]:
    """A seeded sample of the original training data this fine-tune neither replayed nor saw corrected:
    with the held-out corrections, the listings the familiarity threshold is set on (the checkpoint's
    validation split is not known here)."""
    seen = {l.text for l in used}
    pool = [l for l in replay if l.text not in seen]
    return random.Random(seed + 1).sample(pool, min(size, len(pool)))


def fetch_corrections(store: Store) -> list[Listing]:
    """The store's corrections as training listings (photos as the stored bytes), or `FinetuneError` when there
    are none."""
    listings = corrections_as_listings(store)
    if not listings:
        raise FinetuneError(
            f"The store {store.db.url} has no corrections to learn from (skipped listings do not count). "
            "Correct some listings in the app's Annotate tab (or import them from Label Studio) first; "
            "nothing was written.")
    return listings


def usable_corrections(listings: list[Listing], attributes: list[str], fraction: float, seed: int) -> CorrectionData:
    """Corrections split seeded; the attributes of the training share that the checkpoint lacks are new
    (most marked first). A held-out span of an attribute no training correction has cannot be learned
    nor fairly scored: it is dropped and reported."""
    train, heldout = split_corrections(listings, fraction, seed)
    new = [a for a in attribute_set(train) if a not in attributes]
    heldout, dropped = restrict_to(heldout, [*attributes, *new])
    log.info("corrections: %d (%d for training, %d held out)", len(listings), len(train), len(heldout))
    if new:
        log.info("the model grows by the attributes it has no output for: %s (checkpoint attributes: %s)",
                 ", ".join(new), ", ".join(attributes))
    if dropped:
        log.warning("only held-out corrections mark these attributes, so nothing learns them and their spans are "
                    "left out of the held-out figures: %s. Correct more listings with them.",
                    ", ".join(f"{a} ({n})" for a, n in dropped.items()))
    return CorrectionData(train, heldout, new, dropped)


def _parent_version(store: Store, source: Path) -> ModelVersionInfo:
    """The active version; with none, the source checkpoint's own version (registered inactive if new).

    Registering it inactive keeps the store's active version untouched should the run die before
    the new model is registered; an earlier crashed run's registration is reused, not duplicated.
    """
    active = store.active_model_version()
    if active is not None:
        if Path(active.checkpoint_path).resolve() != source.resolve():
            log.warning("the store's active version %s (%s) is not the checkpoint being fine-tuned (%s); "
                        "it is still recorded as the parent", active.name, active.checkpoint_path, source)
        return active
    version = store.version_for_checkpoint(source, read_metrics(source), activate=False)
    log.info("the source checkpoint %s is model version %d", source, version.id)
    return version


@dataclass
class FinetuneSettings:
    """What a fine-tune does with the corrections and with its result, besides the training loop's
    settings: each field is a command-line option (`training.options`), and the new checkpoint's
    config keeps them with the training settings."""

    heldout_corrections: float = field(default=0.2, metadata={"help": "share of corrections held out"})
    replay_size: int = field(default=400, metadata={"help": "replayed listings (0: corrections only)"})
    # None: `correction_weight_for` the number of training corrections.
    correction_weight: int | None = field(default=None, metadata={
        "help": "times each correction is seen per epoch, a replayed listing once",
        "default_help": f"{MAX_CORRECTION_WEIGHT}, less once the corrections fill {CORRECTION_VIEWS} listings"})
    activate: bool = field(default=True, metadata={
        "help": "activate the new version when the promotion gate passes it (--no-activate: register it, never "
                "activate it)"})
    promote: bool = field(default=False, metadata={
        "help": "activate the new version even if the promotion gate refuses it (worse held-out figures, or it "
                "learned flagged corrections)", "aliases": ("--force",)})

    def __post_init__(self) -> None:
        if self.correction_weight is not None and self.correction_weight < 1:
            raise FinetuneError(f"--correction-weight must be at least 1, got {self.correction_weight}.")


@dataclass
class FinetuneData:
    """What one fine-tune trains on and compares the old and the new model on, prepared for the model."""

    corrections: CorrectionData
    replayed: list[Listing]
    correction_weight: int
    train: PreparedData
    compared: dict[str, PreparedData]  # "heldout" (the replay test) and "corrections", where there are any
    flagged: PreparedData | None  # the listings of flagged corrections
    flagged_ids: set[str]
    lookup: ValueLookup | None  # the checkpoint's lookup plus the training corrections' values


def finetune(source: Path, store: Store, out: Path, replay: list[Listing], heldout: list[Listing],
             settings: TrainSettings, options: FinetuneSettings | None = None,
             device: str | None = None, progress: bool = True, precision: str = RunSettings.precision,
             suspicion: SuspicionSettings = SuspicionSettings()) -> FinetuneResult | None:
    """Fine-tune `source` on the store's corrections and register the result; see the module docstring.

    `options`: the held-out share, the replay, how often a correction counts and whether the new
    version may go live (`FinetuneSettings`; None: its defaults).
    `suspicion`: when a corrected span counts as contradicting the checkpoint and its training data.
    Under torchrun every rank trains its shard; only rank 0 returns a result (the others None).
    """
    started = time.monotonic()
    options = options or FinetuneSettings()
    source, out = Path(source), Path(out)
    if out.exists():
        raise FinetuneError(f"{out} already exists; give --out a new folder so no registered model is overwritten.")
    fetched = fetch_corrections(store)
    model, tokenizer, _ = load_checkpoint(source, device, precision)
    main = distributed.is_main()  # under torchrun rank 0 checks, evaluates, saves and registers; all ranks train
    flags = check_corrections(store, Extractor(model, tokenizer), suspicion) if main else []
    if main:
        log_flags(flags, len(fetched))
    data = finetune_data(model, tokenizer, fetched, flags, replay, heldout, settings, options)
    old, old_flagged = compare_figures(model, tokenizer, data, progress) if main else ({}, [])
    model.switch_on(data.corrections.new_attributes)
    result = fit(model, tokenizer, data.train, None, settings, progress=progress)
    if not main:
        return None
    if data.lookup is not None:
        model.value_lookup = data.lookup  # a new lookup; the checkpoint's is left as it was
        for prepared in [*data.compared.values(), *([data.flagged] if data.flagged is not None else [])]:
            refresh_prior(model, prepared)
    new, new_flagged = compare_figures(model, tokenizer, data, progress)
    attach_finetune_reference(model, tokenizer, data, replay, settings)
    parent = _parent_version(store, source)
    moved = moved_values(old_flagged, new_flagged)
    metrics = finetune_metrics(source, parent, data, result, old, new, started)
    metrics["suspicion"] = suspicion_metrics(suspicion, flags, data.flagged_ids, moved, old_flagged, new_flagged)
    log.info("per attribute, old vs new:\n%s", attribute_comparison(metrics))
    if flags:
        log.info("what moved on the %d flagged listings: %s", len(data.flagged_ids),
                 metrics["suspicion"]["moved_on_flagged"])
    failed = promotion_failures(old, new) + flagged_failures(flags, moved)
    metrics["promotion"] = {"promoted": not failed or options.promote, "forced": bool(failed) and options.promote,
                            "failed": failed, "max_replay_drop": MAX_REPLAY_DROP,
                            "min_moved_against_flags": MIN_MOVED_AGAINST_FLAGS}
    goes_live = options.activate and metrics["promotion"]["promoted"]
    # A new config for the new checkpoint: the loaded one is not written into.
    model.config = replace(model.config, train=train_provenance(
        settings, finetuned_from=str(source.resolve()), finetune=asdict(options)))
    save_checkpoint(model, tokenizer, out, metrics)
    log.info("saved %s", out)
    version_id = store.register_model_version(out.name, out.resolve(), metrics, parent_id=parent.id, activate=goes_live)
    log_registration(out, version_id, parent, goes_live, failed)
    return FinetuneResult(out, version_id, parent.id, metrics, goes_live)


def finetune_data(model: DramModel, tokenizer, fetched: list[Listing], flags: list[Suspicion], replay: list[Listing],
                  heldout: list[Listing], settings: TrainSettings, options: FinetuneSettings) -> FinetuneData:
    """The corrections split, the model grown by their new attributes (silent until switched on: the old
    model's figures are measured on the grown one), the replay sampled and every set prepared."""
    corrections = usable_corrections(fetched, list(model.config.attributes), options.heldout_corrections,
                                     settings.seed)
    add_attributes(model, tokenizer, corrections.new_attributes, seed=settings.seed)
    if heldout:
        check_attributes(model.config.attributes, heldout)
    weight = options.correction_weight or correction_weight_for(len(corrections.train))
    replayed = replay_sample(replay, options.replay_size, corrections.train + corrections.heldout, settings.seed)
    log.info("training on %d corrections (each %d times an epoch) + %d replayed listings; held out: %d corrections, "
             "%d listings", len(corrections.train), weight, len(replayed), len(corrections.heldout), len(heldout))
    cache = settings.cache_dir
    model.schema = model.schema.learned(corrections.train)  # a category keeps the attributes it is taught
    lookup, train_lookups = None, None
    if model.value_lookup is not None:
        # Each training correction reads a lookup without its own values, as in training from scratch.
        lookup = model.value_lookup.learned(corrections.train)
        train_lookups = (cross_fitted(corrections.train, seed=settings.seed, base=model.value_lookup) * weight
                         + [lookup] * len(replayed))
    train = prepare(model, tokenizer, corrections.train * weight + replayed, cache, lookups=train_lookups)
    compared = {"heldout": prepare(model, tokenizer, heldout, cache) if heldout else None,
                "corrections": prepare(model, tokenizer, corrections.heldout, cache) if corrections.heldout else None}
    flagged_ids = {training_id(f.listing_id, f.external_id) for f in flags}
    flagged = prepare(model, tokenizer, [l for l in fetched if l.id in flagged_ids], cache) if flags else None
    return FinetuneData(corrections, replayed, weight, train,
                        {name: data for name, data in compared.items() if data is not None and len(data)},
                        flagged, flagged_ids, lookup)


def compare_figures(model: DramModel, tokenizer, data: FinetuneData,
                    progress: bool) -> tuple[dict[str, dict], list[list[Span]]]:
    """The model's figures on each held-out set, and its spans on the flagged listings."""
    figures = {name: evaluate(model, tokenizer, prepared, progress=progress) for name, prepared in data.compared.items()}
    return figures, _spans(model, tokenizer, data.flagged)


def attach_finetune_reference(model: DramModel, tokenizer, data: FinetuneData, replay: list[Listing],
                              settings: TrainSettings) -> None:
    """The new checkpoint's familiarity reference: the listings it learned from, its threshold set on the
    held-out corrections and unreplayed training listings; none when those are too few."""
    cache = settings.cache_dir
    learned = data.corrections.train + data.replayed
    threshold_set = data.corrections.heldout + unreplayed(replay, learned + data.corrections.heldout,
                                                          THRESHOLD_SAMPLE, settings.seed)
    if len(threshold_set) >= MIN_THRESHOLD_LISTINGS:
        attach_reference(model, tokenizer, prepare(model, tokenizer, learned, cache),
                         prepare(model, tokenizer, threshold_set, cache), "the corrections and the replayed listings")
    else:
        model.familiarity = None  # the parent's reference is of another encoder
        log.warning("only %d listings to set the familiarity threshold on (at least %d needed): the new checkpoint "
                    "gives no unlike-listing warnings", len(threshold_set), MIN_THRESHOLD_LISTINGS)


def finetune_metrics(source: Path, parent: ModelVersionInfo, data: FinetuneData, result: dict, old: dict, new: dict,
                     started: float) -> dict:
    """The new checkpoint's metrics.json: what the fine-tune trained on, and the old and new figures."""
    corrections = data.corrections
    return {
        "finetune": {
            "source": str(source.resolve()), "parent_version": parent.id,
            "corrections": len(corrections.train) + len(corrections.heldout),
            "train_corrections": len(corrections.train), "heldout_corrections": len(corrections.heldout),
            "correction_weight": data.correction_weight, "replay": len(data.replayed),
            "heldout_listings": len(data.compared["heldout"]) if "heldout" in data.compared else 0,
            "new_attributes": corrections.new_attributes, "dropped_spans": corrections.dropped_spans,
            "history": result["history"],
            "train_minutes": result["train_minutes"], "minutes": (time.monotonic() - started) / 60,
        },
        "old": old,
        "new": new,
    }


def suspicion_metrics(suspicion: SuspicionSettings, flags: list[Suspicion], flagged_ids: set[str],
                      moved: Counter[tuple[str, str]], old_flagged: list[list[Span]],
                      new_flagged: list[list[Span]]) -> dict:
    """The flagged corrections and what moved on their listings (`moved`) between the old and the new model."""
    return {"settings": asdict(suspicion), "flagged": [asdict(f) for f in flags],
            "flagged_listings": len(flagged_ids), "moved_on_flagged": moved_summary(moved),
            "moved": {f"{a} -> {b}": n for (a, b), n in moved.most_common()},
            "values_on_flagged": {"old": dict(values_per_attribute(old_flagged)),
                                  "new": dict(values_per_attribute(new_flagged))}}


def log_registration(out: Path, version_id: int, parent: ModelVersionInfo, goes_live: bool, failed: list[str]) -> None:
    """Whether the new version went live, and if not, why and how to serve it anyway."""
    if goes_live:
        log.info("registered %s as model version %d (parent %d), now active%s", out, version_id, parent.id,
                 " (--promote: past the gate: " + "; ".join(failed) + ")" if failed else "")
    elif failed:
        log.warning("registered %s as model version %d but NOT promoted: %s. The active version is unchanged; "
                    "to serve this one anyway, pick it under Model version in the app's Annotate tab "
                    "(or fine-tune with --promote).", out, version_id, "; ".join(failed))
    else:
        log.info("registered %s as model version %d (parent %d), not activated (--no-activate)", out, version_id,
                 parent.id)


def attribute_comparison(metrics: dict) -> str:
    """Markdown table per attribute: replay-test TAG-F1 and the values given on the flagged listings, old vs new."""
    figures = {side: metrics[side].get("heldout", {}).get("per_attribute", {}) for side in ("old", "new")}
    values = metrics["suspicion"]["values_on_flagged"]
    return attribute_table(figures["old"], figures["new"], Counter(values["old"]), Counter(values["new"]))


def log_flags(flags: list[Suspicion], corrections: int) -> None:
    """The flagged spans as a table, before anything trains on them."""
    if not flags:
        log.info("checked %d corrections against the checkpoint and its training data: none contradicts them", corrections)
        return
    log.warning("%d corrected spans in %d of the %d corrections contradict what the checkpoint and its training data "
                "agree on; they train as they are, but the promotion gate refuses a model that learned them. "
                "Give them a second look in the Annotate tab:\n%s", len(flags), len({f.listing_id for f in flags}),
                corrections, suspicion_table(flags))


def _spans(model: DramModel, tokenizer, data: PreparedData | None) -> list[list[Span]]:
    """The model's spans on each listing of `data` (none: no listings)."""
    if data is None or not len(data):
        return []
    return [spans for spans, _ in predict(model, tokenizer, data)]


def existing_store_url(url: str | None) -> str:
    """The store URL, refusing a SQLite file that does not exist (opening it would create an empty store)."""
    url = url or default_url()
    file = sqlite_file(url)
    if file is not None and not file.exists():
        raise FinetuneError(f"There is no store at {file}; pass the --db URL the app saves corrections to.")
    return url


def comparison_table(metrics: dict) -> str:
    """Markdown table: old vs new on each held-out set."""
    rows = ["| data | metric | old | new | change |", "|---|---|---:|---:|---:|"]
    for name, old in metrics["old"].items():
        new = metrics["new"][name]
        for key in REPORTED:
            if key in old:
                rows.append(f"| {name} | {key} | {old[key]:.4f} | {new[key]:.4f} | {new[key] - old[key]:+.4f} |")
    return "\n".join(rows)


def finetune_parser() -> argparse.ArgumentParser:
    """The command line: what to fine-tune and where to, then `FinetuneSettings`, `TrainSettings` (`EPOCHS`
    epochs unless told) and `JobSettings` as options, each with its dataclass default."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="source", required=True, type=Path, help="checkpoint to continue from")
    parser.add_argument("--db", help="store URL (default: DRAM_DB_URL or ./dram-store.sqlite)")
    parser.add_argument("--out", required=True, type=Path, help="new checkpoint folder (must not exist)")
    parser.add_argument("--replay", type=Path, default=BUNDLE / "train.jsonl", help="original training data")
    parser.add_argument("--heldout", type=Path, default=BUNDLE / "test.jsonl", help="held-out data file")
    add_options(parser.add_argument_group("fine-tune"), FinetuneSettings)
    add_training_arguments(parser)
    parser.set_defaults(epochs=EPOCHS)
    return parser


def main() -> None:
    args = finetune_parser().parse_args()
    setup_logging()
    job, options = settings_from(JobSettings, args), settings_from(FinetuneSettings, args)
    job.apply()
    replay = load_data(args.replay, "replay") if options.replay_size > 0 else []
    heldout = load_data(args.heldout, "heldout")
    settings = train_settings_from(args)
    device = distributed.setup(job.device)
    try:
        with open_store(existing_store_url(args.db)) as store:
            result = finetune(args.source, store, args.out, replay, heldout, settings, options,
                              device=device, precision=job.precision)
    finally:
        distributed.teardown()
    if result is None:
        return  # not rank 0
    print(comparison_table(result.metrics))
    print(attribute_comparison(result.metrics))
    promotion, suspicion = result.metrics["promotion"], result.metrics["suspicion"]
    print(json.dumps({"checkpoint": str(result.checkpoint), "model_version": result.version_id,
                      "parent_version": result.parent_id, "active": result.active,
                      "promoted": promotion["promoted"], "failed": promotion["failed"],
                      "flagged": len(suspicion["flagged"]), "moved_on_flagged": suspicion["moved_on_flagged"],
                      "minutes": round(result.metrics["finetune"]["minutes"], 2)}))


if __name__ == "__main__":
    run_cli(main)
