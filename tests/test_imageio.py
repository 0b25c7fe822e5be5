"""Safe decoding: every mode normalised the same way, bad files become reasons."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from splitaudit.imageio import DEFAULT_MAX_PIXELS, _reason_for, normalize_mode, open_image

RNG = np.random.default_rng(7)


def _rgb(h=23, w=37):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _make(mode: str) -> Image.Image:
    base = Image.fromarray(_rgb())
    if mode in ("I;16", "I", "F"):
        scale = {"I;16": 257, "I": 257, "F": 1 / 255}[mode]
        arr = np.asarray(base.convert("L")).astype(np.float64) * scale
        dtype = {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]
        return Image.fromarray(arr.astype(dtype))
    if mode == "P":
        return base.quantize(16)
    return base.convert(mode)


@pytest.mark.parametrize(
    "mode", ["1", "L", "P", "LA", "RGB", "RGBA", "CMYK", "YCbCr", "I;16", "I", "F", "PA"]
)
def test_every_mode_normalises_to_rgb_or_l(mode, tmp_path):
    image = _make(mode) if mode != "PA" else _make("P").convert("PA")
    out = normalize_mode(image)
    assert out.mode in ("RGB", "L")
    assert out.size == image.size
    if mode in ("1", "L", "LA", "I;16", "I", "F"):
        assert out.mode == "L"


def test_high_bit_depth_is_scaled_not_clipped():
    ramp = np.linspace(0, 65535, 64).astype(np.uint16).reshape(8, 8)
    out = np.asarray(normalize_mode(Image.fromarray(ramp)))
    assert out.min() == 0 and out.max() == 255
    assert len(np.unique(out)) > 32  # clipping would leave mostly 255
    floats = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    assert np.asarray(normalize_mode(Image.fromarray(floats))).max() == 255


def test_transparency_is_composited_on_white():
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert normalize_mode(rgba).getpixel((0, 0)) == (255, 255, 255)
    half = Image.new("RGBA", (4, 4), (0, 0, 0, 128))
    assert 120 <= normalize_mode(half).getpixel((0, 0))[0] <= 135
    la = Image.new("LA", (4, 4), (0, 0))
    assert normalize_mode(la).getpixel((0, 0)) == 255
    pal = Image.new("P", (4, 4), 0)
    pal.putpalette([0, 0, 0] * 256)
    pal.info["transparency"] = 0
    assert normalize_mode(pal).getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize("fmt,mode", [
    ("PNG", "RGBA"), ("PNG", "I;16"), ("PNG", "1"), ("JPEG", "CMYK"), ("TIFF", "F"),
    ("BMP", "P"), ("GIF", "P"), ("WEBP", "RGBA"), ("TIFF", "I"),
])
def test_files_of_every_mode_open(fmt, mode, tmp_path):
    path = tmp_path / f"img.{fmt.lower()}"
    _make(mode).save(path, fmt)
    for reduce_to in (None, 8):
        loaded = open_image(path, reduce_to=reduce_to)
        assert loaded.ok, loaded.reason
        assert loaded.image.mode in ("RGB", "L")
        assert (loaded.width, loaded.height) == (37, 23)
        assert loaded.format == fmt and loaded.file_size == path.stat().st_size


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_bad_files_become_reasons(tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray(_rgb(64, 64)).save(good, quality=90)
    data = good.read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello, not an image")
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "bomb.png").write_bytes(_png_header_only(30000, 30000))
    expected = {
        "truncated.jpg": "truncated image file",
        "empty.png": "empty file (0 bytes)",
        "text.png": "not an image (cannot identify format)",
        "folder.png": "is a directory",
        "missing.png": "file not found",
        "bomb.png": f"decompression bomb: 900000000 pixels > limit {DEFAULT_MAX_PIXELS}",
    }
    for name, reason in expected.items():
        loaded = open_image(tmp_path / name)
        assert not loaded.ok and loaded.image is None
        assert loaded.reason == reason, name
    assert open_image(good).ok
    assert os.listdir(tmp_path) == os.listdir(tmp_path)  # nothing written beside
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["good.jpg", *[n for n in expected if n != "missing.png"]]
    )


def test_pixel_limit_is_a_parameter_and_warning_zone_is_refused(tmp_path):
    path = tmp_path / "small.png"
    Image.fromarray(_rgb(20, 20)).save(path)
    loaded = open_image(path, max_pixels=100)
    assert loaded.reason == "decompression bomb: 400 pixels > limit 100"
    assert open_image(path, max_pixels=None).ok
    # Between Pillow's limit and twice it Pillow only warns: we refuse.
    warn_zone = tmp_path / "warn.png"
    warn_zone.write_bytes(_png_header_only(12000, 12000))  # 144M: 1x < n < 2x of 89.5M
    assert open_image(warn_zone).reason.startswith("decompression bomb: 144000000 pixels")
    with pytest.raises(ValueError, match="max_pixels"):
        open_image(path, max_pixels=0)
    with pytest.raises(TypeError, match="max_pixels"):
        open_image(path, max_pixels="big")


def test_permission_denied(tmp_path):
    assert _reason_for(PermissionError(13, "Permission denied")) == "permission denied"
    path = tmp_path / "locked.png"
    Image.fromarray(_rgb()).save(path)
    path.chmod(0)
    try:
        readable = os.access(path, os.R_OK)  # root can read anyway
        loaded = open_image(path)
        assert loaded.ok == readable
        if not readable:
            assert loaded.reason == "permission denied"
    finally:
        path.chmod(0o644)


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, 20:] = 255  # right half white
    image = Image.fromarray(arr)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    path = tmp_path / "rotated.jpg"
    image.save(path, quality=95, exif=exif.tobytes())
    loaded = open_image(path)
    assert (loaded.width, loaded.height) == (20, 40)
    assert loaded.image.size == (20, 40)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"), dtype=float)
    assert np.abs(np.asarray(loaded.image, dtype=float) - expected).max() <= 1
    got = np.asarray(loaded.image.convert("L"), dtype=float)
    assert got[35:, :].mean() > 200 and got[:5, :].mean() < 50  # white half now at the bottom


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [Image.new("L", (16, 16), 0), Image.new("L", (16, 16), 255)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)
    loaded = open_image(path)
    assert loaded.ok and np.asarray(loaded.image.convert("L")).max() < 10


def test_fast_decode_reduces_jpeg_and_png(tmp_path):
    Image.fromarray(_rgb(480, 640)).save(tmp_path / "big.jpg", quality=90)
    Image.fromarray(_rgb(480, 640)).save(tmp_path / "big.png")
    jpg = open_image(tmp_path / "big.jpg", reduce_to=32)
    assert jpg.scale == 8 and jpg.image.size == (80, 60)
    png = open_image(tmp_path / "big.png", reduce_to=32)
    assert png.scale == 7 and min(png.image.size) >= 64
    assert (jpg.width, jpg.height) == (640, 480) == (png.width, png.height)


@pytest.mark.parametrize("mode", ["P", "1", "I;16"])
def test_fast_decode_reduces_modes_pillow_cannot_reduce(mode, tmp_path):
    # Pillow's reduce() refuses P, 1 and I;16: these are reduced after normalising.
    base = Image.fromarray(RNG.integers(0, 256, (200, 180), dtype=np.uint8))
    image = {"P": base.convert("RGB").quantize(16), "1": base.convert("1"),
             "I;16": Image.fromarray(np.asarray(base).astype(np.uint16) * 257)}[mode]
    path = tmp_path / "big.png"
    image.save(path)
    loaded = open_image(path, reduce_to=32)
    assert loaded.ok, loaded.reason
    assert loaded.mode == mode and (loaded.width, loaded.height) == (180, 200)
    full = open_image(path).image
    assert loaded.scale >= 2 and loaded.image.size == full.reduce(loaded.scale).size
    assert np.array_equal(np.asarray(loaded.image), np.asarray(full.reduce(loaded.scale)))


def test_extension_that_lies_falls_back_to_probing(tmp_path):
    path = tmp_path / "really_a_jpeg.png"
    Image.fromarray(_rgb()).save(path, "JPEG")
    loaded = open_image(path)
    assert loaded.ok and loaded.format == "JPEG"
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    assert open_image(tmp_path / "junk.png").reason == "not an image (cannot identify format)"
