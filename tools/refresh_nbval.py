"""Regenerate the regression references from a fresh smoke run of the pipeline: the notebooks of
tests/nbval/ (their structure, for nbval) and the tables of tests/test_regression/ (the numbers).

Run it (`make nbval-refresh`) after a deliberate change in the science, and review the diff of
tests/test_regression/*.csv and categories.yml: that diff *is* the change in the numbers and verdicts (kernels.txt
names the CPU kernel set that computed them). Then
tools/kernel_spread.py measures the noise of the kernel sets against the new references.
Images are stripped from the notebooks (nbval does not compare them) to keep the repository small.
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / "tests" / "nbval"


def strip_images(path: Path) -> None:
    notebook = json.loads(path.read_text())
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            for mime in [m for m in output.get("data", {}) if m.startswith("image/")]:
                del output["data"][mime]
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")


def main() -> None:
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="nbval-refresh-") as scratch:
        env = {**os.environ, "INVADV_RUNS": f"{scratch}/runs", "INVADV_REPORTS": f"{scratch}/reports",
               "INVADV_THREADS": "1"}  # as in tests/conftest.py
        subprocess.run(["make", "-s", "-j2", "report", "PROFILE=smoke", f"VENV={sys.prefix}"], cwd=ROOT, env=env, check=True)
        os.environ.update(env)
        from lib.pipeline.config import study
        from lib.pipeline.dag import plan

        DEST.mkdir(exist_ok=True)
        for old in DEST.glob("*.ipynb"):
            old.unlink()
        # One notebook per step, its first task's, numbered in the plan's order, which respects dependencies: nbval
        # runs the files in name order, so every notebook finds its inputs made by an earlier one or makes them
        # itself in its kernel (a step's notebook makes its missing inputs), without a notebook start per task.
        firsts = {}
        for task in plan(study("smoke")).values():
            firsts.setdefault(task.step.name, task)
        for index, task in enumerate(firsts.values(), start=1):
            target = DEST / f"{index:02d}-{task.name}.ipynb"
            target.write_bytes(task.executed.read_bytes())
            strip_images(target)
            print(target.relative_to(ROOT))
        # The kernel set they were computed with: the suite computes with another one (tests/smoke.py).
        from lib.core import products
        from tests.smoke import REFERENCE_KERNELS_FILE

        kernels = products.load(firsts["train"].output)["provenance"]["cpu_kernels"]
        REFERENCE_KERNELS_FILE.write_text(kernels + "\n")
        # The numbers: pytest-regressions rewrites its references from the same run.
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_regression.py",
                        "--regen-all", "-k", "numbers_match or stored_verdicts"],
                       cwd=ROOT, env={**env, "INVADV_PIPELINE_RUNS": f"{scratch}/runs"}, check=True)
    print("The references changed: measure the kernel sets' spread against them (≈ 25 min), or "
          "tests/test_tolerances.py fails:\n  .venv/bin/python tools/kernel_spread.py")


if __name__ == "__main__":
    main()
