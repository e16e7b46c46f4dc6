"""The smoke report in a real browser: headless Chromium, no network, every figure decodes."""
from __future__ import annotations

import json
import re
import subprocess

import pytest
from bs4 import BeautifulSoup

from lib.analysis.markup import CAPTION
from lib.pipeline import render
from lib.pipeline.browser import BROWSER, FIRST_SCREEN, OFFLINE, first_screen
from lib.pipeline.config import study
from tests.smoke import smoke_report

# Appended to a copy of the report: once everything loaded, write what the page shows into the DOM.
PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const check = {images: images.length, decoded: images.filter(i => i.complete && i.naturalWidth > 0).length,
    figures: [...document.querySelectorAll("p.figure-caption")].map(p => p.textContent).filter(t => /^Figure \\d/.test(t)),
    answers_on_first_screen: (() => { const a = document.querySelector("div.answers");
      return !!a && a.getBoundingClientRect().bottom <= window.innerHeight &&
        a.querySelectorAll("span.verdict").length; })(),
    contents_land: [...document.querySelectorAll("nav#contents a")].every(a => {
      const target = document.getElementById(decodeURIComponent(a.getAttribute("href").slice(1)));
      if (!target) return false;  // lands at the top of the window, below the fixed code toggle (not behind it)
      target.scrollIntoView(); const top = target.getBoundingClientRect().top;
      return top >= document.getElementById("code-toggle").getBoundingClientRect().bottom && top < 0.1 * innerHeight; }),
    claims_rows: document.querySelectorAll("table.claims tbody tr").length,
    requests: performance.getEntriesByType("resource").map(e => e.name).filter(n => !/^(data|file):/.test(n))};
  const out = document.createElement("pre"); out.id = "browser-check"; out.textContent = JSON.stringify(check);
  document.body.appendChild(out);
});
</script>"""


@pytest.mark.slow
@pytest.mark.pipeline
@pytest.mark.skipif(BROWSER is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)")
def test_report_renders_offline_in_headless_chromium(tmp_path):
    smoke_report()
    page = tmp_path / "report.html"
    page.write_text(render.report_path(study("smoke")).read_text() + PROBE)
    width, height = FIRST_SCREEN
    dom = subprocess.run([BROWSER, *OFFLINE, f"--window-size={width},{height}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', dom)
    assert found, f"the page did not finish loading: {dom[-500:]}"
    check = json.loads(found.group(1))
    assert check["images"] >= 3 and check["decoded"] == check["images"], check
    assert len(check["figures"]) >= 10 and check["claims_rows"] >= 4, check
    assert check["answers_on_first_screen"] == 5, "the five claims' verdicts are not all on the first screen"
    assert check["contents_land"], "a link of the table of contents does not land on its section, clear of the code toggle"
    assert check["requests"] == [], "the report asked the network for: " + ", ".join(check["requests"])
    # The README's picture is this screenshot of the committed report (`make docs`); here, of the smoke report.
    shot = first_screen(render.report_path(study("smoke")), tmp_path / "first-screen.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.pipeline
def test_the_smoke_report_answers_first_numbers_everything_and_shows_no_noise():
    """Issue 30: the answers before the first section, every internal link landing, every figure numbered and
    captioned, and nothing a step printed for its log (stderr, progress bars, warnings) in the page."""
    smoke_report()
    soup = BeautifulSoup(render.report_path(study("smoke")).read_text(), "html.parser")
    assert not soup.select('[data-mime-type="application/vnd.jupyter.stderr"]'), "stderr in the report"
    text = soup.get_text()
    assert not re.search(r"\d+%\|[^|]*\|", text) and "it/s]" not in text, "a progress bar in the report"
    assert "Warning" not in text
    answers, first_section = soup.find("div", class_="answers"), soup.find("h2")
    assert answers is not None and first_section in answers.find_all_next("h2")
    assert len(answers.find_all("span", class_="verdict")) == 5  # the original's four claims and claim 5
    ids = {tag["id"] for tag in soup.find_all(id=True)}
    dead = [a["href"] for a in soup.find_all("a", href=True) if a["href"].startswith("#") and a["href"][1:] not in ids]
    assert not dead, f"links to no section: {dead}"
    captions = [p.get_text() for p in soup.find_all("p", class_=CAPTION)]
    images = soup.select(".jp-OutputArea-output img")
    assert len(captions) == len(images) >= 10 and all(c.startswith(f"Figure {k}. ") for k, c in enumerate(captions, 1))
    assert [a.get_text() for a in soup.select("nav#contents > ol > li > a")][:2] == ["1 The models", "2 2-D features"]


def test_without_a_browser_the_screenshot_says_what_to_install(monkeypatch, tmp_path, capsys):
    from lib.pipeline import browser

    monkeypatch.setattr(browser, "BROWSER", None)
    with pytest.raises(RuntimeError, match="apt install chromium"):
        browser.first_screen(tmp_path / "report.html", tmp_path / "shot.png")
    assert browser.main([str(tmp_path / "report.html"), str(tmp_path / "shot.png")]) == 0  # `make docs` goes on
    assert "screenshot skipped" in capsys.readouterr().out and not (tmp_path / "shot.png").exists()


@pytest.mark.skipif(BROWSER is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)")
def test_a_missing_report_is_named_not_photographed(tmp_path, capsys):
    from lib.pipeline import browser

    assert browser.main([str(tmp_path / "report.html"), str(tmp_path / "shot.png")]) == 1
    assert "no report at" in capsys.readouterr().err and not (tmp_path / "shot.png").exists()


def test_a_screenshot_is_stored_with_a_palette_at_its_size(tmp_path):
    from PIL import Image, ImageDraw

    from lib.pipeline import browser

    page = Image.new("RGB", (640, 400), "white")
    draw = ImageDraw.Draw(page)
    for row in range(20):  # lines of 'text' in a few colours, as a report's first screen
        draw.text((10, 10 + 19 * row), "does not hold · Claim 1. A-200d to means 0.993 → 0.987 " * 2,
                  fill=("black", "navy", "darkred")[row % 3])
    png = tmp_path / "shot.png"
    page.save(png)
    before = png.stat().st_size
    with Image.open(browser.shrink(png)) as shrunk:
        assert shrunk.mode == "P" and shrunk.size == (640, 400)
        assert len(shrunk.getcolors()) <= 64
    assert png.stat().st_size < before
