"""Decode-time recall repairs, tried on saved models without retraining (issue 22, prototype).

    python -m benchmarks.recall_repairs --checkpoint /work/runs/titles-large-s13 \
        --train data/wdc-titles/train_large.jsonl [--data labelled.jsonl] --cache /work/runs/recall-cache/t13.pt \
        [--repairs '{"extend": true}' [--breakdown] | --grid] [--json out.jsonl] [--threads 1]

The encoders run once per listing; what the decoder saw (its emissions, the CRF's parameters, the
classifier's attribute scores) is kept in --cache, and each repair re-decodes from it, so a grid of
repairs costs seconds. Without --data the listings are the run's own validation split of --train
(`training.common.split_validation` with the checkpoint's seed): defaults are chosen there and the
test split is read only for final figures. With every repair off it decodes exactly as the model does.

The repairs, each switched by `Repairs` (BENCHMARKS.md, "Decode-time repairs of the saved models",
has each one's figures: `extend` won on every validation set, the others did not):

- `extend`: a span that is no training value of its attribute but lies inside one written in the
  text (the checkpoint's value lookup) grows to the longest such value ("Cube" -> "Cube Ice Machine").
- `o_bias`: the O tag's emission lowered before Viterbi (and the marginals), so the CRF prefers a
  value to nothing: more and longer spans, traded against precision.
- `fill`: an attribute the decoder left empty in a listing, but which the classifier scores above
  `fill_tau`, gets the candidate span (any extracted span, any training value of the attribute
  written in the text, the attribute's own most likely B-I run) whose CRF probability of being that
  attribute (B on its first word, I after, not I after its end, from the marginals) is highest, if
  above `fill_p` (`fill_known_only`: the longest training value of it in the text, whatever the
  marginals say). A second "Width" in "8-1/2" x 11"" can become the empty Height this way.
- `prefer_known`, `merge`, `trim`, `extend_p`, `gate`: see their functions and `Repairs`.
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch
from torchcrf import CRF

from dram.data.listings import Listing
from dram.data.spans import Span, char_spans
from dram.data.tagging import Word, bio_ranges
from dram.metrics import ExtractionScorer, SlotScorer, best_answers
from dram.nn.crf_decoding import crf_marginals
from dram.nn.model import DecodedSpan
from dram.nn.value_lookup import ValueLookup
from benchmarks.recall_breakdown import Evidence, breakdown_table, cause_of, missed_slots
from training.common import add_checkpoint_arguments, load_data, open_checkpoint, run_cli, setup_logging, split_validation
from training.loop import encoded_batches, prepare

log = logging.getLogger("benchmarks.recall_repairs")


@dataclass
class Row:
    """One text window as the decoder saw it: the joint CRF's emissions (W, K), or under ARM one
    (W, 3) emission row per attribute (every attribute, selected or not, so a repair may look at
    the unselected ones)."""

    listing: int
    text: str
    words: list[Word]
    owned: tuple[int, int] | None
    emissions: torch.Tensor  # joint: (W, 1 + 2N); ARM: (N, W, 3)
    scores: torch.Tensor  # (N,) the classifier's attribute scores


@dataclass
class Dump:
    """What re-decoding needs, saved once per (checkpoint, data)."""

    attributes: list[str]
    use_arm: bool
    tau_r: float
    crf: dict[str, torch.Tensor]
    rows: list[Row]
    listings: list[Listing]
    lookup: dict[tuple[str, ...], Counter]  # training value words -> listings per attribute
    seed: int = 13  # the checkpoint's training seed: which listings its validation split held out
    longest: int = field(init=False, default=0)  # words in the longest training value
    values: ValueLookup = field(init=False)

    def __post_init__(self) -> None:
        self.longest = max((len(key) for key in self.lookup), default=0)
        self.values = ValueLookup(self.lookup)


@torch.no_grad()
def dump_decoder_inputs(model, tokenizer, listings: list[Listing], cache_dir: Path | None, use_images: bool = True) -> Dump:
    """Run the encoders over `listings` once and keep every row's emissions and attribute scores."""
    data = prepare(model, tokenizer, listings, cache_dir, use_images=use_images)
    decoder = model.arm.decoder if model.config.use_arm else model.joint_decoder
    n = len(model.config.attributes)
    rows = []
    for index, encoded in encoded_batches(model, tokenizer, data, progress=True):
        scores = torch.sigmoid(encoded.attribute_logits)
        if model.config.use_arm:
            every = torch.tensor([(b, a) for b in range(len(index)) for a in range(n)])
            features = model.arm.conditioned(encoded.word_features, every, encoded.name_features, encoded.prior)
            emissions = decoder.emissions(features, encoded.word_mask[every[:, 0]]).view(len(index), n, -1, 3)
        else:
            emissions = decoder.emissions(model._joint_features(encoded), encoded.word_mask)
        for row, i in enumerate(index):
            window = data.texts[i]
            w = len(window.words)
            em = emissions[row, :, :w] if model.config.use_arm else emissions[row, :w]
            rows.append(Row(data.listing_of[i], window.text, window.words, window.owned, em.float().clone(),
                            scores[row].float().clone()))
    lookup = model.value_lookup.counts if model.value_lookup is not None else {}
    return Dump(list(model.config.attributes), model.config.use_arm, model.config.tau_r,
                {k: v.detach().clone() for k, v in decoder.crf.state_dict().items()}, rows, data.listings, lookup,
                int(model.config.train.get("seed", 13)))


@dataclass(frozen=True)
class Repairs:
    o_bias: float = 0.0
    extend: bool = False
    extend_share: float = 0.5  # a training value counts for an attribute with at least this share of its labels
    fill: bool = False
    fill_tau: float = 0.5
    fill_p: float = 0.2
    fill_known_only: bool = False  # fill from training values written in the text only, whatever the marginals say
    merge: bool = False
    gate: float = 0.0  # drop the spans of an attribute the classifier scores below this (0: off)
    extend_p: float = 0.0  # grow a span over the next word while that word's P(I-a) is above this (0: off)
    trim: bool = False
    prefer_known: float = 0.0  # added to the confidence of a span whose text is a training value of its attribute


@dataclass
class Decoded:
    """One row decoded: word-level spans and each word's marginals per attribute."""

    spans: list[DecodedSpan]
    begin: torch.Tensor  # (W, N) P(B-a)
    inside: torch.Tensor  # (W, N) P(I-a)


def _crf(state: dict[str, torch.Tensor]) -> CRF:
    crf = CRF(state["transitions"].shape[0], batch_first=True)
    crf.load_state_dict(state)
    return crf


def _viterbi(crf: CRF, emissions: torch.Tensor, o_bias: float) -> tuple[list[int], torch.Tensor]:
    """(path, marginals) for one sequence (W, K) with the O tag (index 0) lowered by `o_bias`."""
    em = emissions.clone()
    em[:, 0] -= o_bias
    mask = torch.ones(1, em.shape[0], dtype=torch.bool)
    return crf.decode(em[None], mask=mask)[0], crf_marginals(crf, em[None], mask)[0]


def decode_row(dump: Dump, crf: CRF, row: Row, repairs: Repairs) -> Decoded:
    """The decoder's spans for one row, as `DramModel.decode` makes them, with the O bias applied."""
    n = len(dump.attributes)
    w = len(row.words)
    if not dump.use_arm:
        path, marg = _viterbi(crf, row.emissions, repairs.o_bias)
        tags = ["O"] + [f"{p}-{a}" for a in dump.attributes for p in ("B", "I")]
        spans = _path_spans([tags[t] for t in path], marg, path)
        return Decoded(spans, marg[:, 1::2], marg[:, 2::2])
    begin, inside, spans = torch.zeros(w, n), torch.zeros(w, n), []
    for a, name in enumerate(dump.attributes):
        path, marg = _viterbi(crf, row.emissions[a], repairs.o_bias)
        begin[:, a], inside[:, a] = marg[:, 1], marg[:, 2]
        if row.scores[a] > dump.tau_r:
            spans += _path_spans([("O", f"B-{name}", f"I-{name}")[t] for t in path], marg, path)
    return Decoded(spans, begin, inside)


def _path_spans(tags: list[str], marginals: torch.Tensor, path: list[int]) -> list[DecodedSpan]:
    return [DecodedSpan(0, attribute, first, end, float(marginals[range(first, end), path[first:end]].mean()))
            for first, end, attribute in bio_ranges(tags)]


def span_probability(decoded: Decoded, a: int, first: int, end: int) -> float:
    """The marginals' reading of "words first..end-1 are one value of attribute a": B on the first
    word, I on the others, not I on the next (a product, as if the words were independent)."""
    p = float(decoded.begin[first, a]) * float(decoded.inside[first + 1:end, a].prod())
    if end < decoded.inside.shape[0]:
        p *= 1.0 - float(decoded.inside[end, a])
    return p


def known_values(dump: Dump, words: list[Word], attribute: str, share: float,
                 holding: tuple[int, int] | None = None) -> list[tuple[int, int]]:
    """Word ranges (first, end) of training values of `attribute` written in `words`, every
    occurrence, overlaps included (the lookup's own matcher keeps the longest only); with `holding`,
    only those that hold that word range (a few look-ups instead of a scan of a long description)."""
    low, high = (0, len(words)) if holding is None else (max(0, holding[1] - dump.longest),
                                                         min(len(words), holding[0] + dump.longest))
    keys = [w.text.lower() for w in words[low:high]]
    found = []
    for first in range(low, high if holding is None else holding[0] + 1):
        smallest = 1 if holding is None else holding[1] - first
        for size in range(smallest, min(dump.longest, high - first) + 1):
            counts = dump.lookup.get(tuple(keys[first - low:first - low + size]))
            if counts and counts[attribute] / sum(counts.values()) >= share:
                found.append((first, first + size))
    return found


def extend_to_known(dump: Dump, row: Row, decoded: Decoded, repairs: Repairs) -> list[DecodedSpan]:
    """Each span that is no training value of its attribute but lies inside one or more grows to the
    longest of them (the first, at equal length): what `dram.decoding` does, with the share to screen."""
    out = []
    for span in decoded.spans:
        around = dump.values.longest_holding(row.words, span.first_word, span.end_word, span.attribute,
                                             repairs.extend_share)
        out.append(span if around is None else replace(span, first_word=around[0], end_word=around[1]))
    return out


def extend_by_marginals(decoded: Decoded, spans: list[DecodedSpan], attributes: list[str], q: float) -> list[DecodedSpan]:
    """Each span grows to the right while the next word's P(I-attribute) is above `q`, up to the
    next span's first word."""
    starts = sorted(s.first_word for s in spans)
    out = []
    for span in spans:
        a = attributes.index(span.attribute)
        stop = min([f for f in starts if f >= span.end_word], default=decoded.inside.shape[0])
        end = span.end_word
        while end < stop and float(decoded.inside[end, a]) > q:
            end += 1
        out.append(replace(span, end_word=end))
    return out


def merge_adjacent(row: Row, spans: list[DecodedSpan]) -> list[DecodedSpan]:
    """Spans of one attribute with nothing but spaces between them become one (the CRF's "B B I"
    for "Waste Toner Box"); the merged confidence is the mean of the parts'."""
    out: list[DecodedSpan] = []
    for span in sorted(spans, key=lambda s: s.first_word):
        last = out[-1] if out else None
        if (last is not None and last.attribute == span.attribute and last.end_word == span.first_word
                and not row.text[row.words[last.end_word - 1].end:row.words[span.first_word].start].strip()):
            out[-1] = replace(last, end_word=span.end_word, confidence=(last.confidence + span.confidence) / 2)
        else:
            out.append(span)
    return out


def trim_to_known(dump: Dump, row: Row, spans: list[DecodedSpan], repairs: Repairs) -> list[DecodedSpan]:
    """A span that is not a training value of its attribute but holds one shrinks to the longest
    it holds ("12/Pack Pack" -> "12/Pack")."""
    out = []
    for span in spans:
        known = known_values(dump, row.words, span.attribute, repairs.extend_share)
        inside = [(f, e) for f, e in known if span.first_word <= f and e <= span.end_word]
        if inside and (span.first_word, span.end_word) not in known:
            f, e = max(inside, key=lambda r: (r[1] - r[0], -r[0]))
            span = replace(span, first_word=f, end_word=e)
        out.append(span)
    return out


def prefer_known(dump: Dump, row: Row, spans: list[DecodedSpan], repairs: Repairs) -> list[DecodedSpan]:
    """Known training values of their attribute get `prefer_known` added to their confidence, so the
    slot is answered with one when the decoder found one."""
    out = []
    for span in spans:
        known = known_values(dump, row.words, span.attribute, repairs.extend_share)
        bonus = repairs.prefer_known if (span.first_word, span.end_word) in known else 0.0
        out.append(replace(span, confidence=span.confidence + bonus))
    return out


def fill_empty(dump: Dump, row: Row, decoded: Decoded, spans: list[DecodedSpan], empty: set[str],
               repairs: Repairs) -> list[DecodedSpan]:
    """For each attribute empty in the whole listing but scored above `fill_tau`, the candidate span
    most likely to be that attribute by the marginals, if likely enough."""
    added = []
    for a, name in enumerate(dump.attributes):
        if name not in empty or float(row.scores[a]) <= repairs.fill_tau:
            continue
        known = known_values(dump, row.words, name, repairs.extend_share)
        if repairs.fill_known_only:
            if known:
                f, e = max(known, key=lambda r: (r[1] - r[0], -r[0]))
                added.append(DecodedSpan(0, name, f, e, float(row.scores[a])))
            continue
        candidates = {(s.first_word, s.end_word) for s in spans} | set(known) | {_own_run(decoded, a)}
        scored = [(span_probability(decoded, a, f, e), f, e) for f, e in candidates if f < e]
        if scored:
            p, f, e = max(scored)
            if p > repairs.fill_p:
                added.append(DecodedSpan(0, name, f, e, p))
    return added


def _own_run(decoded: Decoded, a: int) -> tuple[int, int]:
    """The word with the highest P(B-a) and the words after it while P(I-a) > 0.5."""
    first = int(decoded.begin[:, a].argmax())
    end = first + 1
    while end < decoded.inside.shape[0] and float(decoded.inside[end, a]) > 0.5:
        end += 1
    return first, end


@torch.no_grad()
def repaired_spans(dump: Dump, repairs: Repairs) -> list[list[Span]]:
    """Every listing's character spans after the repairs (each window reports the spans starting in
    its own part, as `training.loop.decode_batch` does)."""
    crf = _crf(dump.crf)
    decoded = [decode_row(dump, crf, row, repairs) for row in dump.rows]
    word_spans = [d.spans for d in decoded]
    for k, row in enumerate(dump.rows):
        if repairs.merge:
            word_spans[k] = merge_adjacent(row, word_spans[k])
        if repairs.extend_p:
            word_spans[k] = extend_by_marginals(decoded[k], word_spans[k], dump.attributes, repairs.extend_p)
        if repairs.extend:
            word_spans[k] = extend_to_known(dump, row, replace(decoded[k], spans=word_spans[k]), repairs)
        if repairs.trim:
            word_spans[k] = trim_to_known(dump, row, word_spans[k], repairs)
        if repairs.prefer_known:
            word_spans[k] = prefer_known(dump, row, word_spans[k], repairs)
    if repairs.fill:
        present: dict[int, set[str]] = {}
        for row, spans in zip(dump.rows, word_spans):
            present.setdefault(row.listing, set()).update(s.attribute for s in spans)
        for k, (row, d) in enumerate(zip(dump.rows, decoded)):
            empty = set(dump.attributes) - present[row.listing]
            word_spans[k] = word_spans[k] + fill_empty(dump, row, d, word_spans[k], empty, repairs)
    if repairs.gate:
        word_spans = [[s for s in spans if float(row.scores[dump.attributes.index(s.attribute)]) >= repairs.gate]
                      for row, spans in zip(dump.rows, word_spans)]
    out: list[list[Span]] = [[] for _ in dump.listings]
    for row, spans in zip(dump.rows, word_spans):
        mine = [s for s in spans if row.owned is None or row.owned[0] <= s.first_word < row.owned[1]]
        out[row.listing] += char_spans(row.text, row.words, mine)
    return out


def score_spans(dump: Dump, predicted: list[list[Span]]) -> dict:
    """Value F1 (slot rule), TAG-F1 and CLS-F1, as `training.loop.score` counts them."""
    known = set(dump.attributes)
    scores: dict[int, torch.Tensor] = {}
    for row in dump.rows:
        scores[row.listing] = torch.maximum(scores[row.listing], row.scores) if row.listing in scores else row.scores
    scorer, slots = ExtractionScorer(), SlotScorer()
    for i, listing in enumerate(dump.listings):
        gold = {(s.start, s.end, s.attribute) for s in listing.spans if s.attribute in known}
        selected = {a for a, v in zip(dump.attributes, scores[i].tolist()) if v > dump.tau_r}
        scorer.add(gold, {(s.start, s.end, s.attribute) for s in predicted[i]}, selected)
        slots.add(listing.target_values(), best_answers(predicted[i]))
    summary = scorer.summary()
    return {"value": {k: v for k, v in slots.summary().items() if k != "per_attribute"},
            "tag_f1": summary["tag_f1"], "cls_f1": summary["cls_f1"]}


def grid() -> list[Repairs]:
    """The settings BENCHMARKS.md reports: the O bias with and without the extension, each with the
    fill at every (fill_tau, fill_p), then the other repairs on their own or beside the extension."""
    specs: list[dict] = [{}]
    for o_bias, extend in itertools.product((0.0, 0.25, 0.5, 1.0), (False, True)):
        specs.append({"o_bias": o_bias, "extend": extend})
        specs += [{"o_bias": o_bias, "extend": extend, "fill": True, "fill_tau": tau, "fill_p": p}
                  for tau, p in itertools.product((0.3, 0.5, 0.7, 0.9), (0.1, 0.2, 0.3, 0.4))]
    specs += [{"extend": True, "prefer_known": bonus} for bonus in (0.1, 0.2, 0.5)]
    specs += [{"merge": True}, {"trim": True}, {"extend": True, "trim": True}, {"extend_p": 0.35},
              {"extend": True, "extend_p": 0.35}]
    specs += [{"extend": True, "gate": gate} for gate in (0.02, 0.05, 0.1, 0.2)]
    specs += [{"extend": True, "fill": True, "fill_known_only": True, "fill_tau": tau} for tau in (0.5, 0.8, 0.95)]
    return [Repairs(**spec) for spec in specs]


def print_breakdown(dump: Dump, predicted: list[list[Span]], training: list[Listing]) -> None:
    """`benchmarks.recall_breakdown`'s causes of the slots still missed after the repairs."""
    evidence = Evidence.gather(dump.attributes, not dump.use_arm, training, predicted)
    misses = [m for listing, spans in zip(dump.listings, predicted) for m in missed_slots(listing, spans)]
    n_valued = sum(1 for listing in dump.listings for gold in listing.target_values().values() if gold)
    print(breakdown_table([cause_of(m, evidence) for m in misses], n_valued))


def save_dump(dump: Dump, path: Path) -> None:
    """Plain containers only, so the file reads back whichever module name wrote it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {f.name: getattr(dump, f.name) for f in fields(Dump) if f.init}
    torch.save({**state, "rows": [vars(row) for row in dump.rows]}, path)


def load_dump(path: Path) -> Dump:
    state = torch.load(path, weights_only=False)
    return Dump(**{**state, "rows": [Row(**row) for row in state["rows"]]})


def load_or_dump(args: argparse.Namespace) -> Dump:
    if args.cache and args.cache.exists():
        return load_dump(args.cache)
    model, tokenizer, job = open_checkpoint(args)
    if args.data:
        listings = load_data(args.data, "data")
    else:
        _, listings = split_validation(load_data(args.train, "train"), seed=model.config.train["seed"])
    dump = dump_decoder_inputs(model, tokenizer, listings, job.cache_dir)
    if args.cache:
        save_dump(dump, args.cache)
    return dump


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_checkpoint_arguments(parser)
    parser.add_argument("--train", type=Path, help="the checkpoint's training file (its validation split is scored)")
    parser.add_argument("--data", type=Path, help="labelled listings to score instead of the validation split")
    parser.add_argument("--cache", type=Path, help="keep what the decoder saw here, and read it back if present")
    parser.add_argument("--repairs", type=json.loads, default={},
                        help='the repairs to score, as JSON (default: none, the decoder as it is): {"extend": true}')
    parser.add_argument("--grid", action="store_true", help="score every setting of `grid()` instead")
    parser.add_argument("--breakdown", action="store_true",
                        help="also put each slot still missed down to its cause (needs --train, and no --data)")
    parser.add_argument("--json", type=Path, help="write every scored setting here (JSON lines)")
    args = parser.parse_args()
    if not args.train and not args.data:
        parser.error("give --train (its validation split is scored) or --data")
    setup_logging()
    dump = load_or_dump(args)
    torch.set_num_threads(1)
    out = args.json.open("w") if args.json else None
    for repairs in grid() if args.grid else [Repairs(**args.repairs)]:
        predicted = repaired_spans(dump, repairs)
        result = score_spans(dump, predicted)
        v = result["value"]
        print(f"{json.dumps(asdict(repairs))}  F1 {100 * v['f1']:.2f} P {100 * v['precision']:.2f} "
              f"R {100 * v['recall']:.2f} TAG-F1 {100 * result['tag_f1']:.2f}", flush=True)
        if out:
            out.write(json.dumps({"repairs": asdict(repairs), **result}) + "\n")
    if args.breakdown and not args.grid:
        if args.data or not args.train:
            parser.error("--breakdown scores the validation split of --train: leave out --data")
        training, held = split_validation(load_data(args.train, "train"), seed=dump.seed)
        if [l.id for l in held] != [l.id for l in dump.listings]:
            raise SystemExit(f"error: {args.cache} holds other listings than the validation split of {args.train}.")
        print_breakdown(dump, predicted, training)


if __name__ == "__main__":
    run_cli(main)
