"""The cost model behind `make report`'s estimate and `make bench`'s roofline: FLOPs against the closed form,
work counted from the study's plan, rates timed on the spot, and the progress line's ETA."""
import json
import math
import re
import threading
import time
from pathlib import Path

import pytest
import torch

from lib.pipeline import cost, dag, make, runner
from lib.pipeline.config import study


def macs_of_smallcnn(feature_dim: int = 200) -> dict[str, int]:
    """Multiply-accumulates of SmallCNN's layers for one 28×28 image, from the layer shapes."""
    conv = lambda out_side, c_in, c_out: out_side ** 2 * c_in * c_out * 9
    return {"conv1": conv(26, 1, 32), "conv2": conv(24, 32, 32), "conv3": conv(10, 32, 64), "conv4": conv(8, 64, 64),
            "fc1": 1024 * 200, "fc2": 200 * feature_dim, "fc3": feature_dim * 10}


def test_flops_match_the_closed_form():
    macs = macs_of_smallcnn()
    forward = 2 * sum(macs.values())  # ≈ 19.9 MFLOP
    flops = cost.flops_per_image()
    assert flops["forward"] == pytest.approx(forward)
    # backward = the activations' gradients (the forward's cost, but none for the image under training) plus the
    # weights' gradients (the forward's cost again); a PGD step needs the input's gradient and no weight gradient
    assert flops["train"] == pytest.approx(3 * forward - 2 * macs["conv1"])
    assert flops["pgd"] == pytest.approx(2 * forward)


def test_work_is_counted_from_the_study():
    s = study("smoke")
    tasks = dag.plan(s)
    work = lambda name: cost.task_work(s, tasks[name].step.name, tasks[name].params)
    assert work("train-A-200d") == {"train": 2 * 4000, "pgd": 0, "forward": 2 * 500 + 4000 + 500}
    assert work("train-C-200d")["pgd"] == 2 * 4000 * s.train_steps
    assert work("eps-0-A-200d")["pgd"] == 0 and work("eps-0.1-C-200d")["pgd"] == 100 * s.steps
    assert work("evaluate-B-200d")["pgd"] == 100 * s.robust_steps * 2
    # per ε > 0: B's PGD to transfer, and each of A–G's 5× longer PGD and margin PGD
    assert work("check")["pgd"] == s.check_samples * 2 * s.robust_steps * (1 + 7 * 6)
    assert work("figures") == {}
    paper = study("paper", "extended=0")
    assert cost.task_work(paper, "train", {"model": "A", "feature_dim": 200, "seed": 0})["train"] == 25 * 60000


def test_adversarial_training_is_costed_with_its_examples_and_its_monitor():
    work = lambda m, **kw: cost.task_work(study("paper", kw), "train", {"model": m, "feature_dim": 200, "seed": 0})
    monitor = 500 * 10  # PGD-10 on the first 500 test images after every epoch
    assert work("E")["pgd"] == 25 * (60000 * 5 + monitor)  # PGD with five steps per image
    assert work("E", at_method="fgsm-rs", at_steps=1)["pgd"] == 25 * (60000 * 1 + monitor)
    assert work("F")["pgd"] == work("G")["pgd"] == 25 * (60000 * (5 + 2) + monitor)  # + C's two inverse steps
    assert work("E")["train"] == work("A")["train"] and work("A")["pgd"] == 0


def test_task_seconds_adds_the_start_up():
    assert cost.task_seconds({"train": 1000, "pgd": 2000}, {"train": 1e-3, "pgd": 1e-3, "forward": 0}) == \
        pytest.approx(cost.STEP_OVERHEAD + 3)


def test_calibration_times_every_kind_and_restores_the_threads(monkeypatch):
    before = torch.get_num_threads()
    rates = cost.calibrate("fp32", torch.device("cpu"), n_threads=1)
    assert set(rates) == set(cost.KINDS) and all(0 < r < 1 for r in rates.values())
    assert rates["attack"] == rates["pgd"]  # AutoAttack's fp32 step is the study's own
    assert torch.get_num_threads() == before
    timed = []  # at bf16, AutoAttack's step is timed apart, in fp32
    monkeypatch.setattr(cost, "inverse_adversary", lambda *args: timed.append(args[-1]))
    assert set(cost.calibrate("bf16", torch.device("cpu"), n_threads=1)) == set(cost.KINDS)
    assert timed == ["bf16", "bf16", "fp32", "fp32"]  # each warmed up once, then timed


@pytest.mark.parametrize("finished, running, expected", [
    ({}, {}, (10 + 20 + 30) / 2),  # nothing done: the estimates, two at a time
    ({"a": 20}, {}, (20 + 30) * 2 / 2),  # a took twice its estimate: the rest will too
    ({"a": 10}, {"b": 5}, (20 + 30 - 5) / 2),  # what a running step has done is not left
    ({"a": 10, "b": 20, "c": 30}, {}, 0),
])
def test_eta(finished, running, expected):
    assert make.eta({"a": 10, "b": 20, "c": 30}, finished, running, jobs=2) == pytest.approx(expected)


@pytest.mark.parametrize("flags, jobs, dry", [("", 1, False), ("-j2 --jobserver-auth=3,4", 2, False),
                                               ("n -j2", 2, True), ("ns -- FOO=1", 1, True), ("-j 4", 4, False)])
def test_make_flags_are_read(monkeypatch, flags, jobs, dry):
    monkeypatch.setenv("MAKEFLAGS", flags)
    assert make.make_jobs() == jobs and runner.make_dry_run() == dry
    assert runner.watched() == (jobs > 1 and not dry)  # the progress line: only where steps run side by side


@pytest.fixture
def empty_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("INVADV_RUNS", str(tmp_path))
    monkeypatch.setattr(cost, "calibrate", lambda *args: {"train": 1e-3, "pgd": 5e-4, "forward": 2e-4, "attack": 5e-4})
    return tmp_path


def test_the_cost_note_says_what_runs_and_what_it_costs(empty_runs):
    s = study("smoke")
    note, seconds = make.cost_note(s, jobs=2)
    assert "51 of 51 steps to run — 9 trainings · 24 ε runs" in note and "wall with make -j2" in note
    assert "1.00 ms per image per training step, 0.50 ms per PGD step" in note
    assert set(seconds) == set(dag.plan(s)) and all(v >= cost.STEP_OVERHEAD for v in seconds.values())
    for t in dag.plan(s).values():
        t.executed.parent.mkdir(parents=True, exist_ok=True)
        t.executed.write_text("{}")
    note, seconds = make.cost_note(s, jobs=2)
    assert note.startswith("make report (smoke, fp32): all 51 steps are made") and "0 to run" in note and not seconds


def test_the_paper_note_offers_the_quick_preview(empty_runs):
    note, _ = make.cost_note(study("paper", "extended=0"), jobs=1)
    assert "a preview of the whole report: make report PROFILE=quick" in note


def test_watch_follows_the_steps_and_ends_when_all_are_made(empty_runs, monkeypatch, capsys):
    monkeypatch.setenv("MAKEFLAGS", "-j2")
    s = study("smoke")
    tasks = list(dag.plan(s).values())

    watching = threading.Event()
    eta = make.eta

    def eta_once_watching(*args):
        watching.set()  # watch has listed what is to run and entered its loop
        return eta(*args)

    monkeypatch.setattr(make, "eta", eta_once_watching)

    def finish_all():
        watching.wait(timeout=60)
        for t in tasks:
            t.executed.parent.mkdir(parents=True, exist_ok=True)
            partial = t.executed.with_suffix(".tmp")  # atomic, as execute writes it: never seen half-written
            partial.write_text('{"metadata": {"papermill": {"duration": 1.5}}}')
            partial.replace(t.executed)
            time.sleep(0.01)

    worker = threading.Thread(target=finish_all)
    worker.start()
    make.watch(s, poll=0.005)
    worker.join()
    lines = capsys.readouterr().err.splitlines()  # not a terminal: one line per finished step
    assert lines[-1].startswith(f"[{len(tasks)}/{len(tasks)}] figures done in 2 s")
    assert len(lines) == len(tasks)


@pytest.mark.parametrize("flags", ["", "n -j2"])
def test_watch_is_silent_with_one_job_or_a_dry_run(empty_runs, monkeypatch, capsys, flags):
    monkeypatch.setenv("MAKEFLAGS", flags)
    make.watch(study("smoke"), poll=0.005)  # returns at once: nothing is made here
    assert capsys.readouterr().err == ""


def test_the_wall_time_counts_the_hours_steps_ran_not_the_pauses_between_sessions(empty_runs):
    """The report's wall time: overlapping steps (make -j2) count once, a night between two sessions not at all."""
    tasks = list(dag.plan(study("smoke")).values())[:4]
    spans = [("10:00:00", "10:10:00"), ("10:05:00", "10:20:00"),  # side by side: 20 min together
             ("23:00:00", "23:30:00"), ("23:30:00", "23:31:00")]  # resumed late in the evening: 31 min
    for t, (start, end) in zip(tasks, spans):
        t.executed.parent.mkdir(parents=True, exist_ok=True)
        t.executed.write_text(json.dumps({"metadata": {"papermill": {
            "start_time": f"2026-11-30T{start}+00:00", "end_time": f"2026-11-30T{end}+00:00"}}}))
    assert runner.busy_seconds(t.executed for t in dag.plan(study("smoke")).values()) == 51 * 60  # unfinished tasks count nothing


def test_a_step_that_ran_in_several_sessions_counts_what_it_recorded(empty_runs):
    """A training resumed in a later session ran in two notebooks: papermill's duration is the last one's, the
    compute its notebook recorded (record_compute) is all of it; a step that recorded less counts its run."""
    import nbformat

    t = dag.plan(study("smoke"))["train-A-200d"]
    t.executed.parent.mkdir(parents=True, exist_ok=True)

    def executed(duration: float, recorded: float | None) -> float:
        notebook = nbformat.v4.new_notebook(metadata={"papermill": {"duration": duration}})
        cell = nbformat.v4.new_code_cell("runner.record_compute(...)")
        if recorded is not None:
            cell.outputs = [nbformat.v4.new_output("display_data", data={runner.COMPUTE: {"seconds": recorded}})]
        notebook.cells = [nbformat.v4.new_code_cell("print('training')"), cell]
        nbformat.write(notebook, t.executed)
        return runner.duration(t.executed)

    assert executed(600.0, 1500.0) == 1500.0  # 15 min of epochs, the last 10 in this session
    assert executed(600.0, 590.0) == 600.0  # one session: the notebook's run, start-up included
    assert executed(600.0, None) == 600.0 and runner.recorded_compute(t.executed) == 0.0


def test_the_extension_and_figures_steps_get_each_finished_steps_seconds(empty_runs, monkeypatch):
    """make passes the durations papermill recorded to the steps that report them (the cost of a seed, the header)."""
    import papermill

    plan = dag.plan(study("smoke"))
    for t, seconds in zip(list(plan.values())[:2], (30.0, 90.0)):
        t.executed.parent.mkdir(parents=True, exist_ok=True)
        t.executed.write_text(json.dumps({"metadata": {"papermill": {
            "duration": seconds, "start_time": "2026-11-30T10:00:00+00:00",
            "end_time": f"2026-11-30T10:0{int(seconds) // 60}:{int(seconds) % 60:02d}+00:00"}}}))
    seen = {}

    def execute_notebook(source, output, parameters, **kwargs):
        seen[Path(source).stem] = parameters
        Path(output).write_text("{}")

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)
    for name in ("extension", "figures", "centers"):
        plan[name].folder.mkdir(parents=True, exist_ok=True)
        plan[name].output.touch()  # the product the notebook would write
        runner.run_notebook(make.card(plan[name], plan), "")
    first, second = list(plan)[:2]
    assert seen["07_extension"]["step_seconds"] == {first: 30.0, second: 90.0}
    assert "wall_seconds" not in seen["07_extension"]
    assert seen["08_figures"]["step_seconds"] == {first: 30.0, second: 90.0, "extension": 0.0}  # ran, no duration
    assert seen["08_figures"]["wall_seconds"] == 90.0  # the two ran side by side
    assert "step_seconds" not in seen["03_centers"]


def test_the_adversarially_trained_models_autoattack_is_costed_on_their_own_images_and_survivors():
    s = study("paper")
    work = cost.task_work(s, "autoattack", {"model": "E", "feature_dim": 200, "seed": 0})
    n = s.robust_autoattack_samples
    assert work == {"pgd": n * 3 * 40, "attack": round(n * 3 * cost.ROBUST_SURVIVORS * cost.AUTOATTACK_PGD_STEPS),
                    "forward": n * 4}  # 3 radii: the PGD on rescaled logits (the study's precision), AutoAttack (fp32)
    seconds = cost.task_seconds(work, {"pgd": 0.39e-3, "forward": 0.1e-3, "attack": 0.39e-3})
    assert 0.85 < seconds / 2230 < 1.15  # the paper rerun's seed-0 G: 2,230 s (lib.pipeline.cost)


def test_autoattack_is_costed_on_the_images_pgd_leaves_robust():
    s = study("paper")
    work = cost.task_work(s, "autoattack", {"model": "C", "feature_dim": 200, "seed": 0})
    n = s.autoattack_samples
    assert work == {"pgd": n * 3 * 40, "attack": round(n * 3 * cost.PGD_SURVIVORS * cost.AUTOATTACK_PGD_STEPS),
                    "forward": n * 4}
    models = [cost.task_work(s, "autoattack", {"model": m, "feature_dim": 200, "seed": 0}) for m in "ABCD"]
    seconds = sum(cost.task_seconds(w, {"pgd": 0.39e-3, "forward": 0.1e-3, "attack": 0.39e-3}) for w in models)
    assert 0.85 < seconds / 5830 < 1.15  # the paper rerun's seed-0 A–D together: 5,830 s (lib.pipeline.cost)


def test_each_step_asks_the_scheduler_for_what_the_cost_model_gives_it():
    """Runtime (the estimate at the reference rates, with its margin, at least the minimum) and memory, per step of
    the paper study; the adversarial trainings ask for the most time."""
    s = study("paper")
    tasks = dag.plan(s)
    asked = {name: cost.resources(s, t.step.name, t.params) for name, t in tasks.items()}
    for name, t in tasks.items():
        seconds = cost.task_seconds(cost.task_work(s, t.step.name, t.params), cost.REFERENCE_RATES)
        assert asked[name]["runtime"] == max(cost.MIN_RUNTIME, math.ceil(cost.RUNTIME_MARGIN * seconds / 60))
        assert asked[name]["mem_mb"] >= 2048
    longest = max(asked, key=lambda name: asked[name]["runtime"])
    assert re.match(r"train-[EFG]-200d", longest)
    assert asked["figures"] == {"runtime": cost.MIN_RUNTIME, "mem_mb": 4096}
