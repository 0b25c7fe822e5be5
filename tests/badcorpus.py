"""Generate a corpus of hostile inputs (no committed binaries): used by test_bad_input.py.

Each entry records what splitaudit must do with it: ``ok`` (read correctly),
``unreadable`` (listed with a reason containing ``reason``) or ``ignored``
(not an image extension / not a file: listed in ``split.ignored``).
"""

from __future__ import annotations

import io
import os
import stat
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass
class Case:
    name: str          # file name relative to the split folder
    expect: str        # ok | unreadable | ignored | absent
    reason: str = ""   # a fragment of the expected reason (unreadable)


def _textured(size=(64, 48), seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(arr).convert(mode)


def _bomb_png(path: Path, width: int, height: int) -> None:
    """A valid one-colour grayscale PNG of width×height, written without allocating it."""
    raw_row = b"\x00" + b"\x00" * width
    comp = zlib.compressobj(9)
    chunks = [comp.compress(raw_row) for _ in range(height)]
    data = b"".join(chunks) + comp.flush()

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def build(folder: Path) -> list[Case]:
    """Write the corpus into ``folder`` (a split folder) and return its cases."""
    folder.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    good = _textured(seed=1)
    buf = io.BytesIO()
    good.save(buf, "JPEG", quality=90)
    jpeg = buf.getvalue()
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    cases.append(Case("truncated.jpg", "unreadable", "truncated"))
    buf = io.BytesIO()
    good.save(buf, "PNG")
    png = buf.getvalue()
    (folder / "truncated.png").write_bytes(png[: len(png) // 2])
    cases.append(Case("truncated.png", "unreadable", ""))
    (folder / "empty.jpg").write_bytes(b"")
    cases.append(Case("empty.jpg", "unreadable", "empty"))
    (folder / "text.jpg").write_text("this is not an image\n")
    cases.append(Case("text.jpg", "unreadable", "not an image"))
    _bomb_png(folder / "bomb.png", 30000, 30000)
    cases.append(Case("bomb.png", "unreadable", "bomb"))
    _textured(seed=2).convert("CMYK").save(folder / "cmyk.jpg", quality=90)
    cases.append(Case("cmyk.jpg", "ok"))
    Image.fromarray((np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20)).save(folder / "sixteen.png")
    cases.append(Case("sixteen.png", "ok"))
    pal = _textured(seed=3).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.info["transparency"] = 0
    pal.save(folder / "palette_transparent.png", transparency=0)
    cases.append(Case("palette_transparent.png", "ok"))
    rot = _textured(size=(80, 40), seed=4)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    rot.save(folder / "exif_rotated.jpg", exif=exif.tobytes(), quality=90)
    cases.append(Case("exif_rotated.jpg", "ok"))
    frames = [_textured(seed=s).convert("P") for s in (5, 6, 7)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    cases.append(Case("animated.gif", "ok"))
    Image.new("RGB", (1, 1), (200, 10, 10)).save(folder / "one_pixel.png")
    cases.append(Case("one_pixel.png", "ok"))
    _textured(size=(4000, 3), seed=8).save(folder / "extreme_aspect.png")
    cases.append(Case("extreme_aspect.png", "ok"))
    _textured(seed=9).save(folder / "ünïcödé 名前.png")
    cases.append(Case("ünïcödé 名前.png", "ok"))
    _textured(seed=10).save(folder / "spaces and\nnewline.png")
    cases.append(Case("spaces and\nnewline.png", "ok"))
    _textured(seed=11).save(folder / "<img src=x onerror=alert(1)>.png")
    cases.append(Case("<img src=x onerror=alert(1)>.png", "ok"))
    (folder / "<svg onload=alert(1)>.jpg").write_text("<svg onload=alert(1)>")
    cases.append(Case("<svg onload=alert(1)>.jpg", "unreadable", "not an image"))
    raw = os.fsencode(folder) + b"/latin1_\xe9t\xe9.png"
    with open(raw, "wb") as f:
        _textured(seed=12).save(f, "PNG")
    cases.append(Case("latin1_\\xe9t\\xe9.png", "ok"))
    _textured(seed=13).save(folder / "no_read.png")
    os.chmod(folder / "no_read.png", 0)
    cases.append(Case("no_read.png", "unreadable" if os.geteuid() != 0 else "ok", "permission"))
    (folder / "dir_named.jpg").mkdir()
    cases.append(Case("dir_named.jpg", "absent"))
    (folder / "loop").mkdir()
    os.symlink(folder / "loop", folder / "loop" / "again")
    cases.append(Case("loop", "absent"))
    (folder / "readme.txt").write_text("notes")
    cases.append(Case("readme.txt", "ignored"))
    _textured(seed=14, mode="L").save(folder / "UPPER.JPEG", quality=90)
    cases.append(Case("UPPER.JPEG", "ok"))
    return cases


def restore_permissions(folder: Path) -> None:
    """Give back read permission so tmp_path can be cleaned up."""
    for p in folder.rglob("*"):
        try:
            if not p.is_symlink():
                os.chmod(p, os.stat(p).st_mode | stat.S_IRUSR | stat.S_IWUSR)
        except OSError:
            pass
