"""The numbers the README and docs/ quote are the committed run's (lib/analysis/quoted.py, issue 30); their links
lead somewhere."""
import re

import pytest

from lib import ROOT
from lib.analysis import quoted


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


@pytest.mark.parametrize("path", quoted.DOCUMENTS, ids=lambda p: p.name)
def test_every_relative_link_and_image_exists(path):
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text())
    local = [t for t in targets if "://" not in t and not t.startswith("mailto:")]
    missing = [t for t in local if not (path.parent / t).exists() and not (ROOT / t).exists()]
    assert not missing, f"{path.name} links to files that do not exist: {missing}"
