"""DRAM: a task-calibrated language model fed Text-Related Embeddings, with ARM on top.

    word embeddings E, image regions G
      -> TEM: E_TEM = E + SelfAtt(E) + CrossAtt(E, G)    (or V-IRC: [E; proj(G)] as tokens)
      -> language model encoder (fine-tuned: IRC)
      -> ARM: R = sigmoid(MLP(pooled)), select R > tau_R, guide features per attribute (DyNet; paper: prototypes)
      -> BiLSTM + CRF tags B-I-O per selected attribute
         (without ARM: one joint BiLSTM + CRF, and beside it a span scorer that votes on the spans)
Variants switch parts off (DramConfig.for_variant) for the paper's ablations.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as nnf
from torch import nn

from dram.nn.arm import SILENT_LOGIT, AttributeClassifier, AttributeRangeMinimizer, SpanDecoder
from dram.nn.batching import Batch
from dram.nn.category_schema import CategorySchema
from dram.nn.config import DramConfig
from dram.nn.encoders import ImageRegionEncoder, run_text_layers
from dram.nn.onnx_engine import OnnxEngine
from dram.nn.precision import RunSettings, autocast_dtype
from dram.nn.region_cache import as_cached
from dram.nn.span_scorer import SpanScorer, Vote, vote
from dram.nn.tem import TextRelatedEmbeddings
from dram.nn.value_lookup import ValueLookup

if TYPE_CHECKING:  # the reference is the checkpoint's (dram.familiarity, above the network); only its type here
    from dram.familiarity import FamiliarityReference


@dataclass
class EncoderOutput:
    """Encoder outputs: everything ARM and the decoder need, so tau_R changes skip the encoders."""

    word_features: torch.Tensor  # (B, W, H)
    word_mask: torch.Tensor  # (B, W)
    attribute_logits: torch.Tensor  # (B, N)
    cross_attention: torch.Tensor | None  # (B, T, R) TEM text-to-region attention
    name_features: torch.Tensor | None  # (N, H) for the BERT-guided policy
    prior: torch.Tensor | None = None  # (B, W, 2N) value-lookup features
    # (B, H) the last layer's mean over the text tokens: where a listing sits in the encoder's space,
    # which the familiarity check (dram.familiarity) compares with the training listings'.
    pooled: torch.Tensor | None = None
    allowed: torch.Tensor | None = None  # (B, N) bool: the attributes each row's category has; None: all

    def select(self, index: int, count: int = 1) -> "EncoderOutput":
        pick = lambda t: None if t is None else t[index : index + count]
        return EncoderOutput(pick(self.word_features), pick(self.word_mask), pick(self.attribute_logits),
                             pick(self.cross_attention), self.name_features, pick(self.prior), pick(self.pooled),
                             pick(self.allowed))

    def float(self) -> "EncoderOutput":
        """Float32 versions of 16-bit outputs (mixed precision): ARM and the CRF sum in float32."""
        cast = lambda t: t.float() if t is not None and t.is_floating_point() else t
        return EncoderOutput(*(cast(getattr(self, f.name)) for f in fields(self)))

    @staticmethod
    def concat(parts: list["EncoderOutput"]) -> "EncoderOutput":
        """Rows of several encodings in one, padded to the longest, so ARM + CRF decode them at once."""
        if len(parts) == 1:
            return parts[0]

        def cat(tensors: list[torch.Tensor | None]) -> torch.Tensor | None:
            """Concatenated on the batch axis, the second (word or token) axis padded to the longest."""
            if tensors[0] is None:
                return None
            width = max(t.shape[1] for t in tensors)
            return torch.cat([nnf.pad(t, (0, 0) * (t.dim() - 2) + (0, width - t.shape[1])) for t in tensors])

        allowed = None
        if any(p.allowed is not None for p in parts):
            allowed = torch.cat([p.allowed if p.allowed is not None else p.attribute_logits.new_ones(
                p.attribute_logits.shape, dtype=torch.bool) for p in parts])
        return EncoderOutput(cat([p.word_features for p in parts]), cat([p.word_mask for p in parts]),
                       cat([p.attribute_logits for p in parts]), cat([p.cross_attention for p in parts]),
                       parts[0].name_features, cat([p.prior for p in parts]), cat([p.pooled for p in parts]), allowed)


@dataclass
class DecodedSpan:
    """The decoder's word-level output for one row of a batch: a `dram.data.spans.WordSpan`, which
    `char_spans` makes a `Span`."""

    listing: int
    attribute: str
    first_word: int
    end_word: int
    confidence: float


class DramModel(nn.Module):
    def __init__(self, config: DramConfig, text_encoder: nn.Module, image_encoder: ImageRegionEncoder | None,
                 attribute_name_ids: list[list[int]] | None = None):
        super().__init__()
        hidden = text_encoder.config.hidden_size
        image_encoder = image_encoder if config.use_image else None
        # The encoders' sizes go into the model's own copy: the caller's config is left as given.
        config = replace(config, hidden_size=hidden, **({} if image_encoder is None else dict(
            image_channels=image_encoder.channels, image_regions=image_encoder.grid ** 2)))
        self.config = config
        # Run-time, not saved (dram/nn/precision.py); the loaders set the run's.
        self.precision = RunSettings.precision
        # Run-time, not saved: ONNX Runtime sessions standing in for the encoders at inference on a
        # CPU (dram/nn/onnx_engine.py, attached by the loader); None: the torch modules run.
        self.onnx: OnnxEngine | None = None
        self.text_encoder = text_encoder
        self.image_encoder = image_encoder
        if self.image_encoder is not None:
            self.region_norm = nn.LayerNorm(config.image_channels)
        if config.freeze_text_encoder:
            text_encoder.requires_grad_(False)
        self.n_frozen = 0 if config.freeze_text_encoder else _freeze_lower_layers(text_encoder, config.frozen_fraction)
        if self.image_encoder is not None and config.freeze_image_encoder:
            self.image_encoder.requires_grad_(False)
        self.tem = (TextRelatedEmbeddings(hidden, config.image_channels or 1, config.tem_dim, config.tem_softmax)
                    if config.use_tem else None)
        self.region_tokens = nn.Linear(config.image_channels, hidden) if config.vanilla_irc and config.use_image else None
        n_attr = len(config.attributes)
        self.classifier = AttributeClassifier(hidden, n_attr)
        # Empty until training fills it from its listings, or loaded with the checkpoint.
        self.value_lookup: ValueLookup | None = ValueLookup({}) if config.value_prior else None
        # Each category's attributes: learned by training, or loaded with the checkpoint; empty, any may be tagged.
        self.schema = CategorySchema({})
        # Where the training listings sit in the encoder's space: set by training, or loaded with the checkpoint.
        self.familiarity: FamiliarityReference | None = None
        if config.use_arm:
            self.arm = AttributeRangeMinimizer(hidden, n_attr, config.lstm_hidden, config.arm_policy,
                                               prior_size=2 if config.value_prior else 0)
        else:
            self.arm = None
            prior_size = 2 * n_attr if config.value_prior else 0
            self.joint_decoder = SpanDecoder(hidden + prior_size, config.lstm_hidden, len(config.tags))
        self.span_scorer = (SpanScorer(2 * config.lstm_hidden, n_attr) if config.span_scorer and not config.use_arm
                            else None)
        self._set_name_ids(attribute_name_ids)

    def _set_name_ids(self, attribute_name_ids: list[list[int]] | None) -> None:
        """The attribute names as token ids, padded, for the BERT-guided policy (not saved: rebuilt from the config)."""
        if attribute_name_ids is None:
            self.attribute_name_ids = None
            return
        width = max(len(ids) for ids in attribute_name_ids)
        ids = torch.zeros((len(attribute_name_ids), width), dtype=torch.long)
        mask = torch.zeros((len(attribute_name_ids), width), dtype=torch.long)  # not ids != 0: MPNet pads with 1
        for i, row in enumerate(attribute_name_ids):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        device = self.classifier.mlp[0].weight.device
        self.register_buffer("attribute_name_ids", ids.to(device), persistent=False)
        self.register_buffer("attribute_name_mask", mask.to(device), persistent=False)

    def add_attributes(self, names: list[str], name_ids: list[list[int]] | None = None, *, seed: int) -> None:
        """Grow the model by attributes it has no outputs for, appended to the attributes of a new config.

        Every tensor that depends on the attribute list gets rows (or columns) for them: the existence
        classifier, ARM's guidance, and without ARM the joint decoder's tags, its CRF transitions and
        its value-prior inputs. The old attributes keep their parameters, and until `switch_on` the new
        ones are silent (existence score 0, tags never chosen), so the grown model answers exactly as
        before. `name_ids`: every attribute's name as token ids, needed by the BERT-guided policy; `seed`:
        the new rows' initialisation (the job's). The old config object is left as it was.
        """
        if not names:
            return
        clash = sorted(set(names) & set(self.config.attributes))
        if clash or len(set(names)) != len(names):
            raise ValueError(f"Attributes to add must be new and distinct; the model has {clash} already.")
        if self.config.use_arm and self.config.arm_policy == "bert" and name_ids is None:
            raise ValueError("The BERT-guided model needs the token ids of every attribute name to grow.")
        generator = torch.Generator().manual_seed(seed)
        n_new = len(names)
        self.onnx = None  # the decoder's exported graph has the old shapes: torch runs until reloaded
        self.classifier.grow(n_new)
        if self.arm is not None:
            self.arm.guidance.grow(n_new, generator)
        else:
            self.joint_decoder.grow(2 * n_new if self.config.value_prior else 0, 2 * n_new)
        if self.span_scorer is not None:
            self.span_scorer.grow(n_new, SILENT_LOGIT)
        self.config = replace(self.config, attributes=[*self.config.attributes, *names])
        if name_ids is not None:
            self._set_name_ids(name_ids)

    def switch_on(self, names: list[str]) -> None:
        """Let grown attributes be predicted and learned: their outputs start where a fresh head's would."""
        indices = [self.config.attributes.index(name) for name in names]
        self.onnx = None  # the weights the decoder's graph was exported from change
        self.classifier.switch_on(indices)
        if self.arm is None:
            tags = self.config.tags
            self.joint_decoder.switch_on([tags.index(f"{p}-{name}") for name in names for p in ("B", "I")])
        if self.span_scorer is not None:
            self.span_scorer.switch_on(indices)

    @property
    def span_decoder(self) -> SpanDecoder:
        """The BiLSTM + CRF that tags the words: ARM's per-attribute one, or the joint one."""
        return self.arm.decoder if self.arm is not None else self.joint_decoder

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def train(self, mode: bool = True) -> "DramModel":
        """Training changes the weights the ONNX graphs were exported from: the engine goes, torch runs."""
        if mode:
            self.onnx = None
        return super().train(mode)

    def _onnx_runs(self, part: str) -> bool:
        """Whether the ONNX engine stands in for `part` ("text", "image" or "decoder") in this call: only for
        inference on the CPU, where nothing needs the torch modules' gradients."""
        return (self.onnx is not None and getattr(self.onnx, part) is not None and not torch.is_grad_enabled()
                and self.device.type == "cpu")

    def image_regions(self, batch: Batch) -> torch.Tensor | None:
        if self.image_encoder is None:
            return None
        if batch.regions is not None:
            regions = batch.regions
        elif batch.pixels is not None:
            regions = self.photo_regions(batch.pixels)
        else:
            return None
        return self.region_norm(regions)

    def photo_regions(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, R, C) region features of preprocessed photos (B, 3, S, S), as `Batch.regions` takes them:
        a frozen CNN's rounded as the feature cache stores them."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.config.freeze_image_encoder):
            body = self.onnx.image_features if self._onnx_runs("image") else None
            regions = self.image_encoder(pixels, body)
        return as_cached(regions) if self.config.freeze_image_encoder else regions

    @property
    def caches_lower_layers(self) -> bool:
        """Frozen lower layers with nothing trainable beneath them (no TEM, no region tokens) give the
        same states every epoch: training computes them once (`lower_states`) and runs only the rest."""
        return (self.n_frozen > 0 and self.tem is None
                and self.region_tokens is None)

    @torch.no_grad()
    def lower_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T, H) output of the frozen layers, computed as in evaluation (no dropout)."""
        training = self.text_encoder.training
        self.text_encoder.eval()
        states = self.text_encoder.embeddings(input_ids=input_ids)
        states = self._run_layers(self.text_encoder.encoder.layer[: self.n_frozen], states, attention_mask)[-1]
        self.text_encoder.train(training)
        return states

    def _run_layers(self, layers, states: torch.Tensor, attention_mask: torch.Tensor) -> list[torch.Tensor]:
        return run_text_layers(self.text_encoder, layers, states, self._layer_mask(states, attention_mask))

    def _layer_mask(self, states: torch.Tensor, attention_mask: torch.Tensor):
        from transformers.masking_utils import create_bidirectional_mask

        return create_bidirectional_mask(config=self.text_encoder.config, inputs_embeds=states,
                                         attention_mask=attention_mask.long())

    def _upper_layers(self, lower: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The last layers' outputs from cached lower states, as `hidden_states` would hold them."""
        return tuple(self._run_layers(self.text_encoder.encoder.layer[self.n_frozen:], lower, attention_mask))

    def encode(self, batch: Batch) -> EncoderOutput:
        """The encoders (in 16 bits under mixed precision), returning float32 outputs."""
        dtype = autocast_dtype(self.precision, self.device)
        if dtype is None:
            return self._encode(batch)
        with torch.autocast(self.device.type, dtype=dtype):
            encoded = self._encode(batch)
        return encoded.float()

    def _encode(self, batch: Batch) -> EncoderOutput:
        if batch.lower_states is not None and self.caches_lower_layers:
            hidden = self._upper_layers(batch.lower_states.to(self.classifier.mlp[0].weight.dtype), batch.attention_mask)
            return self._heads(hidden, batch, None)
        embed = self.text_encoder.get_input_embeddings()
        words = embed(batch.input_ids)
        attention = batch.attention_mask
        regions = self.image_regions(batch)
        cross = None
        if self.tem is not None:
            words, cross = self.tem(words, attention, regions, batch.has_image)
        if self.region_tokens is not None and regions is not None:
            words = torch.cat([words, self.region_tokens(regions)], dim=1)
            image_mask = batch.has_image[:, None].expand(-1, regions.shape[1])
            attention = torch.cat([attention, image_mask], dim=1)
        if self._onnx_runs("text"):
            hidden = self.onnx.text_states(words, attention)  # the last two layers: all `_heads` reads
        else:
            hidden = self.text_encoder(inputs_embeds=words, attention_mask=attention.long(),
                                       output_hidden_states=True).hidden_states
        return self._heads(hidden, batch, cross)

    def _heads(self, hidden: tuple[torch.Tensor, ...], batch: Batch, cross: torch.Tensor | None) -> EncoderOutput:
        pooled = _text_mean(hidden[-1], batch.attention_mask)
        sentence = torch.cat([self._sentence(hidden[-1], batch.attention_mask),
                              self._sentence(hidden[-2], batch.attention_mask)], dim=-1)
        index = batch.word_index.unsqueeze(-1).expand(-1, -1, hidden[-1].shape[-1])
        word_features = hidden[-1].gather(1, index)
        names = None
        if self.config.use_arm and self.config.arm_policy == "bert":
            names = self.text_encoder(input_ids=self.attribute_name_ids,
                                      attention_mask=self.attribute_name_mask).last_hidden_state[:, 0]
        prior = batch.prior if self.config.value_prior else None
        if self.config.value_prior and prior is None:
            prior = word_features.new_zeros((*batch.word_mask.shape, 2 * len(self.config.attributes)))
        allowed = batch.allowed if self.config.category_schema else None
        if allowed is not None and batch.gold_attributes is not None:  # a labelled value is never masked out
            allowed = allowed | batch.gold_attributes.bool()
        return EncoderOutput(word_features, batch.word_mask, self.classifier(sentence), cross, names, prior, pooled,
                             allowed)

    @staticmethod
    def _allowed_tags(encoded: EncoderOutput) -> torch.Tensor | None:
        """(B, 1 + 2N) bool: O and the B/I tags of each row's allowed attributes (the joint tag order)."""
        if encoded.allowed is None:
            return None
        return torch.cat([encoded.allowed.new_ones((encoded.allowed.shape[0], 1)),
                          encoded.allowed.repeat_interleave(2, dim=1)], dim=1)

    @staticmethod
    def _selectable(scores: torch.Tensor, encoded: EncoderOutput) -> torch.Tensor:
        """ARM's scores with the attributes outside a row's category at 0, so they are never selected."""
        return scores if encoded.allowed is None else scores.masked_fill(~encoded.allowed, 0.0)

    def _joint_features(self, encoded: EncoderOutput) -> torch.Tensor:
        if encoded.prior is None:
            return encoded.word_features
        return torch.cat([encoded.word_features, encoded.prior.to(encoded.word_features.dtype)], dim=-1)

    def _sentence(self, states: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """The classifier's view of a listing: [CLS] as in the paper, or the mean over text tokens."""
        if self.config.classifier_pooling == "cls":
            return states[:, 0]
        return _text_mean(states, text_mask)

    def loss(self, encoded: EncoderOutput, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """L = CRF NLL over selected attributes + lambda * BCE(R, gold); selected = predicted OR gold.
        Without ARM: the joint CRF's NLL (+ the span scorer's cross-entropy) + lambda * BCE."""
        gold = batch.gold_attributes
        bce = nnf.binary_cross_entropy_with_logits(encoded.attribute_logits, gold)
        if self.arm is None:
            features = self._joint_features(encoded)
            states = self.joint_decoder.states(features, encoded.word_mask)
            nll = self.joint_decoder.nll(features, batch.gold_tags, encoded.word_mask, self._allowed_tags(encoded),
                                         states)
            if self.span_scorer is not None:
                logits, exists = self.span_scorer(states, encoded.word_mask, encoded.allowed)
                span = self.span_scorer.loss(logits, exists, batch.gold_tags)
                return nll + span + self.config.loss_lambda * bce, {"nll": nll.item(), "span": span.item(),
                                                                      "bce": bce.item()}
        else:
            scores = self._selectable(torch.sigmoid(encoded.attribute_logits.detach()), encoded)
            rows = self.arm.select(scores, self.config.tau_r, gold)
            if len(rows) == 0:
                nll = bce.new_zeros(())
            else:
                features = self.arm.conditioned(encoded.word_features, rows, encoded.name_features, encoded.prior)
                tags = batch.gold_tags[rows[:, 0], rows[:, 1]]
                nll = self.arm.decoder.nll(features, tags, encoded.word_mask[rows[:, 0]])
        total = nll + self.config.loss_lambda * bce
        return total, {"nll": nll.item(), "bce": bce.item()}

    def _joint_spans(self, encoded: EncoderOutput, engine: OnnxEngine | None) -> list[DecodedSpan]:
        """The joint CRF's spans, or with a span scorer the spans the two vote for (`span_scorer.vote`)."""
        features = self._joint_features(encoded)
        states = self.joint_decoder.states(features, encoded.word_mask, engine)
        found = self.joint_decoder.decode(features, encoded.word_mask, self.config.tags, self._allowed_tags(encoded),
                                          states=states)
        names = self.config.attributes
        # A joint tag id t is B or I of attribute (t - 1) // 2 (the tag order of DramConfig.tags).
        tagged = [Vote(b, (t - 1) // 2, first, end, conf) for b, first, end, t, conf
                  in zip(found.row, found.first_word, found.end_word, found.tag, found.confidence)]
        if self.span_scorer is not None:
            logits, exists = self.span_scorer(states, encoded.word_mask, encoded.allowed)
            tagged = vote(tagged, self.span_scorer.candidates(logits, exists))
        return [DecodedSpan(v.row, names[v.attribute], v.first_word, v.end_word, v.support) for v in tagged]

    @torch.no_grad()
    def decode(self, encoded: EncoderOutput, tau_r: float | None = None) -> tuple[torch.Tensor, list[DecodedSpan]]:
        """Attribute scores (B, N) and word-level spans. Runs only ARM and the decoder."""
        tau = self.config.tau_r if tau_r is None else tau_r
        scores = torch.sigmoid(encoded.attribute_logits)
        tags = self.config.tags
        engine = self.onnx if self._onnx_runs("decoder") else None
        if self.arm is None:
            return scores, self._joint_spans(encoded, engine)
        rows = self.arm.select(self._selectable(scores, encoded), tau)
        if len(rows) == 0:
            return scores, []
        features = self.arm.conditioned(encoded.word_features, rows, encoded.name_features, encoded.prior)
        found = self.arm.decoder.decode(features, encoded.word_mask[rows[:, 0]], tags, engine=engine)
        listing, attribute = rows.t().tolist()
        names = self.config.attributes
        return scores, [DecodedSpan(listing[r], names[attribute[r]], first, end, conf) for r, first, end, conf
                        in zip(found.row, found.first_word, found.end_word, found.confidence)]


def _text_mean(states: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
    """(B, H) mean of the states over the text tokens (V-IRC's appended region tokens left out)."""
    mask = text_mask.unsqueeze(-1).to(states.dtype)
    return (states[:, : mask.shape[1]] * mask).sum(1) / mask.sum(1).clamp(min=1)


def _freeze_lower_layers(text_encoder: nn.Module, fraction: float) -> int:
    """Freeze the embeddings and the lower `fraction` of the layers (BERT-style encoders); how many."""
    if not fraction:
        return 0
    layers = getattr(getattr(text_encoder, "encoder", None), "layer", None)
    if layers is None or not hasattr(text_encoder, "embeddings"):
        raise ValueError("frozen_fraction needs a BERT-style encoder (embeddings + encoder.layer); set it to 0.")
    if not 0 <= fraction < 1:
        raise ValueError(f"frozen_fraction must be at least 0 and below 1, got {fraction}.")
    n_layers = int(len(layers) * fraction)
    text_encoder.embeddings.requires_grad_(False)
    for layer in layers[:n_layers]:
        layer.requires_grad_(False)
    # What the encoder shares across layers (MPNet's relative position bias) feeds the frozen layers
    # too: it stays as pretrained, or their cached outputs would go stale.
    for name, parameter in text_encoder.encoder.named_parameters():
        if not name.startswith("layer."):
            parameter.requires_grad_(False)
    return n_layers
