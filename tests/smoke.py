"""Run `make report PROFILE=smoke` from the tests: offline, one thread, products in the scratch folder."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from lib.config import ROOT

OFFLINE = ROOT / "tests" / "offline"  # a sitecustomize that refuses non-loopback connections
# The smoke pipeline's runs folder, apart from the one nbval's notebooks and the in-process tests fill
# (INVADV_RUNS): the two are independent computations of the same study, which the determinism test compares.
PIPELINE_RUNS = Path(os.environ["INVADV_RUNS"]).with_name("pipeline-runs")


def offline_env(**changes: str) -> dict[str, str]:
    """The test environment with network access refused in every Python process started from it."""
    path = os.pathsep.join(p for p in (str(OFFLINE), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **changes}


def run_make_report(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`make -j2 report PROFILE=smoke ARGS...` with this interpreter's environment (two steps at a time, one thread each)."""
    return subprocess.run(["make", "-s", "-j2", "report", "PROFILE=smoke", f"VENV={sys.prefix}", *args], cwd=ROOT,
                          capture_output=True, text=True, env=env or offline_env(INVADV_RUNS=str(PIPELINE_RUNS)))


def make_report(*args: str, env: dict[str, str] | None = None) -> str:
    """Like run_make_report, asserting success; returns the log."""
    result = run_make_report(*args, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def executed_steps(log: str) -> set[str]:
    """The steps whose notebook ran, from make's log."""
    return set(re.findall(r"^\[([\w.-]+)\] \d\d_", log, flags=re.M))


def planned_steps(log: str) -> set[str]:
    """The steps `make -n report` would run, from its log."""
    return set(re.findall(r" execute ([\w.-]+) --key ", log))
