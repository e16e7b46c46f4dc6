"""The rendered report in headless Chromium, without network: what a reader's browser shows (issue 30).

`python -m lib.pipeline.browser REPORT PNG` writes the screenshot of a report's first screen; `make docs` takes it of
the committed report for the README, and the browser test (tests/test_browser.py) of the smoke report.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

from lib import ROOT
from lib.core.errors import UserFacing

BROWSER = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
# Any host name resolves to nothing and no proxy is tried: the page gets no network at all.
OFFLINE = ["--headless", "--no-sandbox", "--disable-gpu", "--no-proxy-server",
           "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=10000"]
FIRST_SCREEN = (1280, 900)  # a laptop's browser window, in CSS pixels: what a reader sees before scrolling
REPORT = ROOT / "reports" / "report.html"
README_SHOT = ROOT / "reports" / "figures" / "report-first-screen.png"


class BrowserError(UserFacing, RuntimeError):
    """No browser, no report, or no screenshot; the message says which and what to do."""


def first_screen(report: Path, png: Path, size: tuple[int, int] = FIRST_SCREEN) -> Path:
    """Write the screenshot of `report`'s first screen (window `size`) to `png`; the browser's error if it wrote none."""
    if BROWSER is None:
        raise BrowserError("no Chromium found (Debian: apt install chromium); the screenshot needs a browser")
    if not Path(report).is_file():
        raise BrowserError(f"no report at {report}: render it first (make report)")
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    width, height = size
    result = subprocess.run([BROWSER, *OFFLINE, "--hide-scrollbars", f"--window-size={width},{height}",
                             f"--screenshot={png.resolve()}", Path(report).resolve().as_uri()],
                            capture_output=True, text=True, timeout=120)
    if not png.exists():
        raise BrowserError(f"Chromium wrote no screenshot of {report}: {result.stderr.strip()[-500:]}")
    return shrink(png)


def shrink(png: Path, colours: int = 64) -> Path:
    """Store a screenshot with a palette of `colours` (no dithering): a page of text and flat colours stays sharp at
    a third of the bytes (263 KB -> 87 KB for a report's first screen), which is what the repository keeps."""
    with Image.open(png) as image:
        palette = image.convert("RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette.save(png, optimize=True)
    return png


def main(argv: list[str]) -> int:
    """`python -m lib.pipeline.browser [REPORT [PNG]]` (default: the committed report, for the README)."""
    report = Path(argv[0]) if argv else REPORT
    png = Path(argv[1]) if len(argv) > 1 else README_SHOT
    if BROWSER is None:
        print("screenshot skipped: no Chromium (Debian: apt install chromium)")
        return 0
    try:
        print(f"first screen of {report} -> {first_screen(report, png)}")
    except BrowserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:3]))
