"""The smoke report in a real browser: headless Chromium, no network, every figure decodes."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from lib.pipeline import render
from lib.pipeline.config import study
from tests.smoke import make_report

BROWSER = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
# Any host name resolves to nothing and no proxy is tried: the page gets no network at all.
OFFLINE = ["--headless", "--no-sandbox", "--disable-gpu", "--no-proxy-server",
           "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=10000"]
# Appended to a copy of the report: once everything loaded, write what the page shows into the DOM.
PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const check = {images: images.length, decoded: images.filter(i => i.complete && i.naturalWidth > 0).length,
    figures: [...document.querySelectorAll("h2, h3")].map(h => h.textContent).filter(t => /Figure \\d/.test(t)),
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
    make_report()  # the suite's smoke report (no work when it exists)
    page = tmp_path / "report.html"
    page.write_text(render.report_path(study("smoke")).read_text() + PROBE)
    dom = subprocess.run([BROWSER, *OFFLINE, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', dom)
    assert found, f"the page did not finish loading: {dom[-500:]}"
    check = json.loads(found.group(1))
    assert check["images"] >= 3 and check["decoded"] == check["images"], check
    assert len(check["figures"]) >= 3 and check["claims_rows"] >= 4, check
    assert check["requests"] == [], "the report asked the network for: " + ", ".join(check["requests"])
    shot = tmp_path / "report.png"
    subprocess.run([BROWSER, *OFFLINE, "--window-size=1280,4000", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.stat().st_size > 10_000  # a screenshot to look at, in the test's temp folder
