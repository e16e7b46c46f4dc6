"""The study on a real scheduler: the smoke study through `snakemake --executor slurm` on a live one-node Slurm
cluster (tests/slurm.py: munge, MariaDB, slurmdbd, slurmctld, slurmd on loopback). Every step is a Slurm job, read
back from the scheduler's accounting; a job cancelled mid-run leaves no half product and the rerun makes only what is
missing; the products are make's, key for key and number for number. `make test-cluster` runs it (`.ci/run` does,
after `make test`); it skips, saying why, where the cluster cannot start."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from lib import ROOT
from lib.pipeline import dag
from lib.pipeline.carry import finished_files
from lib.pipeline.config import study
from tests import slurm
from tests.smoke import PIPELINE_RUNS, offline_env, smoke_kernels, smoke_report

SNAKEMAKE = Path(sys.executable).with_name("snakemake")
pytestmark = [pytest.mark.cluster,
              pytest.mark.skipif(not SNAKEMAKE.exists(), reason="snakemake is not installed (make env installs it)")]
TIMING = {"seconds", "epoch_seconds", "train_seconds", "device"}  # columns that differ between any two runs


@pytest.fixture(scope="module")
def cluster():
    """The one-node cluster, up for this module's tests and gone after them."""
    why = slurm.unavailable()
    if why:
        pytest.skip(why)
    node = slurm.OneNodeSlurm()
    try:
        node.start()
    except Exception as exc:  # what went wrong is in the daemons' logs
        logs = node.logs()
        node.stop()
        pytest.fail(f"{exc}\n{logs}")
    yield node
    node.stop()


def snakemake_on_slurm(runs: Path, *args: str) -> subprocess.Popen:
    """`snakemake --executor slurm` on the smoke study, products in `runs`, two jobs at a time (the node's CPUs)."""
    env = offline_env(INVADV_RUNS=str(runs), INVADV_REPORTS=str(runs.parent / "reports"), INVADV_THREADS="1",
                      **smoke_kernels())  # make's kernel set: the products are compared number for number
    command = [str(SNAKEMAKE), "--snakefile", str(ROOT / "workflow" / "Snakefile"), "--directory", str(runs.parent),
               "--executor", "slurm", "--jobs", "2", "--default-resources", f"slurm_partition={slurm.PARTITION}",
               # squeue, not sacct, for the jobs' states: the plugin reads sacct's "CANCELLED by <uid>" as running
               # and would wait for a cancelled job forever (squeue says "CANCELLED"; jobs stay in it MinJobAge)
               "--slurm-status-command", "squeue",
               "--slurm-no-account", "--slurm-init-seconds-before-status-checks", "1",
               "--seconds-between-status-checks", "2", "--latency-wait", "30", *args, "--config", "profile=smoke"]
    log = runs.parent / f"snakemake-{time.monotonic_ns()}.log"
    with open(log, "w") as out:  # the child keeps its own handle
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    process.log = log
    return process


def finished(process: subprocess.Popen, timeout: float) -> str:
    """Wait for a snakemake run; its log."""
    process.wait(timeout=timeout)
    return process.log.read_text()


def log_tail(process: subprocess.Popen) -> str:
    """The end of a snakemake run's log so far, for a failure's message (without waiting for the run)."""
    state = "running" if process.poll() is None else f"exited with {process.returncode}"
    return f"snakemake {state}; its log ends:\n{process.log.read_text()[-3000:]}"


def jobs(node: slurm.OneNodeSlurm) -> pd.DataFrame:
    """Every job the scheduler's accounting knows: id, state and Snakemake's comment (its rule and output)."""
    out = node.run("sacct", "-X", "--parsable2", "--noheader", "--starttime", "now-1days",
                   "--format=JobID,State,Comment%400").stdout
    rows = [line.split("|", 2) for line in out.splitlines() if line]
    return pd.DataFrame(rows, columns=["job", "state", "comment"])


def running_job_of(node: slurm.OneNodeSlurm, folder: str) -> str | None:
    """The id of the running job that makes the task of product folder `folder`, if one runs now (Snakemake's
    comment on a job names its output, '/' written '_')."""
    out = node.run("squeue", "-h", "-t", "RUNNING", "-o", "%i|%k", check=False).stdout
    return next((job for job, comment in (line.split("|", 1) for line in out.splitlines() if "|" in line)
                 if f"_{folder}_" in comment), None)


def product_tables(runs: Path) -> dict[str, pd.DataFrame]:
    """Every CSV product of a runs folder, by its task folder and name (timing columns left out)."""
    return {str(path.relative_to(runs)): pd.read_csv(path).drop(columns=TIMING, errors="ignore")
            for path in sorted(runs.glob("*/*.csv"))}


def test_the_smoke_study_runs_as_slurm_jobs_resumes_after_a_cancelled_one_and_makes_makes_products(cluster, tmp_path,
                                                                                                  monkeypatch, request):
    runs = tmp_path / "runs"
    monkeypatch.setenv("INVADV_RUNS", str(runs))  # task paths follow it
    tasks = dag.plan(study("smoke"))
    victim = "train-E-200d"  # an adversarial training: long enough to be caught running

    # the victim first: with every step of equal priority, Snakemake's scheduler may leave it for last
    first = snakemake_on_slurm(runs, "--prioritize", str(tasks[victim].executed))
    request.addfinalizer(lambda: first.poll() is None and first.kill())  # a failed check leaves no run behind
    deadline = time.monotonic() + 300
    while (job := running_job_of(cluster, tasks[victim].folder.name)) is None:
        assert first.poll() is None and time.monotonic() < deadline, f"{victim} never ran: {log_tail(first)}"
        time.sleep(1)
    time.sleep(3)  # into its epochs
    cluster.run("scancel", job)
    log = finished(first, timeout=1800)
    assert first.returncode != 0, log[-3000:]  # the cancelled job fails the run
    cancelled = tasks[victim]
    assert not cancelled.executed.exists() and not cancelled.output.exists()
    assert finished_files(cancelled.folder) == [], "a cancelled step left part of its product"
    made = {name: t.executed.stat().st_mtime_ns for name, t in tasks.items() if t.executed.exists()}
    assert made, log[-3000:]

    second = snakemake_on_slurm(runs)
    request.addfinalizer(lambda: second.poll() is None and second.kill())
    log = finished(second, timeout=3600)  # against a hang: both runs took 18 min on a slow 2-core machine
    assert second.returncode == 0, log[-3000:]
    assert all(t.executed.exists() for t in tasks.values())
    assert {name: tasks[name].executed.stat().st_mtime_ns for name in made} == made  # nothing made twice
    assert (runs.parent / "reports" / "report-smoke.html").exists()

    # every step was a job of the scheduler, the cancelled one twice
    accounted = jobs(cluster)
    per_task = {name: accounted[accounted.comment.str.contains(f"_{t.folder.name}_", regex=False)]
                for name, t in tasks.items()}
    assert all((rows.state == "COMPLETED").sum() == 1 for rows in per_task.values()), accounted.to_string()
    assert (per_task[victim].state.str.startswith("CANCELLED")).sum() == 1, per_task[victim].to_string()
    step = lambda comment: next((t.folder.name for t in tasks.values() if f"_{t.folder.name}_" in comment), "")
    print(accounted.assign(comment=accounted.comment.map(step)).rename(columns={"comment": "product"}).to_string())

    # make's products, key for key and number for number
    monkeypatch.undo()  # the suite's own runs folder again
    smoke_report()
    folders = lambda path: {p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert folders(runs) == folders(PIPELINE_RUNS)
    ours, makes = product_tables(runs), product_tables(PIPELINE_RUNS)
    assert ours.keys() == makes.keys()
    for name in ours:
        pd.testing.assert_frame_equal(ours[name], makes[name], obj=name)

