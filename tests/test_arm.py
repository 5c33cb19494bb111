"""ARM: selection, guidance policies, and the BiLSTM+CRF decoder's mask handling."""
from __future__ import annotations

import pytest
import torch

from dram.nn.arm import AttributeClassifier, AttributeRangeMinimizer, SpanDecoder
from dram.nn.crf_decoding import crf_marginals, viterbi

H, N, W = 8, 3, 5


def test_training_selection_caps_wrong_rows_at_the_gold_count_keeping_the_most_confident() -> None:
    scores = torch.tensor([[0.9, 0.6, 0.8, 0.7], [0.55, 0.95, 0.65, 0.1]])
    gold = torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 1]])
    rows = AttributeRangeMinimizer.select(scores, 0.5, gold).tolist()
    # 2 gold rows, 5 wrongly selected: the 2 most confident wrong ones (0.95, 0.8) join the gold
    assert rows == [[0, 0], [0, 2], [1, 1], [1, 3]]
    # no cap at inference: every score above tau_R
    assert len(AttributeRangeMinimizer.select(scores, 0.5)) == 7


def test_select_is_scores_above_tau_or_gold() -> None:
    scores = torch.tensor([[0.6, 0.2, 0.5], [0.1, 0.9, 0.3]])
    assert AttributeRangeMinimizer.select(scores, 0.5).tolist() == [[0, 0], [1, 1]]  # 0.5 is not > 0.5
    gold = torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    assert AttributeRangeMinimizer.select(scores, 0.5, gold).tolist() == [[0, 0], [0, 1], [1, 1]]
    assert AttributeRangeMinimizer.select(scores, 0.95).shape == (0, 2)
    assert AttributeRangeMinimizer.select(scores, 0.0).shape == (6, 2)


@pytest.mark.parametrize("policy", ["prototype", "dynet", "bert"])
def test_each_policy_gives_m_by_w_by_2h(policy: str) -> None:
    torch.manual_seed(0)
    arm = AttributeRangeMinimizer(H, N, lstm_hidden=4, policy=policy)
    features = torch.randn(2, W, H)
    rows = torch.tensor([[0, 0], [0, 2], [1, 1], [1, 2]])
    names = torch.randn(N, H) if policy == "bert" else None
    guided = arm.conditioned(features, rows, names)
    assert guided.shape == (4, W, 2 * H)
    # The first half is always the token features of the row's listing.
    torch.testing.assert_close(guided[:, :, :H], features[rows[:, 0]])
    # Different attributes condition the same listing differently.
    assert not torch.allclose(guided[0, :, H:], guided[1, :, H:])


def test_bert_policy_needs_encoded_names() -> None:
    arm = AttributeRangeMinimizer(H, N, lstm_hidden=4, policy="bert")
    with pytest.raises(ValueError, match="attribute names"):
        arm.conditioned(torch.randn(1, W, H), torch.tensor([[0, 1]]), None)


def test_prototype_guidance_by_hand() -> None:
    torch.manual_seed(1)
    arm = AttributeRangeMinimizer(H, N, lstm_hidden=4, policy="prototype")
    features = torch.randn(2, W, H)
    rows = torch.tensor([[1, 2], [0, 1]])
    guided = arm.conditioned(features, rows, None)
    for m, (b, a) in enumerate(rows.tolist()):
        f = features[b]
        p = arm.guidance.prototypes.weight[a]
        cos = (f @ p) / (f.norm(dim=-1) * p.norm())
        expected = torch.cat([f, cos[:, None] * f], dim=-1)
        torch.testing.assert_close(guided[m], expected)


def test_dynet_guidance_by_hand() -> None:
    torch.manual_seed(2)
    arm = AttributeRangeMinimizer(H, N, lstm_hidden=4, policy="dynet")
    features = torch.randn(1, W, H)
    guided = arm.conditioned(features, torch.tensor([[0, 2]]), None)
    g = arm.guidance
    torch.testing.assert_close(guided[0, :, H:], torch.tanh(features[0] @ g.down[2] @ g.up[2]))


def test_classifier_reads_two_cls_vectors() -> None:
    clf = AttributeClassifier(H, N)
    assert clf(torch.randn(4, 2 * H)).shape == (4, N)


def test_decoder_mask_shorter_sequence_is_not_affected_by_padding() -> None:
    torch.manual_seed(3)
    decoder = SpanDecoder(6, 4, 3).eval()
    features = torch.randn(2, W, 6)
    features[1, 3:] = 1e3  # garbage in the padding
    mask = torch.tensor([[True] * W, [True, True, True, False, False]])
    alone_mask = torch.ones(1, 3, dtype=torch.bool)
    with torch.no_grad():
        emissions = decoder.emissions(features, mask)
        alone = decoder.emissions(features[1:, :3], alone_mask)
        torch.testing.assert_close(emissions[1, :3], alone[0])
        paths, alone_paths = viterbi(decoder.crf, emissions, mask), viterbi(decoder.crf, alone, alone_mask)
        marginals = crf_marginals(decoder.crf, emissions, mask)
        alone_marginals = crf_marginals(decoder.crf, alone, alone_mask)
        tags = ["O", "B", "I"]
        found, alone_found = decoder.decode(features, mask, tags), decoder.decode(features[1:, :3], alone_mask, tags)
    assert paths.shape == (2, W) and paths[1, :3].tolist() == alone_paths[0].tolist() and paths[1, 3:].eq(0).all()
    torch.testing.assert_close(marginals[1, :3], alone_marginals[0])
    assert torch.all(marginals[1, 3:] == 0)
    row_1 = [(f, e) for r, f, e in zip(found.row, found.first_word, found.end_word) if r == 1]
    assert row_1 == list(zip(alone_found.first_word, alone_found.end_word))
    assert [c for r, c in zip(found.row, found.confidence) if r == 1] == pytest.approx(alone_found.confidence)
    # The backward LSTM direction starts at the real end: the full row differs from a truncated one.
    with torch.no_grad():
        cut = decoder.emissions(features[:1, :3], alone_mask)
    assert not torch.allclose(emissions[0, :3], cut[0])


def test_decoder_nll_respects_the_mask() -> None:
    torch.manual_seed(4)
    decoder = SpanDecoder(6, 4, 3)
    features = torch.randn(1, W, 6)
    tags = torch.tensor([[1, 2, 0, 0, 0]])
    short = torch.tensor([[True, True, False, False, False]])
    padded = features.clone()
    padded[0, 2:] = -7.0
    other_tags = tags.clone()
    other_tags[0, 2:] = 2
    a = decoder.nll(features, tags, short)
    b = decoder.nll(padded, other_tags, short)
    torch.testing.assert_close(a, b)
    assert a.item() > 0
    # NLL is a proper negative log-probability: exp(-nll) summed over all 9 tag pairs is 1.
    total = sum(torch.exp(-decoder.nll(features[:, :2], torch.tensor([[i, j]]), short[:, :2]))
                for i in range(3) for j in range(3))
    torch.testing.assert_close(total, torch.tensor(1.0))
