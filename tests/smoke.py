"""Run `make report PROFILE=smoke` from the tests: offline, one thread, products in the scratch folder."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from lib.config import ROOT

OFFLINE = ROOT / "tests" / "offline"  # a sitecustomize that refuses non-loopback connections


def offline_env(**changes: str) -> dict[str, str]:
    """The test environment with network access refused in every Python process started from it."""
    path = os.pathsep.join(p for p in (str(OFFLINE), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **changes}


def run_make_report(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`make -j2 report PROFILE=smoke ARGS...` with this interpreter's environment (two steps at a time, one thread each)."""
    return subprocess.run(["make", "-s", "-j2", "report", "PROFILE=smoke", f"VENV={sys.prefix}", *args], cwd=ROOT,
                          capture_output=True, text=True, env=env or offline_env())


def make_report(*args: str, env: dict[str, str] | None = None) -> str:
    """Like run_make_report, asserting success; returns the log."""
    result = run_make_report(*args, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def executed_steps(log: str) -> set[str]:
    """The steps whose notebook ran, from make's log."""
    return set(re.findall(r"^\[([\w.-]+)\] \d\d_", log, flags=re.M))
