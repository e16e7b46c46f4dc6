"""The numbers the README and docs/ quote are the committed run's (lib/analysis/quoted.py, issue 30); their links
lead somewhere."""
import re

import pandas as pd
import pytest

from lib import ROOT
from lib.analysis import claims, quoted
from tests import synthetic


@pytest.mark.parametrize("path", quoted.DOCUMENTS, ids=lambda p: p.name)
def test_every_quoted_number_is_the_committed_runs(path):
    text = path.read_text()
    assert quoted.refresh(text, quoted.values()) == text, f"{path.name} quotes numbers the committed results do not " \
                                                          "have: run `make docs`"


def test_the_front_page_quotes_its_answer_from_the_results():
    assert len(quoted.MARKED.findall(quoted.DOCUMENTS[0].read_text())) >= 5


def test_a_marker_is_rewritten_from_the_tables_and_an_unknown_one_is_an_error():
    text = "A reaches <!-- acc_A -->99.00 %<!-- / --> and B <!-- acc_B -->1 %<!-- / -->."
    assert quoted.refresh(text, {"acc_A": "99.28 %", "acc_B": "99.45 %"}) == \
        "A reaches <!-- acc_A -->99.28 %<!-- / --> and B <!-- acc_B -->99.45 %<!-- / -->."
    with pytest.raises(KeyError, match=r"markers name no quotable value: \['acc_B'\]"):
        quoted.refresh(text, {"acc_A": "99.28 %"})


def test_claims_4_and_5_are_quoted_as_the_report_decides_them():
    """Three seeds of A–G: C gains 10 points on B under PGD but none under AutoAttack; F gains 5 on E under both."""
    pgd = {"A": 0.5, "B": 0.4, "C": 0.5, "D": 0.4, "E": 0.9, "F": 0.95, "G": 0.9}
    aa = {"A": 0.3, "B": 0.2, "C": 0.2, "D": 0.2, "E": 0.85, "F": 0.9, "G": 0.85}
    table = pd.DataFrame([{"model": f"{m}-200d", "seed": seed, "samples": 10000, "clean_acc": 0.99,
                           "compactness": 0.1, "robust_acc@0.1": pgd[m] + 0.002 * seed,
                           "autoattack_acc@0.1": aa[m] + 0.002 * seed,
                           "autoattack_samples": 500} for m in pgd for seed in range(3)])
    contrast = synthetic.contrast(table)
    q = quoted.robustness(table, contrast, check=None)
    assert (q["claim4"], q["claim5"]) == (claims.claim4(table, contrast)[0], claims.claim5(table, contrast)[0]) \
        == (claims.FAILS, claims.HOLDS)
    assert (q["pgd_C-200d@0.1"], q["aa_C-200d@0.1"], q["clean_F-200d"]) == ("50.2 %", "20.2 %", "99.0 %")
    assert q["C-B_pgd@0.1"].startswith("+10.0 pp [") and q["C-B_aa@0.1"] == "+0.0 pp [-0.7, +0.7]"  # 500 images
    assert q["C-B_aa@0.1_seeds"] == "+0.0 / +0.0 / +0.0 pp" and q["C-B_pgd@0.1_seeds"] == "+10.0 / +10.0 / +10.0 pp"
    assert q["F-E_aa@0.1"].startswith("+5.0 pp [+") and "F-G_aa@0.1" in q and "C-B_compactness" not in q


@pytest.mark.parametrize("path", quoted.DOCUMENTS, ids=lambda p: p.name)
def test_every_relative_link_and_image_exists(path):
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text())
    local = [t for t in targets if "://" not in t and not t.startswith("mailto:")]
    missing = [t for t in local if not (path.parent / t).exists() and not (ROOT / t).exists()]
    assert not missing, f"{path.name} links to files that do not exist: {missing}"


def test_the_front_page_fits_one_screen_up_to_its_read_on_links():
    """Issue 30: what this is, the answer, the two commands with their times and where to read on, on one screen: 32
    lines of at most 120 visible characters (measured: 805 of the 813 px Chromium shows in a 1280×900 window, in
    GitHub's type, 16 px at 1.5 lines, 830 px wide)."""
    lines = quoted.DOCUMENTS[0].read_text().splitlines()
    read_on = [i for i, line in enumerate(lines) if line.startswith("* [docs/")]
    visible = [re.sub(r"<!-- [\w.@/ -]+ -->|\]\([^)]*\)", "", line) for line in lines[:read_on[-1] + 1]]
    assert len(read_on) >= 5 and len(visible) <= 32, f"the README's 'read on' links end at line {len(visible)}"
    assert max(map(len, visible)) <= 120


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("path", quoted.DOCUMENTS, ids=lambda p: p.name)
def test_every_link_to_a_section_lands_on_a_heading(path):
    broken = []
    for target, anchor in re.findall(r"\]\(([^)#\s]*\.md)#([^)\s]+)\)", path.read_text()):
        page = (path.parent / target) if (path.parent / target).exists() else ROOT / target
        headings = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
        if anchor not in {slug(h) for h in headings}:
            broken.append(f"{target}#{anchor}")
    assert not broken, f"{path.name} links to sections that do not exist: {broken}"


# A result in prose: a percentage, a difference in points, or a cosine to three decimals or more. A percentage that
# names a confidence level ("95 % interval") is not a result.
RESULT_LIKE = re.compile(r"(?<![\w.])[+−-]?\d+(?:\.\d+)?\s?"
                         r"(?:%(?!\s(?:interval|prediction|confidence))|pp\b|points?\b)|(?<![\w.])0\.\d{3,}")
# The pages that state the committed run's results; the log keeps each day's numbers as they were.
RESULT_PAGES = ("docs/explanation/results.md", "docs/explanation/design.md")


def unquoted_results(text: str) -> list[str]:
    """The results-like numbers of `text` outside quoted markers and code."""
    bare = re.sub(r"`[^`]*`", "", quoted.MARKED.sub("", text))
    return RESULT_LIKE.findall(bare)


def test_the_results_pages_state_no_result_by_hand():
    """Every result in them is quoted from reports/results/ (markers that `make docs` rewrites), so none can drift."""
    found = {page: unquoted_results((ROOT / page).read_text()) for page in RESULT_PAGES}
    assert not any(found.values()), f"results written by hand, not quoted (lib/analysis/quoted.py): {found}"


def test_the_check_for_results_by_hand_finds_them():
    text = ("C falls 17 points (seed 0: 72.3 → 53.3 %), cosine 0.9997, +1.2 pp; a 95 % interval; "
            "<!-- drop_C-200d@0.2 -->33.6 points<!-- / -->; `accuracy 0.5 %`; ε 0.3, 25 epochs, 1000 images")
    assert unquoted_results(text) == ["17 points", "53.3 %", "0.9997", "+1.2 pp"]


def test_the_parameters_reference_is_generated_from_the_code():
    from lib.pipeline import parameters

    assert parameters.PAGE.read_text() == parameters.page(), "stale: python -m lib.pipeline.parameters (make docs)"
    for name in ("at_eps", "at_method", "at_steps", "align_weight", "robust_autoattack_samples", "precision"):
        assert f"| `{name}` |" in parameters.page()
