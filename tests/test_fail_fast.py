"""Runs that go wrong stop at once and say why (issue 18): a diverging training, NaN in an ε run or an
evaluation, a write that fails, two runs on one runs/ folder."""
from __future__ import annotations

import copy
import errno
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from lib import ROOT
from lib.core import inverse, products
from lib.core.errors import Diverged, WriteFailed
from lib.core.evaluation import evaluate
from lib.core.protocol import TrainConfig
from lib.core.train import train_or_load
from lib.pipeline import locks, make, runner
from lib.pipeline.config import study
from lib.pipeline.dag import plan
from tests import smoke
from tests.smoke import make_command, offline_env

DIVERGING = TrainConfig(model="B", center_weight=1e9, epochs=2, train_samples=4000, test_samples=500)


# --- non-finite numbers -----------------------------------------------------------------------------------------

def test_a_diverging_training_stops_in_its_first_epoch_and_writes_nothing(mnist, tmp_path):
    path = tmp_path / "model.pt"
    with pytest.raises(Diverged) as exc:
        train_or_load(DIVERGING, path, *mnist)
    message = str(exc.value)
    assert re.fullmatch(r"training B-200d \(seed 0\) diverged at epoch 1, batch \d+ of 32: the loss became "
                        r"non-finite\. Likely cause: center_weight = 1e\+09 is too large for the learning rate "
                        r"0\.01; lower it \(the default: center_weight = 0\.01\)\. No product was written", message), message
    assert list(tmp_path.iterdir()) == []  # neither the checkpoint nor a resume state of the diverged epoch


def test_the_named_batch_is_the_first_whose_loss_is_not_finite(mnist, monkeypatch):
    """The guard reads every loss on a CPU: the batch it names is the first one that went non-finite."""
    import lib.core.train as train_module

    losses = []
    real = train_module.F.cross_entropy
    monkeypatch.setattr(train_module.F, "cross_entropy", lambda *a, **k: losses.append(real(*a, **k)) or losses[-1])
    with pytest.raises(Diverged, match=r"batch (\d+) of") as exc:
        train_module.train(DIVERGING, *mnist, progress=False)
    named = int(re.search(r"batch (\d+) of", str(exc.value)).group(1))
    # The loss is CE + λ·center loss; with λ = 1e9 the CE of the batch after the blow-up is already NaN or inf,
    # and every earlier batch's CE was finite.
    finite = [bool(torch.isfinite(loss)) for loss in losses]
    assert len(losses) == named and all(finite[:named - 2]), finite


def test_weights_that_go_non_finite_in_the_last_step_of_an_epoch_are_caught(mnist):
    """The loss of the next batch would show a NaN weight, but after an epoch's (or the training's) last step there
    is none: the weights and centers themselves are checked at the end of every epoch."""
    from lib.core.train import build, train_epoch

    class PoisonLastStep(torch.optim.SGD):
        def step(self, closure=None):
            super().step(closure)
            self.steps = getattr(self, "steps", 0) + 1
            if self.steps == 2:  # the epoch's last batch
                next(iter(self.param_groups[0]["params"])).data.view(-1)[0] = float("inf")

    config = TrainConfig(model="B", epochs=1, train_samples=256)
    model, centers = build(config)
    with pytest.raises(Diverged, match=r"^training B-200d \(seed 0\), end of epoch 1: the weights became inf"):
        train_epoch(model, centers, PoisonLastStep(model.parameters(), lr=0.01), mnist[0].subset(256), config,
                    torch.Generator().manual_seed(0))


def test_a_diverging_step_fails_in_one_line_from_the_training_step(tmp_path):
    """The issue's case, `make report SET="center_weight=1e9"`: the step make runs for B's training fails with the
    training's one line and writes no checkpoint, so make stops before anything that would read it."""
    env = offline_env(INVADV_RUNS=str(tmp_path / "runs"))
    result = subprocess.run([sys.executable, "-m", "lib.pipeline", "--profile", "smoke", "--set", "center_weight=1e9",
                             "execute", "train-B-200d"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert result.returncode == 1
    assert re.search(r"^error in train-B-200d \(01_train\): Diverged: training B-200d \(seed 0\) diverged at epoch 1, "
                     r"batch \d+ of 32: the loss became non-finite\. Likely cause: center_weight = 1e\+09.*No "
                     r"product was written$", result.stderr, flags=re.M), result.stderr[-2000:]
    (folder,) = (tmp_path / "runs" / "smoke").iterdir()
    assert not (folder / "checkpoint.pt").exists() and not (folder / "01_train.ipynb").exists()


def nan_model(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` with one NaN weight, as a diverged training's checkpoint would have."""
    broken = copy.deepcopy(model)
    with torch.no_grad():
        next(broken.parameters()).view(-1)[0] = float("nan")
    return broken


def test_an_eps_run_refuses_non_finite_features(small_model, mnist):
    refs = {"feature_mean": torch.zeros(10, 200)}
    with pytest.raises(Diverged, match=r"^ε run ε=0\.1 of A-200d: the features became nan\. Likely cause: the model's "
                                       r"weights are not finite"):
        inverse.run({"A-200d": (nan_model(small_model), refs)}, mnist[1].subset(100), 0.1, 0.01, 10)


def test_an_evaluation_refuses_non_finite_features(small_model, mnist):
    with pytest.raises(Diverged, match=r"^evaluation of A-200d: the features became nan"):
        evaluate(nan_model(small_model), mnist[1].subset(100), (0.1,), 10, 0.01, name="A-200d")


# --- writes that fail -------------------------------------------------------------------------------------------

def test_a_full_disk_leaves_the_earlier_product_whole_and_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    products.save({"w": torch.ones(3)}, path)
    before = path.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(products.os, "fsync", full)  # where a full disk shows up when the data reach it
    with pytest.raises(WriteFailed, match=r"^could not write model\.pt into .*: No space left on device\. Nothing "
                                          r"was replaced, so earlier products are intact"):
        products.save({"w": torch.zeros(1000)}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_a_real_file_size_limit_is_a_one_line_error(tmp_path):
    """A real OS failure, not a mock: the file-size limit makes write(2) fail with EFBIG. torch.save writing to the
    file itself would report it as `unexpected pos 704 vs 598`."""
    code = textwrap.dedent(f"""
        import resource, signal, sys, torch
        from lib.core import products
        from lib.core.errors import WriteFailed
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
        try:
            products.save({{"w": torch.zeros(100_000)}}, {str(tmp_path / "big.pt")!r})
        except WriteFailed as exc:
            sys.exit(str(exc))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 1
    assert re.fullmatch(r"could not write big\.pt into .*: File too large\. Nothing was replaced.*again\n", result.stderr)
    assert list(tmp_path.iterdir()) == []


def test_a_step_whose_product_cannot_be_written_fails_in_one_line(tmp_path):
    """A step run under a 1 MB file-size limit (its kernel inherits it): the training's first save fails; the error
    names the step and the file, and leaves neither a product nor an executed notebook."""
    env = offline_env(INVADV_RUNS=str(tmp_path / "runs"))
    t = plan(study("smoke"))["train-A-2d"]

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        import resource
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))

    result = subprocess.run([sys.executable, "-m", "lib.pipeline", "--profile", "smoke", "execute", t.name], cwd=ROOT,
                            capture_output=True, text=True, env=env, preexec_fn=limit)
    assert result.returncode == 1
    assert re.search(r"^error in train-A-2d \(01_train\): WriteFailed: could not write \S+ into \S+: File too large\. "
                     r"Nothing was replaced", result.stderr, flags=re.M), result.stderr[-2000:]
    folder = tmp_path / "runs" / "smoke" / t.folder.name
    left = {p.name for p in folder.iterdir()}
    assert not {"checkpoint.pt", "01_train.ipynb"} & left and not any(n.endswith(".tmp") for n in left), left


# --- two runs on one runs/ folder -------------------------------------------------------------------------------

def test_a_second_run_waits_for_the_product_and_uses_it(tmp_path, monkeypatch, capsys):
    """While another process holds a task's lock, `execute` waits; once it is released with the product made, it
    uses it instead of running the notebook again."""
    monkeypatch.setenv("INVADV_RUNS", str(tmp_path / "runs"))
    t = plan(study("smoke"))["train-A-200d"]
    holder = hold_and_make(t)
    monkeypatch.setattr(runner, "run_notebook", lambda *a: pytest.fail("the product was computed twice"))
    start = time.monotonic()
    make.execute(t, "")
    assert time.monotonic() - start > 0.5 and holder.wait() == 0
    err = capsys.readouterr().err
    assert "[train-A-200d] another run is making this product; waiting for it" in err
    assert "[train-A-200d] made by another run; using it" in err


def hold_and_make(t) -> subprocess.Popen:
    """A process that holds the task's lock for 1.5 s and makes its product meanwhile (another run)."""
    locks.lock(t.folder)  # creates the folder
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import pathlib, sys, time
        from filelock import FileLock
        with FileLock({str(t.folder / ".lock")!r}):
            print("held", flush=True)
            time.sleep(1.5)
            pathlib.Path({str(t.output)!r}).write_bytes(b"made")
            pathlib.Path({str(t.executed)!r}).write_text("{{}}")
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    return holder


def test_the_command_line_waits_for_another_run_before_loading_the_pipeline(tmp_path):
    """What the generated Makefile runs: a step another run is making costs the second run only its wait (no torch,
    no plan), and is then used."""
    runs = tmp_path / "runs"
    with smoke.environment(INVADV_RUNS=str(runs)):  # task paths follow INVADV_RUNS when they are read
        t = plan(study("smoke"))["train-A-200d"]
        executed = t.executed
        holder = hold_and_make(t)
    code = textwrap.dedent(f"""
        import runpy, sys
        sys.argv = ["lib.pipeline", "--profile", "smoke", "execute", "train-A-200d", "--key", {t.key!r},
                    "--executed", {str(executed)!r}]
        try:
            runpy.run_module("lib.pipeline", run_name="__main__")
        except SystemExit as exc:
            print("exit", exc.code, "torch" in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "INVADV_RUNS": str(runs)})
    assert holder.wait() == 0 and result.stdout.strip() == "exit 0 False", result.stdout + result.stderr
    assert "made by another run; using it" in result.stderr


def test_a_lock_left_by_a_killed_run_blocks_nobody(tmp_path, monkeypatch):
    monkeypatch.setenv("INVADV_RUNS", str(tmp_path / "runs"))
    t = plan(study("smoke"))["train-A-200d"]
    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os, signal
        from lib.pipeline import make
        from lib.pipeline.config import study
        from lib.pipeline.dag import plan
        from lib.pipeline import locks
        locks.lock(plan(study("smoke"))["train-A-200d"].folder).acquire()
        os.kill(os.getpid(), signal.SIGKILL)
    """)], cwd=ROOT, env={**os.environ, "INVADV_RUNS": str(tmp_path / "runs")})
    assert killed.returncode == -signal.SIGKILL and (t.folder / ".lock").exists()
    held = locks.lock(t.folder)
    held.acquire(timeout=5)  # raises Timeout if the dead run's lock still held
    held.release()


def test_kernels_talk_over_private_unix_sockets_without_the_tcp_warning(tmp_path):
    """Two notebooks executed at once, as under `make -j2`: each kernel on its own sockets (no cross-talk, which
    shows as 'Invalid Signature'), and no transport warning in the output a user reads."""
    notebook = tmp_path / "in.ipynb"
    code = textwrap.dedent(f"""
        import sys, nbformat, papermill
        from lib.pipeline.runner import KERNEL, kernel_sockets
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")]), {str(notebook)!r})
        with kernel_sockets() as config:
            papermill.execute_notebook({str(notebook)!r}, sys.argv[1], kernel_name=KERNEL, progress_bar=False,
                                       config=config)
    """)
    runs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / f"out{i}.ipynb")], cwd=ROOT,
                             stderr=subprocess.PIPE, text=True) for i in range(2)]
    errors = [run.communicate()[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], errors
    assert not any("without encryption" in e or "Invalid Signature" in e for e in errors), errors
    assert all("42" in (tmp_path / f"out{i}.ipynb").read_text() for i in range(2))


def test_a_follow_up_that_cannot_start_fails_in_its_own_test(monkeypatch):
    """A background job of the suite (tests/smoke.py) whose preparation fails, e.g. a full disk while it copies the
    smoke run, fails the test that reads it, naming it, and not whichever test happens to run next."""
    def full_disk(jobs: int, log: Path):
        raise OSError(errno.ENOSPC, "No space left on device")

    # the suite's own background state set aside (its follow-ups' thread held meanwhile): no smoke run, no other
    # follow-up, the threads left as they are
    with smoke.follow_ups_held(), monkeypatch.context() as patched:
        for name, value in {"_background": {}, "_follow_ups": {"full-disk": full_disk}, "_needs": {"full-disk": ()},
                            "_started": {}, "_smoke_failed": [], "_threads_before_background": []}.items():
            patched.setattr(smoke, name, value)
        patched.setattr(smoke, "smoke_report", lambda: None)
        smoke.advance()  # as before any test: it tries to start the job and must not raise
        with pytest.raises(AssertionError, match=r"follow-up full-disk could not start: .*No space left on device"):
            smoke.follow_up("full-disk", full_disk)


@pytest.mark.pipeline
def test_two_concurrent_make_reports_make_each_product_once_and_agree():
    """The suite's smoke run and its twin started together on one runs/ folder (tests/smoke.py): both succeed,
    every step's notebook ran in exactly one of them, and the two reports' exported tables are identical."""
    if os.environ.get("INVADV_PIPELINE_RUNS"):
        pytest.skip("the smoke run was given, finished (INVADV_PIPELINE_RUNS): nothing ran concurrently")
    smoke.wait_for_background()
    main, twin = (smoke.background_log(name).read_text() for name in ("main", "twin"))
    made_main, made_twin = smoke.executed_steps(main), smoke.executed_steps(twin)
    assert made_main | made_twin == set(plan(study("smoke"))), (made_main, made_twin)
    assert not made_main & made_twin, f"computed twice: {made_main & made_twin}"
    assert "another run is making this product; waiting for it" in main + twin
    tables = {root: {p.name: p.read_bytes() for p in (root / "results" / "smoke").glob("*.csv")}
              for root in (Path(os.environ["INVADV_REPORTS"]), smoke.TWIN_REPORTS)}
    first, second = tables.values()
    assert first and first == second
    # The kernels talk over Unix sockets: no transport warning among the lines a user reads.
    assert "without encryption" not in main + twin
