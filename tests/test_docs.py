"""The numbers the README and docs/ quote are the committed run's (lib/analysis/quoted.py, issue 30)."""
import pytest

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
