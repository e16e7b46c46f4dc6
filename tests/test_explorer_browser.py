"""The explorer as a person uses it: `make lab`, explore.ipynb opened in headless Chromium (Selenium with Debian's
chromium-driver), Run All, then every control moved; each move must redraw the view it names."""
from __future__ import annotations

import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from lib import ROOT
from tests.smoke import copy_of_smoke_runs, offline_env
from tests.test_explore import EXPLORED
from tests.test_lab import make_lab

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (make env installs it)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

BROWSER = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
DRIVER = shutil.which("chromedriver")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(BROWSER is None or DRIVER is None,
                                 reason="Chromium and its driver are not installed (.ci/run installs Debian's "
                                        "chromium and chromium-driver)")]
TIMEOUT = 120  # seconds for starting JupyterLab, Run All, computing an ε
MOVE = 30  # seconds for a control's move to redraw the view (it takes about one)
# Where the test leaves its screenshot of the explorer at the notebook's own parameters (B-200d, class 3, ε 0.1,
# the class's first digit); `INVADV_EXPLORER_SCREENSHOT=reports/figures/explorer.png` refreshes docs/tutorial.md's.
SCREENSHOT = os.environ.get("INVADV_EXPLORER_SCREENSHOT")


@contextmanager
def lab_for(root: Path, profile: str, **env: str):
    """`make lab` on a free port with a token, its root `root` holding explore.ipynb set to `profile`, its products in
    root/runs; `env` adds to its environment."""
    notebook = json.loads((ROOT / "notebooks" / "explore.ipynb").read_text())
    parameters = next(c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", []))
    parameters["source"] = "".join(parameters["source"]).replace('profile = "paper"', f'profile = "{profile}"')
    (root / "explore.ipynb").write_text(json.dumps(notebook))
    # No "get notified about Jupyter news?" prompt over the page (and no request for it).
    settings = root / ".config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    env = offline_env(INVADV_RUNS=str(root / "runs"), INVADV_REPORTS=str(root / "reports"), INVADV_THREADS="1",
                      JUPYTER_RUNTIME_DIR=str(root / ".runtime"), JUPYTER_CONFIG_DIR=str(root / ".config"), **env)
    with make_lab(env, f"LAB_ROOT={root}", lab_args="--LabApp.expose_app_in_browser=True") as (port, token):
        yield {"url": f"http://127.0.0.1:{port}/lab/tree/explore.ipynb?token={token}", "root": root}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The explorer on the smoke profile, with a copy of the suite's smoke products it reads (the button writes a new
    ε run there)."""
    root = tmp_path_factory.mktemp("lab")
    copy_of_smoke_runs(root / "runs", EXPLORED)
    with lab_for(root, "smoke") as served:
        yield served


def browser():
    """Headless Chromium, driven through chromium-driver."""
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1600,1400", "--no-proxy-server",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        options.add_argument(flag)
    options.binary_location = BROWSER
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(DRIVER))


@pytest.fixture(scope="module")
def page(lab):
    driver = browser()
    driver.get(lab["url"])
    yield driver
    driver.quit()


def wait(what: str, condition, timeout: float = TIMEOUT):
    """Poll `condition` until it returns something true; fail naming `what`."""
    deadline = time.time() + timeout
    while not (result := condition()):
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return result


def notebook(driver, expression: str):
    """`expression` about the open notebook `w` (a JupyterLab NotebookPanel), once its kernel is there; else None."""
    return driver.execute_script(
        "const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        "const ready = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
        f"return ready ? ({expression}) : null;")


def kernel_status(driver) -> str | None:
    return notebook(driver, "w.sessionContext.session.kernel.status")


def caption(driver) -> str:
    """The explorer's caption line (read in one script: the widgets redraw while we read)."""
    return driver.execute_script(
        "const c = [...document.querySelectorAll('.widget-html-content')].filter(e => e.textContent.includes(' · class '));"
        "return c.length ? c[0].innerText : '';")


def view(driver) -> str:
    """The explorer's figure, as the browser holds it (a PNG data URL)."""
    return driver.execute_script(
        "const i = [...document.querySelectorAll('.widget-output img')]; return i.length ? i[i.length - 1].src : '';")


def settled(driver, before: tuple[str, str]):
    """(caption, view) once the kernel is idle and both changed from `before`."""
    now = caption(driver), view(driver)
    return now if kernel_status(driver) == "idle" and now[0] != before[0] and now[1] != before[1] and now[1] else None


def move(driver, action, timings: list, name: str, expect: str, timeout: float = MOVE) -> str:
    """Do one control move, wait for the figure to change and the caption to say `expect`; the new caption."""
    before = caption(driver), view(driver)
    start = time.time()
    action()
    new_caption, _ = wait(f"the view after {name} ({expect!r})",
                          lambda: (now := settled(driver, before)) and expect in now[0] and now, timeout)
    timings.append((name, time.time() - start))
    return new_caption


def run_all(driver) -> None:
    wait("the kernel", lambda: kernel_status(driver) == "idle")
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    wait("Run All", lambda: kernel_status(driver) == "idle" and caption(driver) and view(driver))


def problems(driver) -> list[str]:
    """What a person would see as broken: widgets that failed to render, tracebacks in any output."""
    text = driver.find_element(By.TAG_NAME, "body").text
    return [line for line in text.splitlines() if "Error displaying widget" in line or "Traceback" in line]


def sliders(driver):
    """(ε slider, digit slider) handles: the two sliders of the controls, in order."""
    return driver.find_elements(By.CSS_SELECTOR, ".widget-slider .noUi-handle")


def readouts(driver) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".widget-slider .widget-readout")]


@pytest.mark.pipeline(*EXPLORED)
def test_the_explorer_in_jupyterlab_redraws_what_each_control_names(lab, page):
    driver, timings = page, []
    wait("the notebook and its kernel", lambda: kernel_status(driver) == "idle")
    time.sleep(2)  # JupyterLab writes the kernel's language_info into the notebook once it answers
    assert notebook(driver, "w.model.dirty") is False, "the notebook opens as modified"
    start = time.time()
    run_all(driver)
    timings.append(("Run All", time.time() - start))
    assert not problems(driver), problems(driver)
    first = caption(driver)
    assert first.startswith("B-200d · class 3: digit 1 of ") and "ε = 0.1 · ε computed: 0, 0.1, 0.3" in first, first
    class3 = int(first.split("digit 1 of ")[1].split(" ")[0])

    if SCREENSHOT:  # the explorer's widgets and view, as the reader sees them
        Path(SCREENSHOT).parent.mkdir(parents=True, exist_ok=True)
        driver.find_element(By.CSS_SELECTOR, ".jp-OutputArea .widget-vbox").screenshot(SCREENSHOT)

    model, digit_class = (Select(e) for e in driver.find_elements(By.CSS_SELECTOR, ".widget-dropdown select"))
    assert {"A-200d", "B-200d", "C-200d", "D-200d", "A-2d", "B-2d"} <= {o.text for o in model.options}
    text = move(driver, lambda: model.select_by_visible_text("C-200d"), timings, "model", "C-200d ·")
    assert text.startswith("C-200d · class 3: digit 1 of ")

    text = move(driver, lambda: digit_class.select_by_visible_text("7"), timings, "class", "class 7:")
    assert text.startswith("C-200d · class 7: digit 1 of ")
    class7 = int(text.split("digit 1 of ")[1].split(" ")[0])
    eps_slider, digit_slider = sliders(driver)
    assert digit_slider.get_attribute("aria-valuemax") == f"{class7 - 1}.0"  # bounded by the class's digits
    text = move(driver, lambda: digit_slider.send_keys(Keys.ARROW_RIGHT), timings, "digit", "digit 2 of")
    assert f"class 7: digit 2 of {class7} " in text and readouts(driver)[1] == "1", (text, readouts(driver))

    text = move(driver, lambda: eps_slider.send_keys(Keys.ARROW_RIGHT), timings, "ε", "ε = 0.3 ·")
    assert "ε = 0.3 ·" in text and readouts(driver)[0] == "0.3", (text, readouts(driver))
    text = move(driver, lambda: digit_class.select_by_visible_text("3"), timings, "class (back)", "class 3:")
    assert f"class 3: digit 2 of {class3} " in text
    assert sliders(driver)[1].get_attribute("aria-valuemax") == f"{class3 - 1}.0"

    new_eps = driver.find_element(By.CSS_SELECTOR, ".widget-text input")
    new_eps.send_keys(Keys.CONTROL, "a")
    new_eps.send_keys("0.2", Keys.ENTER)
    button = driver.find_element(By.XPATH, "//button[normalize-space()='compute this ε']")
    text = move(driver, button.click, timings, "compute ε = 0.2", "ε = 0.2 ·", TIMEOUT)
    assert "ε = 0.2 · ε computed: 0, 0.1, 0.2, 0.3" in text and readouts(driver)[0] == "0.2", text
    shown = driver.find_element(By.XPATH, "//*[contains(text(), 'ε = 0.2: inverse adversaries of')]")
    assert shown.is_displayed()  # the progress is in the cell, not in the log console
    assert not problems(driver), problems(driver)

    # Run again from a fresh kernel: the ε computed with the button is found among the products.
    notebook(driver, "(w.sessionContext.restartKernel(), true)")
    time.sleep(1)
    run_all(driver)
    assert "ε computed: 0, 0.1, 0.2, 0.3" in caption(driver), caption(driver)
    assert not problems(driver), problems(driver)
    print("\n" + "\n".join(f"{name}: {seconds:.1f} s" for name, seconds in timings))


def test_the_explorer_opens_the_committed_paper_study_without_computing_it(tmp_path):
    """A fresh clone: empty runs/, the committed products/paper/. Run All shows the paper study's first-seed models
    (A–G, the committed ε grid), restored from the store; nothing is trained or attacked."""
    grid = "0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3"
    with lab_for(tmp_path, "paper", INVADV_STORE=str(ROOT / "products")) as served:  # the committed store
        driver = browser()
        try:
            driver.get(served["url"])
            start = time.time()
            run_all(driver)
            seconds = time.time() - start
            assert not problems(driver), problems(driver)
            first = caption(driver)
            assert first.startswith("B-200d · class 3: digit 1 of ") and f"ε = 0.1 · ε computed: {grid}" in first, first
            model, _ = (Select(e) for e in driver.find_elements(By.CSS_SELECTOR, ".widget-dropdown select"))
            assert {f"{m}-200d" for m in "ABCDEFG"} <= {o.text for o in model.options}
            text = move(driver, lambda: model.select_by_visible_text("G-200d"), [], "model", "G-200d ·")
            assert "no adversarial center" in text, text
            text = move(driver, lambda: model.select_by_visible_text("F-200d"), [], "model", "F-200d ·")
            assert f"ε computed: {grid}" in text, text
            assert not problems(driver), problems(driver)
        finally:
            driver.quit()
    made = {p.name for p in (tmp_path / "runs" / "paper").iterdir() if not p.name.startswith(".")}
    committed = {p.name for p in (ROOT / "products" / "paper").iterdir() if p.is_dir()}
    assert made and made <= committed, made - committed  # every product it read was restored, none made
    print(f"\nRun All on the paper study: {seconds:.1f} s")
