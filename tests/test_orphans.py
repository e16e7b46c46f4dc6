"""Product folders that no key of the current plan names: listed with their step, size and age, removed only when
asked, and never while a running step holds them."""
import os
import time

import pytest
from filelock import FileLock

from lib.pipeline import dag, make, orphans, runner
from lib.pipeline.config import study


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """A runs folder holding one current product of the smoke plan and two orphans (other keys)."""
    monkeypatch.setenv("INVADV_RUNS", str(tmp_path))
    s = study("smoke")
    current = dag.task(s, "train-A-200d")
    current.folder.mkdir(parents=True)
    current.output.write_bytes(b"x" * 10)
    old = tmp_path / "smoke" / "train-A-200d-0123456789ab"  # the same task under an earlier key
    gone = tmp_path / "smoke" / "eps-0.5-A-200d-ba9876543210"  # an ε no longer in the grid
    for folder, size in ((old, 3000), (gone, 500)):
        folder.mkdir()
        (folder / "product.pt").write_bytes(b"x" * size)
    week = time.time() - 7 * 86400
    os.utime(old / "product.pt", (week, week))
    (tmp_path / "smoke" / "pipeline.mk").write_text("")  # files beside the folders are no products
    cards = tmp_path / "smoke" / runner.CARDS  # task cards: the current plan's, and one another plan wrote
    cards.mkdir()
    for name in (current.folder.name, "eps-0.5-B-200d-00000000beef"):
        (cards / f"{name}.json").write_text("{}")
    return s, current, old, gone


def test_orphans_are_the_folders_no_key_names_oldest_first(runs):
    s, current, old, gone = runs
    found = orphans.orphans(s.profile, dag.plan(s))
    assert [(o.folder, o.step, o.size) for o in found] == [(old, "train", 3000), (gone, "eps", 500)]
    assert found[0].age == pytest.approx(7 * 86400, abs=60)
    text = orphans.listing(found, s.profile)
    assert "train" in text and "3.0 kB" in text and "7.0 d" in text and "2 folder(s)" in text
    assert "make clean-orphans" in text and current.folder.name not in text


def test_orphans_are_removed_only_when_asked_and_never_while_held(runs, capsys):
    s, current, old, gone = runs
    make.main(["--profile", "smoke", "orphans"])
    assert old.exists() and gone.exists() and "eps-0.5-A-200d-ba9876543210" in capsys.readouterr().out
    with FileLock(gone / ".lock"):  # a step of another run is making it
        make.main(["--profile", "smoke", "orphans", "--remove"])
    out = capsys.readouterr().out
    assert "removed train-A-200d-0123456789ab (3.0 kB)" in out and "kept eps-0.5-A-200d-ba9876543210" in out
    assert "removed 1 task card(s) of other plans" in out
    assert not old.exists() and gone.exists() and current.output.exists()
    make.main(["--profile", "smoke", "orphans", "--remove"])
    assert not gone.exists() and current.output.exists()
    cards = current.folder.parent / runner.CARDS
    assert [p.stem for p in cards.iterdir()] == [current.folder.name]  # the other plan's card went with the first
    make.main(["--profile", "smoke", "orphans"])
    assert "no orphaned products" in capsys.readouterr().out
