"""The CRF's answers for a whole batch (`dram.nn.crf_decoding`) against the readable definitions they
replace: pytorch-crf's own Viterbi (traced back one sequence and one word at a time), spans read with
`bio_ranges` from each path with their mean marginal, one sequence at a time, and the forward-backward
marginals against enumerating every path."""
from __future__ import annotations

import itertools

import pytest
import torch
from torchcrf import CRF

from dram.data.tagging import bio_ranges
from dram.nn.arm import SpanDecoder
from dram.nn.crf_decoding import crf_marginals, log_likelihood, tagged_spans, viterbi

ARM_TAGS = ["O", "B", "I"]
JOINT_TAGS = ["O", "B-colour", "I-colour", "B-size", "I-size"]
K, T = 3, 4  # the marginals' brute force: K^T paths


def _crf(n_tags: int, seed: int) -> CRF:
    torch.manual_seed(seed)
    crf = CRF(n_tags, batch_first=True)
    with torch.no_grad():
        for parameter in (crf.transitions, crf.start_transitions, crf.end_transitions):
            parameter.normal_(0, 1.5)
    return crf


def _batch(n_tags: int, seed: int, lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    emissions = torch.randn(len(lengths), max(lengths), n_tags, generator=generator) * 3
    emissions[:, :, 0] -= 1  # fewer O tags: more spans, stray Is and label changes
    mask = torch.tensor([[t < n for t in range(max(lengths))] for n in lengths])
    return emissions, mask


LENGTHS = [[9, 1, 4, 9, 6, 2, 7, 9], [1, 8], [5, 5, 5], [12, 3]]


@pytest.mark.parametrize("tags", [ARM_TAGS, JOINT_TAGS])
@pytest.mark.parametrize("seed", range(4))
def test_viterbi_gives_pytorch_crfs_paths_padded_with_tag_zero(tags: list[str], seed: int) -> None:
    crf = _crf(len(tags), seed)
    emissions, mask = _batch(len(tags), seed, LENGTHS[seed])
    with torch.no_grad():
        expected = crf.decode(emissions, mask=mask)
        got = viterbi(crf, emissions, mask)
    assert got.shape == mask.shape
    for row, path in enumerate(expected):
        assert got[row, : len(path)].tolist() == path
        assert got[row, len(path):].eq(0).all()


@pytest.mark.parametrize("tags", [ARM_TAGS, JOINT_TAGS])
@pytest.mark.parametrize("seed", range(4))
def test_spans_are_bio_ranges_of_each_path_with_their_mean_marginal(tags: list[str], seed: int) -> None:
    crf = _crf(len(tags), 10 + seed)
    emissions, mask = _batch(len(tags), 10 + seed, LENGTHS[seed])
    with torch.no_grad():
        found = tagged_spans(crf, emissions, mask, tags)
        paths = crf.decode(emissions, mask=mask)
        marginals = crf_marginals(crf, emissions, mask)
    expected = []
    for row, path in enumerate(paths):
        for first, end, label in bio_ranges([tags[t] for t in path]):
            mean = float(torch.stack([marginals[row, i, path[i]] for i in range(first, end)]).mean())
            expected.append((row, first, end, label, mean))
    got = list(zip(found.row, found.first_word, found.end_word, [tags[t].partition("-")[2] for t in found.tag],
                   found.confidence))
    assert [g[:4] for g in got] == [e[:4] for e in expected]
    assert any(end - first > 1 for _, first, end, _, _ in expected)  # the means cover several words
    assert [g[4] for g in got] == pytest.approx([e[4] for e in expected], abs=1e-6)


def test_stray_is_and_label_changes_open_spans_as_bio_ranges_reads_them() -> None:
    crf = _crf(len(JOINT_TAGS), 1)
    path = ["I-colour", "I-size", "I-size", "O", "B-size", "B-size", "I-colour", "O", "I-colour"]
    emissions = torch.full((1, len(path), len(JOINT_TAGS)), -50.0)
    for t, tag in enumerate(path):
        emissions[0, t, JOINT_TAGS.index(tag)] = 50.0
    with torch.no_grad():
        found = tagged_spans(crf, emissions, torch.ones(1, len(path), dtype=torch.bool), JOINT_TAGS)
    got = [(f, e, JOINT_TAGS[t]) for f, e, t in zip(found.first_word, found.end_word, found.tag)]
    assert got == [(0, 1, "I-colour"), (1, 3, "I-size"), (4, 5, "B-size"), (5, 6, "B-size"), (6, 7, "I-colour"),
                   (8, 9, "I-colour")]
    assert [(f, e, tag.partition("-")[2]) for f, e, tag in got] == bio_ranges(path)


def test_a_batch_without_any_span_gives_none() -> None:
    crf = _crf(3, 0)
    emissions, mask = _batch(3, 0, [4, 2])
    emissions[:, :, 0] += 100
    with torch.no_grad():
        found = tagged_spans(crf, emissions, mask, ARM_TAGS)
    assert found.row == [] and found.confidence == []


def test_a_rows_spans_do_not_depend_on_the_rows_beside_it() -> None:
    crf = _crf(3, 5)
    emissions, mask = _batch(3, 5, [7, 3, 6])
    with torch.no_grad():
        together = tagged_spans(crf, emissions, mask, ARM_TAGS)
        alone = tagged_spans(crf, emissions[1:2, :3], mask[1:2, :3], ARM_TAGS)
    mine = [(f, e, c) for r, f, e, c in zip(together.row, together.first_word, together.end_word,
                                             together.confidence) if r == 1]
    assert mine and mine == list(zip(alone.first_word, alone.end_word, alone.confidence))


def _brute_force(crf: CRF, emissions: torch.Tensor, length: int) -> torch.Tensor:
    """P(y_t = k) by enumerating all K^length paths of one sequence (emissions (T, K)): the definition
    `crf_marginals` computes by forward-backward."""
    scores, paths = [], list(itertools.product(range(K), repeat=length))
    for path in paths:
        s = crf.start_transitions[path[0]] + emissions[0, path[0]] + crf.end_transitions[path[-1]]
        for t in range(1, length):
            s = s + crf.transitions[path[t - 1], path[t]] + emissions[t, path[t]]
        scores.append(s)
    probs = torch.softmax(torch.stack(scores), 0)
    marginals = torch.zeros(emissions.shape[0], K, dtype=emissions.dtype)
    for p, path in zip(probs, paths):
        for t, k in enumerate(path):
            marginals[t, k] += p
    return marginals


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_marginals_match_brute_force_with_padding(seed: int) -> None:
    crf = _crf(K, seed).double()
    generator = torch.Generator().manual_seed(100 + seed)
    emissions = torch.randn(3, T, K, generator=generator, dtype=torch.float64) * 2
    lengths = [4, 2, 1]
    mask = torch.tensor([[t < n for t in range(T)] for n in lengths])
    with torch.no_grad():
        got = crf_marginals(crf, emissions, mask)
        for b, n in enumerate(lengths):
            expected = _brute_force(crf, emissions[b], n)
            torch.testing.assert_close(got[b], expected, rtol=1e-9, atol=1e-9)
            assert torch.all(got[b, n:] == 0), "padded positions must be zero"


def test_padding_values_do_not_change_a_shorter_sequence() -> None:
    crf = _crf(K, 3)
    emissions = torch.randn(2, T, K)
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    other = emissions.clone()
    other[1, 2:] = 50.0  # garbage in the padding
    with torch.no_grad():
        torch.testing.assert_close(crf_marginals(crf, emissions, mask)[1], crf_marginals(crf, other, mask)[1])


def test_rows_sum_to_one_on_real_positions() -> None:
    crf = _crf(K, 4)
    emissions = torch.randn(4, 6, K) * 3
    lengths = torch.tensor([6, 5, 3, 1])
    mask = torch.arange(6)[None, :] < lengths[:, None]
    with torch.no_grad():
        sums = crf_marginals(crf, emissions, mask).sum(-1)
    torch.testing.assert_close(sums[mask], torch.ones(int(mask.sum())))
    assert torch.all(sums[~mask] == 0)
    assert torch.all(crf_marginals(crf, emissions, mask) >= 0)


def test_argmax_of_marginals_agrees_with_viterbi_when_peaked() -> None:
    crf = _crf(K, 5)
    generator = torch.Generator().manual_seed(7)
    emissions = torch.randn(3, 6, K, generator=generator) * 10  # peaked: one path dominates
    lengths = [6, 4, 2]
    mask = torch.tensor([[t < n for t in range(6)] for n in lengths])
    with torch.no_grad():
        marginals = crf_marginals(crf, emissions, mask)
        viterbi = crf.decode(emissions, mask=mask)
    for b, n in enumerate(lengths):
        assert marginals[b, :n].argmax(-1).tolist() == viterbi[b]
        assert marginals[b, :n].max(-1).values.min() > 0.5  # really peaked


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_log_likelihood_is_pytorch_crfs_with_padding(seed: int) -> None:
    crf = _crf(len(JOINT_TAGS), seed)
    emissions, mask = _batch(len(JOINT_TAGS), seed, LENGTHS[seed])
    tags = torch.randint(0, len(JOINT_TAGS), mask.shape, generator=torch.Generator().manual_seed(seed))
    expected = crf(emissions, tags, mask=mask, reduction="none")
    assert torch.allclose(log_likelihood(crf, emissions, tags, mask), expected, atol=1e-4)


def test_rows_limited_to_some_tags_decode_and_train_as_if_the_others_were_impossible() -> None:
    """The category schema's restricted CRF against the definition: every other tag's emission at -inf."""
    torch.manual_seed(0)
    decoder = SpanDecoder(6, 4, len(JOINT_TAGS))
    with torch.no_grad():
        for parameter in (decoder.crf.transitions, decoder.crf.start_transitions, decoder.crf.end_transitions):
            parameter.normal_(0, 1.5)
        decoder.emit.bias[0] -= 2  # spans of every label
    features = torch.randn(4, 7, 6)
    mask = torch.tensor([[t < n for t in range(7)] for n in (7, 3, 5, 7)])
    allowed = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 0, 1, 1], [1, 1, 1, 1, 1], [1, 0, 0, 1, 1]], dtype=torch.bool)
    emissions = decoder.emissions(features, mask).masked_fill(~allowed[:, None, :], float("-inf"))
    with torch.no_grad():
        expected = tagged_spans(decoder.crf, emissions, mask, JOINT_TAGS)
        found = decoder.decode(features, mask, JOINT_TAGS, allowed)
    assert (found.row, found.first_word, found.end_word, found.tag) == (
        expected.row, expected.first_word, expected.end_word, expected.tag)
    assert found.confidence == pytest.approx(expected.confidence, abs=1e-5)
    assert {JOINT_TAGS[t] for r, t in zip(found.row, found.tag) if r == 0} <= {"B-colour", "I-colour"}
    assert any(JOINT_TAGS[t].endswith("size") for r, t in zip(found.row, found.tag) if r == 1)
    tags = torch.tensor([[0, 1, 2, 0, 0, 0, 0], [3, 4, 0, 0, 0, 0, 0], [0, 3, 0, 1, 0, 0, 0], [0] * 7])
    # -inf would give NaN gradients; -1e4 is as impossible (exp underflows to 0) and trains
    finite = decoder.emissions(features, mask).masked_fill(~allowed[:, None, :], -1e4)
    reference = -decoder.crf(finite, tags, mask=mask, reduction="mean")
    reference.backward()
    expected_grads = [p.grad.clone() for p in decoder.parameters()]
    decoder.zero_grad()
    nll = decoder.nll(features, tags, mask, allowed)
    nll.backward()
    assert nll.item() == pytest.approx(reference.item(), abs=1e-4)
    for parameter, expected_grad in zip(decoder.parameters(), expected_grads):
        assert torch.allclose(parameter.grad, expected_grad, atol=1e-5)
