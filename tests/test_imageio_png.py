"""The plain-PNG shortcut gives exactly what Pillow's own PNG path gives, or steps aside."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from splitaudit import imageio
from splitaudit.imageio import _decode_plain_png, open_image

RNG = np.random.default_rng(17)


def _png(mode: str = "L", size=(28, 28), **save) -> bytes:
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    buffer = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, shape, dtype=np.uint8), mode).save(buffer, "PNG", **save)
    return buffer.getvalue()


def _chunk(cid: bytes, body: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(cid + body) if crc is None else crc
    return struct.pack(">I", len(body)) + cid + body + struct.pack(">I", crc)


def _with_chunk(data: bytes, chunk: bytes) -> bytes:
    """Insert ``chunk`` right after IHDR (offset 33)."""
    return data[:33] + chunk + data[33:]


def _pillow(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.copy()


def check_same_as_open_image(path, data: bytes) -> None:
    """open_image with the shortcut equals open_image without it (Pillow's PNG path), field by field."""
    path.write_bytes(data)
    got = open_image(path)
    saved = imageio._decode_plain_png
    imageio._decode_plain_png = lambda data, max_pixels: None
    try:
        want = open_image(path)
    finally:
        imageio._decode_plain_png = saved
    fields = ("reason", "format", "mode", "width", "height", "scale", "data", "quantization")
    assert [getattr(got, f) for f in fields] == [getattr(want, f) for f in fields]
    assert got.ok == want.ok
    if got.ok:
        assert got.image.mode == want.image.mode and got.image.tobytes() == want.image.tobytes()


@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize("save", [{}, {"optimize": True}, {"compress_level": 0}, {"dpi": (300, 300)}])
def test_plain_pngs_take_the_shortcut_with_identical_pixels(mode, save, tmp_path):
    data = _png(mode, (31, 17), **save)
    image = _decode_plain_png(data, None)
    assert image is not None and image.mode == mode and image.size == (31, 17)
    assert image.tobytes() == _pillow(data).tobytes()
    check_same_as_open_image(tmp_path / "a.png", data)


def test_harmless_chunks_are_accepted_only_with_a_valid_length_and_checksum(tmp_path):
    data = _png()
    assert _decode_plain_png(_with_chunk(data, _chunk(b"gAMA", struct.pack(">I", 45455))), None) is not None
    assert _decode_plain_png(_with_chunk(data, _chunk(b"gAMA", b"\0\0")), None) is None  # Pillow: error
    assert _decode_plain_png(_with_chunk(data, _chunk(b"gAMA", b"\0\0\0\1", crc=0)), None) is None
    for name, body in ((b"tEXt", b"Raw profile type exif\0x"), (b"eXIf", b"MM\0*"), (b"tRNS", b"\0\1")):
        assert _decode_plain_png(_with_chunk(data, _chunk(name, body)), None) is None, name
        check_same_as_open_image(tmp_path / "chunk.png", _with_chunk(data, _chunk(name, body)))
    broken = _with_chunk(data, _chunk(b"gAMA", b"\0\0"))
    check_same_as_open_image(tmp_path / "short_gama.png", broken)


@pytest.mark.parametrize("mode", ["1", "P", "LA", "RGBA", "I;16"])
def test_other_modes_and_interlaced_files_step_aside(mode, tmp_path):
    image = Image.fromarray(RNG.integers(0, 256, (20, 24, 3), dtype=np.uint8)).convert(mode) \
        if mode != "I;16" else Image.fromarray(RNG.integers(0, 60000, (20, 24)).astype(np.uint16))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    assert _decode_plain_png(buffer.getvalue(), None) is None
    interlaced = bytearray(_png())
    interlaced[28] = 1  # IHDR interlace byte; fix the checksum so only the flag differs
    interlaced[29:33] = struct.pack(">I", zlib.crc32(bytes(interlaced[12:29])))
    assert _decode_plain_png(bytes(interlaced), None) is None


def test_pixel_limit_and_trailing_bytes(tmp_path):
    data = _png(size=(30, 30))
    assert _decode_plain_png(data, 899) is None and _decode_plain_png(data, 900) is not None
    path = tmp_path / "big.png"
    path.write_bytes(data)
    assert open_image(path, max_pixels=899).reason == "decompression bomb: 900 pixels > limit 899"
    assert _decode_plain_png(data + b"junk", None) is None
    check_same_as_open_image(tmp_path / "junk.png", data + b"junk")


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(0, 10_000), flip=st.integers(0, 10_000), bit=st.integers(0, 7),
       how=st.sampled_from(["truncate", "flip", "both"]))
def test_damaged_files_match_pillow(tmp_path_factory, cut, flip, bit, how):
    data = bytearray(_png("L" if flip % 2 else "RGB", (19, 23)))
    if how in ("flip", "both"):
        data[flip % len(data)] ^= 1 << bit
    if how in ("truncate", "both"):
        data = data[: max(1, cut % len(data))]
    check_same_as_open_image(tmp_path_factory.mktemp("bad") / "bad.png", bytes(data))
