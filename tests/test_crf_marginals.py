"""Forward-backward marginals of the pytorch-crf CRF against brute-force path enumeration."""
from __future__ import annotations

import itertools

import pytest
import torch
from torchcrf import CRF

from dram.nn.crf_decoding import crf_marginals

K, T = 3, 4


def _random_crf(seed: int = 0) -> CRF:
    torch.manual_seed(seed)
    crf = CRF(K, batch_first=True)
    with torch.no_grad():
        crf.transitions.normal_(0, 1.5)
        crf.start_transitions.normal_(0, 1.5)
        crf.end_transitions.normal_(0, 1.5)
    return crf


def _brute_force(crf: CRF, emissions: torch.Tensor, length: int) -> torch.Tensor:
    """P(y_t = k) by enumerating all K^length paths of one sequence (emissions (T, K))."""
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
    crf = _random_crf(seed).double()
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
    crf = _random_crf(3)
    emissions = torch.randn(2, T, K)
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    other = emissions.clone()
    other[1, 2:] = 50.0  # garbage in the padding
    with torch.no_grad():
        torch.testing.assert_close(crf_marginals(crf, emissions, mask)[1], crf_marginals(crf, other, mask)[1])


def test_rows_sum_to_one_on_real_positions() -> None:
    crf = _random_crf(4)
    emissions = torch.randn(4, 6, K) * 3
    lengths = torch.tensor([6, 5, 3, 1])
    mask = torch.arange(6)[None, :] < lengths[:, None]
    with torch.no_grad():
        sums = crf_marginals(crf, emissions, mask).sum(-1)
    torch.testing.assert_close(sums[mask], torch.ones(int(mask.sum())))
    assert torch.all(sums[~mask] == 0)
    assert torch.all(crf_marginals(crf, emissions, mask) >= 0)


def test_argmax_of_marginals_agrees_with_viterbi_when_peaked() -> None:
    crf = _random_crf(5)
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
