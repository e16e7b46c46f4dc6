"""The same registry run by Snakemake (workflow/Snakefile): the DAG it plans, and products equal to make's."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lib import ROOT
from lib.pipeline import dag
from lib.pipeline.config import study
from tests.smoke import copy_of_smoke_runs, offline_env

SNAKEMAKE = Path(sys.executable).with_name("snakemake")
pytestmark = pytest.mark.skipif(not SNAKEMAKE.exists(), reason="snakemake is not installed (make env installs it)")


def snakemake(runs: Path, *args: str) -> subprocess.CompletedProcess:
    """`snakemake --cores 2 --config profile=smoke ARGS` on the runs folder `runs` (its metadata kept there too)."""
    env = offline_env(INVADV_RUNS=str(runs), INVADV_REPORTS=str(runs.parent / "reports"), INVADV_THREADS="1")
    return subprocess.run([str(SNAKEMAKE), "--snakefile", str(ROOT / "workflow" / "Snakefile"), "--directory",
                           str(runs.parent), "--cores", "2", *args, "--config", "profile=smoke"],
                          capture_output=True, text=True, env=env, cwd=ROOT)


def job_counts(log: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table: jobs per rule."""
    table = log[log.index("Job stats:"):]
    return {rule: int(n) for rule, n in re.findall(r"^(step|report)\s+(\d+)$", table, flags=re.M)}


def test_snakemake_plans_every_task_of_the_registry(tmp_path, monkeypatch):
    result = snakemake(tmp_path / "runs", "--dry-run")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    monkeypatch.setenv("INVADV_RUNS", str(tmp_path / "runs"))  # task paths follow it
    tasks = dag.plan(study("smoke"))
    assert set(re.findall(r"output: (\S+)", result.stdout)) == {str(t.executed) for t in tasks.values()}
    assert job_counts(result.stdout) == {"step": len(tasks), "report": 1}


@pytest.mark.pipeline
def test_snakemake_remakes_a_step_and_what_follows_as_make_made_them(tmp_path, monkeypatch):
    """A product removed: Snakemake plans it again and what reads it (its output is newer than theirs: make's rule,
    Snakemake's mtime trigger), and the step it makes is make's computation, number for number. What follows is
    planned, not run: the aggregates are the same `execute` and `render` commands make's own tests run."""
    runs = copy_of_smoke_runs(tmp_path / "runs")  # the suite's smoke products
    monkeypatch.setenv("INVADV_RUNS", str(runs))  # task paths follow it
    tasks = dag.plan(study("smoke"))
    centers = tasks["centers"]
    made_by_make = pd.read_csv(centers.output)
    untouched = {name: t.executed.stat().st_mtime_ns for name, t in tasks.items() if name != "centers"}
    shutil.rmtree(centers.folder)

    planned = snakemake(runs, "--dry-run", "--printshellcmds")
    assert planned.returncode == 0, planned.stdout[-3000:] + planned.stderr[-3000:]
    assert job_counts(planned.stdout) == {"step": 3, "report": 1}
    assert {f"execute {name} --key {tasks[name].key}" for name in ("centers", "extension", "figures")} <= set(
        re.findall(r"execute \S+ --key \w+", planned.stdout))
    assert re.search(r"-m lib\.pipeline --profile smoke --set '' render", planned.stdout)

    result = snakemake(runs, str(centers.executed))  # the step alone
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert job_counts(result.stderr) == {"step": 1}
    assert {name: tasks[name].executed.stat().st_mtime_ns for name in untouched} == untouched
    pd.testing.assert_frame_equal(pd.read_csv(centers.output), made_by_make)  # the same computation, same numbers
