"""Per-position tag marginals of a pytorch-crf CRF, for span confidences.

pytorch-crf gives the Viterbi path and the likelihood but no marginals; forward-backward
in log space gives P(tag_t = k | x), from which a span's confidence is read.
"""
from __future__ import annotations

import torch
from torchcrf import CRF


def crf_marginals(crf: CRF, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """emissions (B, T, K), mask (B, T) bool, contiguous from position 0 -> marginals (B, T, K)."""
    batch, length, _ = emissions.shape
    trans = crf.transitions.unsqueeze(0)  # (1, K, K): from i to j
    alpha = [crf.start_transitions + emissions[:, 0]]
    for t in range(1, length):
        step = torch.logsumexp(alpha[-1].unsqueeze(2) + trans, dim=1) + emissions[:, t]
        alpha.append(torch.where(mask[:, t : t + 1], step, alpha[-1]))
    lengths = mask.long().sum(1)
    beta = [None] * length
    last = crf.end_transitions.expand(batch, -1)
    beta[length - 1] = last
    for t in range(length - 2, -1, -1):
        step = torch.logsumexp(trans + (emissions[:, t + 1] + beta[t + 1]).unsqueeze(1), dim=2)
        # At a sequence's last real position the backward message is the end transition.
        is_last = (lengths - 1 == t).unsqueeze(1)
        beta[t] = torch.where(is_last, last, torch.where(mask[:, t + 1 : t + 2], step, beta[t + 1]))
    alpha_t = torch.stack(alpha, 1)
    beta_t = torch.stack(beta, 1)
    log_z = torch.logsumexp(alpha_t[torch.arange(batch), lengths - 1] + crf.end_transitions, dim=1)
    return torch.exp(alpha_t + beta_t - log_z[:, None, None]) * mask.unsqueeze(2)
