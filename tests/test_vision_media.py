"""Image checks before the model: bad files get a clear MediaError, every mode comes out upright RGB."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.media.inputs import ImageLimits, check_image, load_image
from engine.errors import MediaError
from tests.media_fixtures import image_bytes, png_claiming


def noise(size=(64, 48), mode="RGB", seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(arr).convert(mode)


@pytest.mark.parametrize("data, words", [
    (b"", "empty"),
    (b"hello, this is plain text and not a picture at all", "not an image"),
    (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n", "not an image"),  # EPS would run Ghostscript
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "not an image"),
])
def test_not_an_image(data, words):
    with pytest.raises(MediaError, match=words):
        load_image(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_image(fmt):
    whole = image_bytes(noise((128, 96)), fmt)
    assert load_image(whole).image.size == (128, 96)
    with pytest.raises(MediaError, match="truncated or damaged|damaged"):
        load_image(whole[: len(whole) // 2])


def test_decompression_bomb_header_refused_before_decoding():
    with pytest.raises(MediaError, match="decompression bomb|megapixels"):
        load_image(png_claiming(50_000, 50_000))


def test_too_many_megapixels():
    # 50 MP: under PIL's own bomb limit, over ours; refused from the header alone.
    with pytest.raises(MediaError, match="megapixels"):
        load_image(png_claiming(10_000, 5_000))


def test_huge_side():
    data = image_bytes(Image.new("L", (13_000, 2), 128))
    with pytest.raises(MediaError, match="no side may be longer than 12000"):
        load_image(data)


def test_too_many_bytes():
    data = image_bytes(noise((64, 64)), "PNG")
    with pytest.raises(MediaError, match="MB"):
        load_image(data, ImageLimits(max_bytes=len(data) - 1))


def test_missing_path(tmp_path):
    with pytest.raises(MediaError, match="not found"):
        load_image(tmp_path / "nope.png")


@pytest.mark.parametrize("mode, fmt", [("CMYK", "JPEG"), ("RGBA", "PNG"), ("L", "PNG"), ("LA", "PNG"),
                                       ("P", "PNG"), ("1", "PNG"), ("I;16", "PNG"), ("RGB", "WEBP"),
                                       ("RGB", "BMP"), ("RGB", "GIF"), ("CMYK", "TIFF")])
def test_every_mode_comes_out_rgb(mode, fmt):
    img = noise((40, 30)).convert(mode) if mode != "I;16" else Image.fromarray(
        (np.arange(40 * 30).reshape(30, 40) * 50).astype(np.uint16))
    checked = load_image(image_bytes(img, fmt))
    assert checked.image.mode == "RGB"
    assert checked.image.size == (40, 30)
    assert checked.original_mode in (mode, "I;16", "I", "P", "RGB", "L")  # PNG/GIF may store a close mode
    assert checked.format == fmt


def test_transparency_lands_on_white():
    img = Image.new("RGBA", (10, 10), (255, 0, 0, 0))   # fully transparent red
    img.putpixel((0, 0), (0, 0, 255, 255))               # one opaque blue pixel
    rgb = load_image(image_bytes(img)).image
    assert rgb.getpixel((5, 5)) == (255, 255, 255)
    assert rgb.getpixel((0, 0)) == (0, 0, 255)


def test_palette_with_transparency():
    img = Image.new("P", (8, 8), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.info["transparency"] = 0
    img.putpixel((1, 1), 1)
    rgb = load_image(image_bytes(img, "PNG", transparency=0)).image
    assert rgb.getpixel((0, 0)) == (255, 255, 255)
    assert rgb.getpixel((1, 1)) == (255, 0, 0)


def test_sixteen_bit_gray_is_scaled_not_clipped():
    arr = np.full((4, 4), 32768, dtype=np.uint16)
    rgb = load_image(image_bytes(Image.fromarray(arr))).image
    r, g, b = rgb.getpixel((0, 0))
    assert 120 <= r <= 135 and r == g == b


def test_exif_rotation_is_applied():
    # Stored wide: left half red, right half blue. EXIF orientation 6 = rotate 90 degrees clockwise to show.
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    checked = load_image(image_bytes(img, "JPEG", exif=exif, quality=95))
    assert checked.rotated
    assert checked.image.size == (20, 40)
    top, bottom = checked.image.getpixel((10, 5)), checked.image.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 60, top          # red on top after the clockwise turn
    assert bottom[2] > 200 and bottom[0] < 60, bottom


def test_no_exif_is_not_rotated():
    checked = load_image(image_bytes(Image.new("RGB", (40, 20)), "JPEG"))
    assert not checked.rotated and checked.image.size == (40, 20)


def test_large_image_is_shrunk_for_the_model():
    checked = load_image(image_bytes(Image.new("RGB", (3000, 1000), (10, 20, 30)), "PNG"))
    assert checked.resized and max(checked.image.size) == 2048
    assert checked.original_size == (3000, 1000)


def test_pil_input_is_checked_too():
    img = Image.new("RGBA", (30, 20), (0, 255, 0, 255))
    checked = check_image(img)
    assert checked.image.mode == "RGB" and img.mode == "RGBA"   # the caller's image is left alone
    with pytest.raises(MediaError, match="no side"):
        check_image(Image.new("L", (13_000, 1)))


def test_media_error_is_a_value_error():
    assert issubclass(MediaError, ValueError)
