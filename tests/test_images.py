"""Every awkward photo becomes upright RGB, or an ImageError a merchandiser can act on."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dram.data.images import MAX_SIDE, load_image
from dram.errors import ImageError


def _encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def test_cmyk_jpeg_becomes_rgb() -> None:
    image = load_image(_encoded(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"))
    red, green, blue = image.getpixel((4, 4))
    assert image.mode == "RGB" and red > 200 and green < 60 and blue < 60


@pytest.mark.parametrize("mode, colour", [("RGBA", (255, 0, 0, 0)), ("LA", (0, 0))])
def test_transparent_pixels_are_composited_on_white(mode: str, colour: tuple) -> None:
    image = load_image(_encoded(Image.new(mode, (4, 4), colour), "PNG"))
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (255, 255, 255)


def test_palette_with_transparency_is_composited_on_white() -> None:
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image = load_image(_encoded(palette, "PNG", transparency=1))
    assert image.getpixel((1, 1)) == (255, 255, 255)


def test_grayscale_becomes_three_equal_channels() -> None:
    image = load_image(_encoded(Image.new("L", (5, 5), 77), "PNG"))
    assert image.mode == "RGB" and image.getpixel((2, 2)) == (77, 77, 77)


def test_16_bit_grayscale_is_scaled_not_clipped() -> None:
    sixteen = Image.fromarray(np.full((6, 6), 32896, dtype=np.uint16))
    assert load_image(_encoded(sixteen, "PNG")).getpixel((0, 0)) == (128, 128, 128)


def test_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (6, 6), c) for c in ((255, 0, 0), (0, 0, 255))]
    data = _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    red, _, blue = load_image(data).getpixel((3, 3))
    assert red > 200 and blue < 50


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image = load_image(_encoded(Image.new("RGB", (40, 20), "white"), "JPEG", exif=exif))
    assert image.size == (20, 40)


def test_one_pixel_image_is_returned_as_is() -> None:
    assert load_image(_encoded(Image.new("RGB", (1, 1), (9, 8, 7)), "PNG")).size == (1, 1)


def test_huge_image_is_downscaled_to_max_side() -> None:
    image = load_image(Image.new("RGB", (MAX_SIDE * 2 + 10, 1000), "blue"))
    assert max(image.size) == MAX_SIDE and image.size[1] == pytest.approx(1000 * MAX_SIDE / (MAX_SIDE * 2 + 10), abs=1)


def test_decompression_bomb_gives_image_error(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _encoded(Image.new("L", (100, 100)), "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 10,000 px is over twice the limit
    with pytest.raises(ImageError, match="too large"):
        load_image(data)


def test_image_just_over_the_pixel_limit_still_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _encoded(Image.new("L", (40, 40)), "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1,600 px only triggers Pillow's warning
    assert load_image(data).size == (40, 40)


@pytest.mark.parametrize("source, reason", [
    (b"this is a text file, not a photo", "not an image"),
    (b"", "empty"),
])
def test_unreadable_bytes_give_a_merchandiser_message(source: bytes, reason: str) -> None:
    with pytest.raises(ImageError, match=reason) as error:
        load_image(source)
    assert str(error.value).startswith("The photo could not be read") and "Upload a JPEG, PNG or WebP." in str(error.value)


def test_truncated_jpeg_gives_image_error() -> None:
    data = _encoded(Image.effect_noise((64, 64), 50).convert("RGB"), "JPEG")
    with pytest.raises(ImageError, match="incomplete or damaged"):
        load_image(data[: len(data) // 2])


def test_jpeg_cut_inside_its_header_gives_image_error(tmp_path: Path) -> None:
    """Cut after 500 bytes, Pillow fails while still reading the header (OSError "Truncated File Read")."""
    data = _encoded(Image.effect_noise((64, 64), 50).convert("RGB"), "JPEG")
    (tmp_path / "cut.jpg").write_bytes(data[:500])
    for source in (data[:500], tmp_path / "cut.jpg"):
        with pytest.raises(ImageError, match="incomplete or damaged"):
            load_image(source)


def test_missing_file_gives_image_error(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="does not exist"):
        load_image(tmp_path / "nope.jpg")


def test_path_and_pil_input_give_rgb_without_touching_the_original(tmp_path: Path) -> None:
    original = Image.new("RGBA", (3, 3), (0, 0, 0, 0))
    path = tmp_path / "p.webp"
    original.save(path, "WEBP", lossless=True)
    assert load_image(path).mode == "RGB"
    assert load_image(original).mode == "RGB" and original.mode == "RGBA"
