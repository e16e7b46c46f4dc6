"""A step's process runs its task from the card the planner wrote, without loading torch or the plan, and only
where the card comes from this tree."""
import subprocess
import sys
import textwrap

import pytest

from lib import ROOT
from lib.pipeline import make, runner
from lib.pipeline.config import study


@pytest.fixture
def planned(tmp_path, monkeypatch) -> dict:
    """The smoke study prepared as `make report` prepares it (cards written), its products in a scratch folder."""
    monkeypatch.setenv("INVADV_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("INVADV_REPORTS", str(tmp_path / "reports"))
    return make.prepare(study("smoke"))


def test_each_task_has_a_card_with_what_the_plan_says(planned):
    for t in planned.values():
        card = runner.Card.from_json(runner.card_path(t.executed).read_text())
        assert card == make.card(t, planned)
        assert card.inputs == {d.name: d.output for d in t.deps} and card.params == t.params
        assert bool(card.timed) == (t.name in runner.TIMED)


def test_a_card_of_other_code_or_another_key_is_not_used(planned, monkeypatch):
    t = planned["centers"]
    assert runner.read_card(t.name, t.key, t.executed) is not None
    assert runner.read_card(t.name, "0123456789ab", t.executed) is None  # the Makefile expects another key
    monkeypatch.setattr(runner, "fingerprint", lambda: "code edited since the plan")
    assert runner.read_card(t.name, t.key, t.executed) is None  # make plans it and checks its key instead


def test_a_step_runs_from_its_card_without_importing_torch(planned):
    """The generated Makefile's command, in a fresh interpreter, with papermill's notebook run stubbed: the task's
    notebook is run with the card's parameters and marked done, and torch never loads."""
    t = planned["train-A-200d"]
    args = ["--profile", "smoke", "--set", "", "execute", t.name, "--key", t.key, "--executed", str(t.executed)]
    script = textwrap.dedent(f"""
        import pathlib, sys, types
        papermill = types.ModuleType("papermill")
        papermill.PapermillExecutionError = RuntimeError
        def execute_notebook(source, output, parameters, **kwargs):
            print(pathlib.Path(source).name, parameters["model"], parameters["seed"])
            pathlib.Path(output).write_text("{{}}")
            pathlib.Path({str(t.output)!r}).write_bytes(b"product")
        papermill.execute_notebook = execute_notebook
        sys.modules["papermill"] = papermill
        from lib.pipeline import runner
        print(runner.from_command_line({args!r}), "torch" in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == [f"01_train.ipynb {t.params['model']} {t.params['seed']}", "True False"]
    assert t.executed.exists()


def test_a_step_without_its_inputs_names_them_and_the_command(planned):
    t = planned["centers"]
    with pytest.raises(SystemExit, match=r"^error: centers needs [\w.,\- ]+ first: run `make report "
                                         r"PROFILE=smoke` \(with the same SET=...\)"):
        runner.from_command_line(["--profile", "smoke", "execute", t.name, "--key", t.key, "--executed", str(t.executed)])


def test_cards_are_written_for_steps_to_run_and_only_when_they_change(planned):
    """A made step needs no card, and an unchanged card is not written again (each write is fsync'd)."""
    made, todo = planned["train-A-200d"], planned["train-B-200d"]
    made.folder.mkdir(parents=True)
    made.executed.write_text("{}")
    runner.card_path(made.executed).unlink()
    written = runner.card_path(todo.executed).stat().st_mtime_ns
    make.write_cards(planned)
    assert not runner.card_path(made.executed).exists()
    assert runner.card_path(todo.executed).stat().st_mtime_ns == written
    runner.card_path(todo.executed).write_text("{}")  # a card of another plan is replaced by this one's
    make.write_cards(planned)
    assert runner.Card.from_json(runner.card_path(todo.executed).read_text()) == make.card(todo, planned)
