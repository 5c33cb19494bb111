"""The span scorer beside the joint CRF: its targets, its candidates, the vote, and a model that learns with it."""
from __future__ import annotations

import torch

from dram.nn.config import DramConfig
from dram.nn.span_scorer import SpanScorer, Vote, gold_span_classes, span_means, vote
from tests.tiny_model import overfit, tiny_model, train_listings


def test_gold_classes_mark_each_tagged_value_by_its_first_word_and_width() -> None:
    # joint tags: O=0, B-a0=1, I-a0=2, B-a1=3, I-a1=4
    tags = torch.tensor([[1, 2, 0, 3, 0, 3, 4, 4], [2, 2, 1, 0, 0, 0, 0, 0]])
    classes = gold_span_classes(tags, width=2)
    assert classes[0, 0, 1] == 1  # words 0-1: attribute 0
    assert classes[0, 3, 0] == 2  # word 3 alone: attribute 1
    assert classes[0, 5].tolist() == [0, 0]  # words 5-7 are three words, past the width: no target
    assert classes[1, 2, 0] == 1  # a B after stray I's starts its own value; the stray I's open none
    assert int((classes > 0).sum()) == 3


def test_a_span_mean_is_the_mean_of_its_words() -> None:
    values = torch.randn(2, 6, 3)
    means = span_means(values, width=4)
    assert means.shape == (2, 6, 4, 3)
    for b in range(2):
        for first in range(6):
            for k in range(min(4, 6 - first)):
                torch.testing.assert_close(means[b, first, k], values[b, first:first + k + 1].mean(0))


def test_spans_past_a_row_end_do_not_exist_and_disallowed_attributes_get_no_probability() -> None:
    torch.manual_seed(0)
    scorer = SpanScorer(input_size=6, n_attributes=3, max_width=4)
    states = torch.randn(2, 5, 6)
    mask = torch.arange(5)[None] < torch.tensor([5, 2])[:, None]
    allowed = torch.tensor([[True, True, True], [True, False, True]])
    logits, exists = scorer(states, mask, allowed)
    assert logits.shape == (2, 5, 4, 4) and exists.shape == (2, 5, 4)
    assert exists[0].sum() == 5 + 4 + 3 + 2  # widths 1..4 in five words
    assert exists[1].tolist()[0] == [True, True, False, False] and not exists[1, 2:].any()
    assert logits.softmax(-1)[1, ..., 2].max() < 1e-6  # attribute 1 is not allowed in row 1
    scorer.out.bias.data[1:] = 10.0  # every span a value: the candidates are the allowed ones only
    found = scorer.candidates(*scorer(states, mask, allowed))
    assert {(v.row, v.attribute) for v in found} == {(0, 0), (0, 1), (0, 2), (1, 0), (1, 2)}
    assert all(v.end_word <= (5 if v.row == 0 else 2) and v.end_word - v.first_word <= 4 for v in found)


def test_the_vote_adds_the_crf_and_the_scorer_and_keeps_the_best_of_overlapping_spans() -> None:
    tagged = [Vote(0, 0, 0, 2, 0.45), Vote(0, 1, 3, 4, 0.9), Vote(1, 0, 0, 1, 0.4)]
    scored = [Vote(0, 0, 0, 2, 0.3), Vote(0, 0, 1, 3, 0.6), Vote(0, 2, 5, 7, 0.55), Vote(1, 0, 0, 1, 0.05)]
    kept = vote(tagged, scored)
    # words 0-1: 0.45 + 0.3 = 0.75 beats 1-2 (0.6), which overlaps it; 3 (CRF alone, 0.9) and 5-6
    # (scorer alone, 0.55) pass; row 1's 0.4 + 0.05 does not; supports halved, in reading order
    assert [(v.row, v.attribute, v.first_word, v.end_word) for v in kept] == [(0, 0, 0, 2), (0, 1, 3, 4), (0, 2, 5, 7)]
    assert [round(v.support, 3) for v in kept] == [0.375, 0.45, 0.275]
    # overlap is checked across attributes too, and only within a row
    assert len(vote([Vote(0, 0, 0, 2, 0.9), Vote(0, 1, 1, 2, 0.8), Vote(1, 1, 1, 2, 0.8)], [])) == 2


def test_a_joint_model_with_the_span_scorer_trains_both_and_overfits_eight_listings(tiny_encoder_dir) -> None:
    """The loss holds the scorer's term and the decode reports the vote: a tiny model learns 8 listings
    to TAG-F1 1.0 through it, every confidence in 0..1."""
    model, tokenizer = tiny_model(tiny_encoder_dir, "text-only", use_arm=False, span_scorer=True, seed=0)
    assert model.span_scorer is not None

    def first_step(step: int, parts: dict) -> None:
        if step == 1:
            assert parts["span"] > 0 and model.span_scorer.start.weight.grad.abs().sum() > 0

    best, step, decoded = overfit(model, tokenizer, train_listings(), max_steps=300, with_image=False,
                                  on_step=first_step)
    assert best == 1.0, f"TAG-F1 {best:.3f} after {step} steps"
    assert all(0.25 < d.confidence <= 1.0 for d in decoded)


def test_the_paper_variants_and_old_checkpoints_have_no_span_scorer(tiny_encoder_dir, tmp_path) -> None:
    assert DramConfig.for_variant("v-irc", ["a"]).span_scorer is False
    path = tmp_path / "config.json"
    DramConfig(attributes=["a"], use_arm=False).save(path)
    path.write_text(path.read_text().replace('"span_scorer": false,', ""))  # a config saved before the option
    assert "span_scorer" not in path.read_text() and DramConfig.load(path).span_scorer is False
    model, _ = tiny_model(tiny_encoder_dir, "dram", span_scorer=True)  # ARM: the option has no joint decoder to sit beside
    assert model.span_scorer is None
