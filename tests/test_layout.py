"""The report as a page (issue 30): the answers first, one numbering, a table of contents, no noise, no walls."""
import nbformat
import pandas as pd
from bs4 import BeautifulSoup

from lib.analysis import claims, report
from lib.analysis.markup import CAPTION, slug
from lib.pipeline import layout

EXPORTED = f"""<html><head></head><body>
<h1 id="t">A title<a class="anchor-link" href="#t">¶</a></h1>
<div class="answers"><a href="#autoattack-stage-by-stage">§</a> <a href="#nowhere">§</a></div>
<h2 id="x">1 · The models<a class="anchor-link" href="#x">¶</a></h2>
<img src="data:image/png;base64,AAAA"><p class="{CAPTION}">Training curves.</p>
<h3>Sample-level variant</h3>
<h2>Beyond the original</h2>
<h3>1.2 · AutoAttack, stage by stage</h3><h4>Why PGD stalls</h4>
<p class="{CAPTION}">Accuracy per stage.</p>
<h3>Sample-level variant</h3>
</body></html>"""


def test_sections_and_figures_are_numbered_once_across_the_report():
    soup = BeautifulSoup(layout.page(EXPORTED), "html.parser")
    headings = [(h.name, h.get("id"), h.get_text(" ", strip=True)) for h in soup.find_all(["h2", "h3", "h4"])]
    assert headings == [("h2", "the-models", "1 The models"), ("h3", "sample-level-variant", "1.1 Sample-level variant"),
                        ("h2", "beyond-the-original", "2 Beyond the original"),
                        ("h3", "autoattack-stage-by-stage", "2.1 AutoAttack, stage by stage"),
                        ("h4", "why-pgd-stalls", "2.1.1 Why PGD stalls"),
                        ("h3", "sample-level-variant-2-2", "2.2 Sample-level variant")]  # the same words: unique ids
    assert [p.get_text() for p in soup.find_all("p", class_=CAPTION)] == ["Figure 1. Training curves.",
                                                                         "Figure 2. Accuracy per stage."]
    assert soup.h1.find(class_="section-number") is None  # the title is not a section


def test_the_contents_link_every_section_and_section_links_read_their_number():
    soup = BeautifulSoup(layout.page(EXPORTED), "html.parser")
    nav = soup.find("nav", id="contents")
    links = [(a["href"], a.get_text()) for a in nav.find_all("a")]
    assert links[:3] == [("#the-models", "1 The models"), ("#sample-level-variant", "1.1 Sample-level variant"),
                         ("#beyond-the-original", "2 Beyond the original")]
    assert "#why-pgd-stalls" not in dict(links)  # two levels in the contents
    ids = {tag["id"] for tag in soup.find_all(id=True)}
    assert all(href[1:] in ids for href, _ in links)
    answers = [a.get_text() for a in soup.select("div.answers a")]
    assert answers == ["§ 2.1", "§"]  # a link to no section keeps its text: the report test finds it dead


def test_stderr_never_reaches_the_page():
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("stream", name="stderr", text="epoch 1:  50%|█████     | 16/32 [00:04<00:04, 3.7it/s]"),
        nbformat.v4.new_output("stream", name="stdout", text="kept"),
    ])])
    layout.quiet(notebook)
    assert [o["text"] for o in notebook.cells[0].outputs] == ["kept"]


def claims_table(verdicts=("holds", "does not hold", "inconclusive", "holds")):
    return pd.DataFrame({"claim": [1, 2, 3, 4], "statement": [f"statement {i}" for i in range(4)],
                         "evidence": ["a; b. C (x; y) z"] * 4, "key": [f"key {i}" for i in range(4)],
                         "verdict": list(verdicts)})


def test_the_answers_give_each_verdict_its_numbers_and_its_section():
    html = report.answers(claims_table(), report.CLAIM_SECTIONS, "Profile paper, seed(s) 0, 1, 2.", ["more"]).data
    soup = BeautifulSoup(html, "html.parser")
    items = soup.find_all("li")
    assert [i.find("span", class_="verdict").get_text() for i in items[:4]] == ["holds", "does not hold",
                                                                               "inconclusive", "holds"]
    assert "key 3" in items[3].get_text() and items[4].get_text() == "more"
    assert items[3].a["href"] == "#" + slug(report.CLAIM_SECTIONS[4])
    assert "Profile paper" in soup.get_text()


def test_evidence_reads_as_short_lines_and_long_tables_fold():
    assert report.evidence_lines("ε=0.1: +1 pp; ε=0.3: −2 pp. Under PGD (40 steps; 10k images): +3 pp") == \
        "ε=0.1: +1 pp<br>ε=0.3: −2 pp.<br>Under PGD (40 steps; 10k images): +3 pp"
    html = report.fold(pd.DataFrame({"a": range(50)}), "50 rows").data
    assert html.startswith("<details><summary>50 rows</summary><table") and html.endswith("</details>")
    folded = report.provenance("**Profile:** `paper`  \n**Device:** cpu").data
    assert "<b>Profile:</b> <code>paper</code><br><b>Device:</b> cpu" in folded and folded.startswith("<details>")
    assert report.claims_html(claims_table()).data.count("<br>") == 4 * 2


def test_each_claim_has_the_line_of_numbers_that_decides_it():
    rows = [{"model": m, "reference": r, "eps": e, "cosine": c, "relative_mse": 0.01}
            for m in ("A-200d", "B-200d") for r in ("feature_mean", "weight", "center")
            for e, c in ((0.0, 0.90), (0.3, 0.95))]
    table = claims.check(pd.DataFrame(rows), extension=("holds", "evidence", "C − B under AutoAttack: +1 pp"))
    assert table.key[0].startswith("A-200d to means 0.900 → 0.950")
    assert table.key[1] == "A-200d ≤ 0.950, B-200d ≤ 0.950 (cosine to W)"
    assert table.key[2] == "B-200d: cosine ≥ 0.900, relative MSE ≤ 0.010"
    assert table.key[3] == "C − B under AutoAttack: +1 pp"


def test_columns_of_words_are_left_aligned_and_numbers_stay_right():
    frame = pd.DataFrame({"model": ["A-200d", "E-200d"], "loss": ["CE", "CE on adversarial examples (pgd, 2 steps)"],
                          "epochs": [25, 25], "clean": ["99.30 ± 0.04 %", "98.90 ± 0.10 %"],
                          "C − B": ["+1.2 [−0.5, +2.9]", "nan"], "rate": [1e-05, 0.5]})
    html = f"<html><head></head><body>{frame.to_html(classes='dataframe')}</body></html>"
    soup = BeautifulSoup(layout.page(html), "html.parser")
    left = {th.get_text() for th in soup.select("thead th.text-column")}
    assert left == {"model", "loss"}
    assert len(soup.select("tbody td.text-column")) == 4 and not soup.select("tbody th.text-column")  # not the index
    assert {th.get_text() for th in soup.select("thead th.label-column")} == {"model"}  # one word each: never wrapped
