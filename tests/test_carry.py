"""A run's products carried between clones (products/<profile>/): finished steps and trainings' last epoch go in,
come back where runs/ lacks them, never replace a further-along training, and are never taken for another key."""
import json
from pathlib import Path

import pytest
import torch

from lib.core.autoattack import REPORTED, STAGES
from lib.pipeline import carry, dag, make, manifest, reuse
from lib.pipeline.config import study


@pytest.fixture
def clone(tmp_path, monkeypatch):
    """The smoke plan with runs/ and the store in a scratch folder."""
    monkeypatch.setenv("INVADV_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("INVADV_REPORTS", str(tmp_path / "reports"))
    monkeypatch.setenv("INVADV_STORE", str(tmp_path / "products"))
    return dag.plan(study("smoke"))


def resume_state(t: dag.Task):
    """A training's per-epoch state beside its checkpoint, as lib.core.train.train_or_load names it."""
    return t.output.with_name(f".{t.output.stem}.resume.pt")


def epochs_done(state) -> int:
    """The epochs a training's state holds, as carry compares them."""
    return carry.progress(state)[0]


def finish(t: dag.Task, payload: bytes = b"product") -> None:
    """Make a task look finished: its product, a lock and a partial notebook beside, the executed notebook."""
    t.folder.mkdir(parents=True, exist_ok=True)
    t.output.write_bytes(payload)
    (t.folder / ".lock").write_text("")
    (t.folder / f".{t.notebook}.partial.ipynb").write_text("{}")
    t.executed.write_text("{}")


def epochs(t: dag.Task, n: int) -> None:
    """A training under way: its resume state after `n` epochs."""
    t.folder.mkdir(parents=True, exist_ok=True)
    torch.save({"history": [{"epoch": e} for e in range(1, n + 1)]}, resume_state(t))


def test_carry_keeps_finished_steps_and_training_states_and_nothing_else(clone):
    done, running, idle = clone["train-A-200d"], clone["train-B-200d"], clone["centers"]
    finish(done)
    epochs(running, 2)
    lines = carry.carry(clone, "smoke")
    store = carry.store_dir("smoke")
    assert sorted(p.name for p in (store / done.folder.name).iterdir()) == sorted([done.output.name, done.executed.name])
    assert [p.name for p in (store / running.folder.name).iterdir()] == [resume_state(running).name]
    assert not (store / idle.folder.name).exists()
    assert len(lines) == 2 and carry.carry(clone, "smoke") == []  # nothing new: nothing copied again
    epochs(running, 3)
    assert carry.carry(clone, "smoke") == ["train-B-200d: epoch 3 of training"]


def test_restore_brings_back_what_runs_lacks_and_make_goes_on_from_it(clone, tmp_path, monkeypatch):
    done, running = clone["train-A-200d"], clone["train-B-200d"]
    finish(done)
    epochs(running, 2)
    carry.carry(clone, "smoke")
    monkeypatch.setenv("INVADV_RUNS", str(tmp_path / "fresh"))  # another clone: empty runs/, the same store
    fresh = dag.plan(study("smoke"))
    assert carry.restore(fresh, "smoke") == ["train-A-200d: made", "train-B-200d: training resumes after epoch 2"]
    assert fresh["train-A-200d"].output.read_bytes() == b"product" and fresh["train-A-200d"].executed.exists()
    assert epochs_done(resume_state(fresh["train-B-200d"])) == 2
    assert carry.restore(fresh, "smoke") == []  # already there
    epochs(fresh["train-B-200d"], 4)  # this clone went further than the store: its state stays
    assert carry.restore(fresh, "smoke") == [] and epochs_done(resume_state(fresh["train-B-200d"])) == 4


def test_a_copy_cut_short_leaves_no_finished_looking_step(clone, monkeypatch):
    """The executed notebook, which marks a step made, is copied last: an interrupted carry or restore leaves the
    product without it, so the step is carried or computed again, never taken as made."""
    done = clone["train-A-200d"]
    finish(done)
    copied, real_copy = [], carry.copy

    def copy_then_fail_on_notebook(source, target):
        if source.name == done.executed.name:
            raise KeyboardInterrupt
        real_copy(source, target)
        copied.append(target.name)

    monkeypatch.setattr(carry, "copy", copy_then_fail_on_notebook)
    with pytest.raises(KeyboardInterrupt):
        carry.carry(clone, "smoke")
    into = carry.store_dir("smoke") / done.folder.name
    assert copied == [done.output.name] and not (into / done.executed.name).exists()
    monkeypatch.setattr(carry, "copy", real_copy)
    assert carry.carry(clone, "smoke") == ["train-A-200d: 1 file(s)"]  # the next carry finishes it
    assert (into / done.executed.name).exists()


def test_a_carried_product_of_another_key_is_not_restored(clone):
    done = clone["train-A-200d"]
    finish(done)
    carry.carry(clone, "smoke")
    store = carry.store_dir("smoke")
    (store / done.folder.name).rename(store / "train-A-200d-0123456789ab")  # made by other code or parameters
    done.executed.unlink()
    done.output.unlink()
    assert carry.restore(clone, "smoke") == [] and not done.output.exists()


def test_prepare_restores_and_sets_aside_a_carried_product_that_does_not_load(clone, tmp_path, monkeypatch, capsys):
    """`make report` restores before planning; a carried checkpoint that is not one is set aside and recomputed."""
    done = clone["train-A-200d"]
    finish(done, b"not a checkpoint")
    carry.carry(clone, "smoke")
    monkeypatch.setenv("INVADV_RUNS", str(tmp_path / "fresh"))
    tasks = make.prepare(study("smoke"))
    err = capsys.readouterr().err
    assert "restored 1 step(s) from" in err and "train-A-200d: made" in err
    assert "moved aside" in err and not tasks["train-A-200d"].executed.exists()


@pytest.mark.parametrize("other_key", ["000000000000", "ffffffffffff"])  # sorted before or after the plan's folder
def test_progress_under_a_new_key_is_listed_beside_the_committed_product_and_restored(clone, tmp_path, monkeypatch,
                                                                                      other_key):
    """A recomputation under way (a new key) and the committed product it will replace are both in the manifest:
    the committed one is what the planner compares with, the progress is what another clone resumes from."""
    running = clone["train-B-200d"]
    finish(running)
    carry.carry(clone, "smoke")
    store = carry.store_dir("smoke")
    committed = store / f"train-B-200d-{other_key}"  # the same task made by other code or parameters, committed
    (store / running.folder.name).rename(committed)
    listed = manifest.read(store)
    listed["tasks"]["train-B-200d"].update(folder=committed.name, key=other_key)
    (store / manifest.NAME).write_text(json.dumps(listed))
    for path in running.folder.iterdir():  # this clone recomputes it under the plan's key
        path.unlink()
    epochs(running, 2)
    carry.carry(clone, "smoke")
    listed = manifest.read(store)
    assert listed["tasks"]["train-B-200d"]["folder"] == committed.name
    assert list(listed["partial"]) == [running.folder.name]
    assert listed["partial"][running.folder.name]["task"] == "train-B-200d"
    assert reuse.assess(clone, "smoke").recompute.keys() == {"train-B-200d"}  # compared with the committed product
    monkeypatch.setenv("INVADV_RUNS", str(tmp_path / "fresh"))  # another clone: empty runs/, the same store
    fresh = dag.plan(study("smoke"))
    assert carry.restore(fresh, "smoke") == ["train-B-200d: training resumes after epoch 2"]
    assert epochs_done(resume_state(fresh["train-B-200d"])) == 2


def autoattack_state(path: Path, eps: float, finished: int, stage: str, done: int) -> Path:
    """A state as lib.core.autoattack.run saves it: `finished` whole stages, and `done` images of `stage`, the stage it
    names (the next one while it runs, the last one finished as that stage ends)."""
    torch.save({"eps": eps, "stages": {n: torch.ones(4, dtype=torch.bool) for n in STAGES[:finished]},
                "stage": stage, "done": done}, path)
    return path


def autoattack_progress(t: dag.Task, eps: float, stages: int, images: int) -> None:
    """An AutoAttack under way at ε, in its step's folder: its state after `stages` whole stages and `images` of the
    next."""
    t.folder.mkdir(parents=True, exist_ok=True)
    autoattack_state(t.folder / f".autoattack-{eps:g}.resume.pt", eps, stages, REPORTED[stages], images)


def test_a_state_saved_as_its_stage_ends_is_behind_the_next_stages_first_batch(tmp_path):
    """lib.core.autoattack saves its state after each batch and once more as a stage ends; the last still names the
    finished stage and counts its images. Measured: FAB-T's end (914 images) read as ahead of Square's first batch
    (256), and the further state was not carried."""
    midway = autoattack_state(tmp_path / "midway", 0.3, 2, "FAB-T", 512)
    ended = autoattack_state(tmp_path / "ended", 0.3, 3, "FAB-T", 914)
    next_batch = autoattack_state(tmp_path / "next", 0.3, 3, "Square", 256)
    assert carry.progress(midway) == (2, 512) < carry.progress(ended) == (3, 0) < carry.progress(next_batch) == (3, 256)


def test_any_steps_progress_states_are_carried_and_restored_by_how_far_they_got(clone, tmp_path, monkeypatch):
    """An AutoAttack's per-batch states (one per ε) travel like a training's epochs: carried when further along than
    the store's, restored where the clone has less, and dropped from the store once the product is finished."""
    running = clone["autoattack-E-200d"]
    autoattack_progress(running, 0.3, 1, 512)
    assert carry.carry(clone, "smoke") == ["autoattack-E-200d: autoattack-0.3: 1 stage(s) and 512 image(s) of the next"]
    store = carry.store_dir("smoke") / running.folder.name
    assert [p.name for p in store.iterdir()] == [".autoattack-0.3.resume.pt"]
    assert list(manifest.read(store.parent)["partial"]) == [running.folder.name]
    autoattack_progress(running, 0.3, 2, 0)  # a whole stage further: carried again
    autoattack_progress(running, 0.1, 4, 0)
    assert len(carry.carry(clone, "smoke")) == 2 and carry.progress(store / ".autoattack-0.3.resume.pt") == (2, 0)
    monkeypatch.setenv("INVADV_RUNS", str(tmp_path / "fresh"))  # another clone: empty runs/, the same store
    fresh = dag.plan(study("smoke"))
    assert sorted(carry.restore(fresh, "smoke")) == [
        "autoattack-E-200d: autoattack-0.1: 4 stage(s) and 0 image(s) of the next, resumes",
        "autoattack-E-200d: autoattack-0.3: 2 stage(s) and 0 image(s) of the next, resumes"]
    autoattack_progress(fresh["autoattack-E-200d"], 0.3, 3, 0)  # this clone went further: its state stays
    assert carry.restore(fresh, "smoke") == []
    finish(fresh["autoattack-E-200d"])
    assert carry.carry(fresh, "smoke") == ["autoattack-E-200d: 2 file(s)"]
    assert not any(p.name.endswith(".resume.pt") for p in store.iterdir())  # the product supersedes its progress


def test_progress_under_an_old_key_goes_once_the_plans_progress_is_as_far_along(clone):
    """Code that changes a step's key while its AutoAttack is under way: the run resumes the old key's state under the
    new key (lib.core.autoattack.resumed accepts it) and goes on. The old folder stays while it holds anything the new
    one lacks, and goes once the new one is as far along at every ε: nothing superseded stays in the store."""
    running = clone["autoattack-E-200d"]
    store = carry.store_dir("smoke")
    old = store / f"{running.name}-000000000000"
    old.mkdir(parents=True)
    autoattack_state(old / ".autoattack-0.3.resume.pt", 0.3, 4, "Square", 914)
    autoattack_state(old / ".autoattack-0.2.resume.pt", 0.2, 2, "FAB-T", 256)
    autoattack_progress(running, 0.3, 4, 64)  # the follow-up's first batch, under the plan's key
    lines = carry.carry(clone, "smoke")
    assert lines == ["autoattack-E-200d: autoattack-0.3: 4 stage(s) and 64 image(s) of the next"] and old.is_dir()
    autoattack_progress(running, 0.2, 2, 256)  # resumed at ε 0.2 too: all the old folder had is in the new one
    lines = carry.carry(clone, "smoke")
    assert lines[-1] == f"{old.name}: removed, superseded by the plan's product or progress of the same step"
    assert not old.exists() and list(manifest.read(store)["partial"]) == [running.folder.name]
