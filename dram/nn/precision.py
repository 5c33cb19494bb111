"""Mixed precision: the encoders in bfloat16/float16 on a GPU, ARM and the CRF always in float32.

The encoders hold nearly all the arithmetic and tolerate 16-bit matmuls; the CRF's sums of log
scores over a sequence do not, so encoder outputs are cast back to float32 before ARM and the CRF
(`EncoderOutput.float`). "auto" means bfloat16 on a CUDA device that has it and float32 elsewhere:
without bfloat16 instructions a CPU emulates them, and every figure of the CPU models was measured
in float32, so on a CPU bf16 is asked for (it pays on CPUs with AVX512-BF16 or AMX: BENCHMARKS.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from dram.errors import DramInputError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class RunSettings:
    """How a loaded model runs in this process, chosen per run and never saved with the checkpoint.

    The one home of these defaults: the app, every job's options (`training.options.JobSettings`
    extends this class) and the loaders all read them from here.
    """

    precision: str = field(default="auto", metadata={
        "help": "the encoders' arithmetic (ARM and the CRF stay in fp32)", "choices": PRECISIONS,
        "default_help": "{default}: bf16 on a GPU that has it, else fp32"})


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The 16-bit type the encoders run in, or None for float32."""
    if precision not in PRECISIONS:
        raise DramInputError(f"Unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}.")
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    if precision == "fp16" and device.type != "cuda":
        raise DramInputError("fp16 needs a CUDA device: use bf16 or fp32 on the CPU.")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]

