"""Every table of the rendered report is whole and says what it is (issue 54): no pandas '…' rows or 'N rows × M
columns', a caption on each, no row-number column; the decisions are figures (a forest plot per robustness claim)."""
from __future__ import annotations

import re

import pytest
from bs4 import BeautifulSoup

from lib.analysis import report
from lib.pipeline import dag
from tests.smoke import PIPELINE_RUNS, environment, smoke_report

pytestmark = [pytest.mark.slow, pytest.mark.pipeline]


def problems(html: str) -> list[str]:
    """What is wrong with a report's tables: truncated ones, uncaptioned ones, ones led by a plain row number."""
    soup = BeautifulSoup(html, "html.parser")
    found = []
    if re.search(r"\d+ rows × \d+ columns", soup.get_text()):
        found.append("a table says 'N rows × M columns': pandas cut it")
    for k, table in enumerate(soup.find_all("table"), start=1):
        cells = [c.get_text(strip=True) for c in table.find_all(["td", "th"])]
        caption = table.find("caption")
        name = f"table {k} ({caption.get_text(strip=True)[:60] if caption else ' | '.join(cells[:4])})"
        if "..." in cells or "…" in cells:
            found.append(f"{name}: a row or column of '…' (truncated)")
        if caption is None or not caption.get_text(strip=True):
            found.append(f"{name}: no caption")
        rows = [r.find_all(["td", "th"]) for r in table.select("tbody > tr")]
        first = [r[0].get_text(strip=True) for r in rows if r]
        if len(first) > 1 and first == [str(i) for i in range(len(first))]:
            found.append(f"{name}: its first column is a row number")
    return found


def test_the_check_finds_what_it_is_for():
    import pandas as pd

    long = pd.DataFrame({"a": range(10, 90)})
    with pd.option_context("display.max_rows", 10):
        assert any("truncated" in p or "rows ×" in p for p in problems(long._repr_html_()))
    pandas_default = problems(long.head(3).to_html())  # no caption, and the index as a first column of 0, 1, 2
    assert any("no caption" in p for p in pandas_default) and any("row number" in p for p in pandas_default)
    assert problems(report.table_html(long.head(3), "what it shows")) == []  # report's tables: neither


def test_the_smoke_report_has_only_whole_captioned_tables_and_the_claims_forest_plots():
    smoke_report()
    with environment(INVADV_RUNS=str(PIPELINE_RUNS)):
        html = (dag.reports_dir() / "report-smoke.html").read_text()
    assert problems(html) == []
    assert "Claim 4 as it is decided" in html and "Claim 5 as it is decided" in html
    figures = dag.reports_dir() / "figures" / "smoke"
    assert (figures / "forest_claim4.png").exists() and (figures / "forest_claim5.png").exists()
