"""ARM, Attribute Range Minimization (paper, section 3.3), and the BiLSTM+CRF feature decoder.

A multi-label classifier on the pooled sentence ([CLS] in the paper) selects the attributes whose
existence score R exceeds tau_R; each selected attribute conditions the token features (the
guidance policy) and one B-I-O BiLSTM+CRF tags them. Conditioned copies are stacked on the batch
axis so the decoder runs once.
"""
from __future__ import annotations

import torch
import torch.nn.functional as nnf
from torch import nn
from torchcrf import CRF

from dram.nn.crf_decoding import RestrictedCrf, TaggedSpans, allowed_groups, log_likelihood, merged, tagged_spans

# The logit a grown attribute's outputs start at until fine-tuning switches them on (`DramModel.add_attributes`):
# exp(-1e4) is 0 in float32, so no score, tag path or marginal of the other attributes moves.
SILENT_LOGIT = -1e4


def grown_linear(layer: nn.Linear, extra_outputs: int, bias: float) -> nn.Linear:
    """`layer` with `extra_outputs` more output rows: zero weights and the given bias; the old rows as they were."""
    grown = nn.Linear(layer.in_features, layer.out_features + extra_outputs).to(layer.weight.device, layer.weight.dtype)
    with torch.no_grad():
        grown.weight.zero_()
        grown.weight[: layer.out_features] = layer.weight
        grown.bias.fill_(bias)
        grown.bias[: layer.out_features] = layer.bias
    return grown


class AttributeClassifier(nn.Module):
    """R = sigmoid(MLP(pooled last two encoder layers)); the pooling is DramModel._sentence."""

    def __init__(self, hidden_size: int, n_attributes: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * hidden_size, hidden_size), nn.GELU(), nn.Linear(hidden_size, n_attributes))

    def forward(self, cls_last_two: torch.Tensor) -> torch.Tensor:
        return self.mlp(cls_last_two)

    def grow(self, n_new: int) -> None:
        """Scores for `n_new` more attributes, silent (R = 0) until `switch_on`."""
        self.mlp[2] = grown_linear(self.mlp[2], n_new, SILENT_LOGIT)

    def switch_on(self, indices: list[int]) -> None:
        with torch.no_grad():
            self.mlp[2].bias[indices] = 0.0


class PrototypeGuidance(nn.Module):
    """F^a = [F, cos(P_a, F) * F] with a learnable prototype P_a per attribute (the paper's default)."""

    def __init__(self, hidden_size: int, n_attributes: int):
        super().__init__()
        self.prototypes = nn.Embedding(n_attributes, hidden_size)

    def guide(self, features: torch.Tensor, attribute_vectors: torch.Tensor) -> torch.Tensor:
        cos = nnf.cosine_similarity(features, attribute_vectors[:, None, :], dim=-1)
        return torch.cat([features, cos.unsqueeze(-1) * features], dim=-1)

    def forward(self, features: torch.Tensor, attributes: torch.Tensor, names: torch.Tensor | None = None) -> torch.Tensor:
        return self.guide(features, self.prototypes(attributes))

    def grow(self, n_new: int, generator: torch.Generator) -> None:
        """Prototypes for `n_new` more attributes, drawn as a fresh embedding's are."""
        old = self.prototypes.weight
        new = torch.randn(n_new, old.shape[1], generator=generator).to(old.device, old.dtype)
        self.prototypes = nn.Embedding.from_pretrained(torch.cat([old.detach(), new]), freeze=False)


class BertGuidance(PrototypeGuidance):
    """The attribute's name, encoded by the language model, stands in for the prototype."""

    def __init__(self, hidden_size: int, n_attributes: int):
        nn.Module.__init__(self)
        self.project = nn.Linear(hidden_size, hidden_size)

    def forward(self, features: torch.Tensor, attributes: torch.Tensor, names: torch.Tensor | None = None) -> torch.Tensor:
        if names is None:
            raise ValueError("BERT-guided ARM needs the encoded attribute names.")
        return self.guide(features, self.project(names[attributes]))

    def grow(self, n_new: int, generator: torch.Generator) -> None:
        """Nothing per attribute here: a new attribute's guidance is its encoded name."""


class DyNetGuidance(nn.Module):
    """F^a = [F, tanh(F W_a)] with a per-attribute (low-rank) generated weight W_a."""

    def __init__(self, hidden_size: int, n_attributes: int, rank: int = 32):
        super().__init__()
        self.down = nn.Parameter(torch.randn(n_attributes, hidden_size, rank) * hidden_size ** -0.5)
        self.up = nn.Parameter(torch.randn(n_attributes, rank, hidden_size) * rank ** -0.5)

    def forward(self, features: torch.Tensor, attributes: torch.Tensor, names: torch.Tensor | None = None) -> torch.Tensor:
        dynamic = torch.tanh(features @ self.down[attributes] @ self.up[attributes])
        return torch.cat([features, dynamic], dim=-1)

    def grow(self, n_new: int, generator: torch.Generator) -> None:
        """Generated weights for `n_new` more attributes, drawn as the constructor draws them."""
        _, hidden, rank = self.down.shape
        down = torch.randn(n_new, hidden, rank, generator=generator) * hidden ** -0.5
        up = torch.randn(n_new, rank, hidden, generator=generator) * rank ** -0.5
        self.down = nn.Parameter(torch.cat([self.down.detach(), down.to(self.down)]))
        self.up = nn.Parameter(torch.cat([self.up.detach(), up.to(self.up)]))


GUIDANCE = {"prototype": PrototypeGuidance, "dynet": DyNetGuidance, "bert": BertGuidance}


class SpanDecoder(nn.Module):
    """BiLSTM + CRF over word positions. The CRF mask must start on and be contiguous."""

    def __init__(self, input_size: int, lstm_hidden: int, n_tags: int):
        super().__init__()
        self.lstm = nn.LSTM(input_size, lstm_hidden, batch_first=True, bidirectional=True)
        self.emit = nn.Linear(2 * lstm_hidden, n_tags)
        self.crf = CRF(n_tags, batch_first=True)

    def emissions(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.emit(self.states(features, mask))

    def states(self, features: torch.Tensor, mask: torch.Tensor, engine=None) -> torch.Tensor:
        """The BiLSTM's states (B, W, 2 x hidden), each row read to its length; `engine`: what computes
        them instead of the torch LSTM (the ONNX engine's `decoder_states`), or None."""
        if engine is not None:
            return engine.decoder_states(features, mask)
        lengths = mask.sum(1)
        if bool(lengths.eq(features.shape[1]).all()):  # no padding (the rows of one window): nothing to pack
            return self.unpacked_states(features)
        packed = nn.utils.rnn.pack_padded_sequence(features, lengths.clamp(min=1).cpu(), batch_first=True,
                                                   enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=features.shape[1])
        return out

    def unpacked_states(self, features: torch.Tensor) -> torch.Tensor:
        """States of rows read to their full width (what the ONNX engine exports, given row lengths)."""
        return self.lstm(features)[0]

    def nll(self, features: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor,
            allowed: torch.Tensor | None = None, states: torch.Tensor | None = None) -> torch.Tensor:
        """Mean negative log-likelihood of the gold tags; `allowed` (B, K) bool: the tags each row may
        take (the gold ones among them), the others out of its normaliser; `states`: the BiLSTM's, when
        the caller has them."""
        emissions = self.emit(self.states(features, mask) if states is None else states)
        if allowed is None:
            return -self.crf(emissions, tags, mask=mask, reduction="mean")
        total = emissions.new_zeros(())
        for rows, kept in allowed_groups(allowed):
            position = torch.full((allowed.shape[1],), -1, dtype=torch.long, device=tags.device)
            position[kept] = torch.arange(len(kept), device=tags.device)
            total = total + log_likelihood(RestrictedCrf.of(self.crf, kept), emissions[rows][:, :, kept],
                                           position[tags[rows]], mask[rows]).sum()
        return -total / len(features)

    def decode(self, features: torch.Tensor, mask: torch.Tensor, tags: list[str],
               allowed: torch.Tensor | None = None, engine=None, states: torch.Tensor | None = None) -> TaggedSpans:
        """The spans the Viterbi paths tag, with confidences from the marginals; `tags`: the tag names by
        id; `allowed` (B, K) bool: the tags each row may take (None: all); `engine`: what computes the
        BiLSTM's states instead of the torch modules (the ONNX engine), or None; `states`: those states,
        when the caller has them."""
        emissions = self.emit(self.states(features, mask, engine) if states is None else states)
        if allowed is None:
            return tagged_spans(self.crf, emissions, mask, tags)
        return merged([(rows, kept, tagged_spans(RestrictedCrf.of(self.crf, kept), emissions[rows][:, :, kept],
                                                 mask[rows], [tags[k] for k in kept.tolist()]))
                       for rows, kept in allowed_groups(allowed)])

    def grow(self, extra_inputs: int, extra_tags: int) -> None:
        """Read `extra_inputs` more features (appended, zero weights: no effect until trained) and emit
        `extra_tags` more tags (appended, silent until `switch_on`; their transitions start at 0)."""
        old = self.lstm
        lstm = nn.LSTM(old.input_size + extra_inputs, old.hidden_size, batch_first=True, bidirectional=True)
        state = {}
        for name, value in old.state_dict().items():
            if name.startswith("weight_ih"):
                value = torch.cat([value, value.new_zeros(value.shape[0], extra_inputs)], dim=1)
            state[name] = value
        lstm.load_state_dict(state)
        self.lstm = lstm.to(old.weight_ih_l0.device, old.weight_ih_l0.dtype)
        self.emit = grown_linear(self.emit, extra_tags, SILENT_LOGIT)
        n_old = self.crf.num_tags
        crf = CRF(n_old + extra_tags, batch_first=True).to(self.crf.transitions.device)
        with torch.no_grad():
            for name in ("start_transitions", "end_transitions", "transitions"):
                grown, trained = getattr(crf, name), getattr(self.crf, name)
                grown.zero_()
                grown[tuple(slice(0, n_old) for _ in range(trained.dim()))] = trained
        self.crf = crf

    def switch_on(self, tags: list[int]) -> None:
        with torch.no_grad():
            self.emit.bias[tags] = 0.0


class AttributeRangeMinimizer(nn.Module):
    """Selection, guidance and the per-attribute decoder. The existence classifier lives on the
    model itself, since the ARM-less variants train it too (for CLS-F1 and the UI's scores)."""

    def __init__(self, hidden_size: int, n_attributes: int, lstm_hidden: int, policy: str = "prototype",
                 prior_size: int = 0):
        super().__init__()
        self.guidance = GUIDANCE[policy](hidden_size, n_attributes)
        self.decoder = SpanDecoder(2 * hidden_size + prior_size, lstm_hidden, 3)

    @staticmethod
    def select(scores: torch.Tensor, tau_r: float, gold: torch.Tensor | None = None) -> torch.Tensor:
        """(M, 2) rows of (listing, attribute): R > tau_R, united with gold when training.

        In training the wrongly selected rows (R > tau_R, not gold) are capped at the number of gold
        rows, the most confident kept: they teach the decoder to tag nothing for a wrong selection,
        but an untrained classifier selects about half of all attributes, which with 51 of them made
        every early step decode ~25 rows per listing (12.8 s a step against 8.0 for the joint CRF)."""
        chosen = scores > tau_r
        if gold is None:
            return chosen.nonzero()
        gold = gold.bool()
        wrong = chosen & ~gold
        cap = max(int(gold.sum()), 1)
        if int(wrong.sum()) > cap:
            keep = scores.masked_fill(~wrong, -1.0).flatten().topk(cap).indices
            wrong = torch.zeros_like(wrong).flatten().index_fill(0, keep, True).view_as(gold)
        return (gold | wrong).nonzero()

    def conditioned(self, features: torch.Tensor, rows: torch.Tensor, names: torch.Tensor | None,
                    prior: torch.Tensor | None = None) -> torch.Tensor:
        """Guided features per (listing, attribute) row, with that attribute's value-lookup features."""
        guided = self.guidance(features[rows[:, 0]], rows[:, 1], names)
        if prior is None:
            return guided
        mine = prior.view(*prior.shape[:2], -1, 2)[rows[:, 0], :, rows[:, 1]]  # (M, W, 2)
        return torch.cat([guided, mine.to(guided.dtype)], dim=-1)
