"""Render a splitaudit HTML report to PNG with headless Chromium (to look at it, or in CI).

    apt-get install chromium
    python examples/screenshot.py audit/report.html report.png [--height 3000]

Exit code 0 when the PNG was written; the page's own images and plots are
embedded, so no network is needed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(html: Path, png: Path, *, width: int = 1280, height: int = 3000, timeout: float = 90) -> Path:
    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError("no chromium found: apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                        f"--screenshot={png.resolve()}", html.resolve().as_uri()],
                       check=True, timeout=timeout, capture_output=True)
    if not png.is_file() or png.stat().st_size == 0:
        raise RuntimeError(f"chromium wrote no screenshot to {png}")
    return png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--height", type=int, default=3000)
    args = parser.parse_args(argv)
    print(screenshot(args.html, args.png, height=args.height))
    return 0


if __name__ == "__main__":
    sys.exit(main())
