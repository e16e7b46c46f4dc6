"""The regression check's tolerances against the noise of many CPU kernel sets (issue 31).

Computes the smoke study under each kernel set (the CPU's own, AVX2, AVX, SSE4.1: oneDNN, ATen and MKL limited
together, as tests/smoke.other_kernels does), reads each run's tables as the regression check does
(tests/regression.smoke_tables) and keeps, per table × column × row, the largest difference from the stored
references over all sets: tests/test_regression/kernel_spread.csv. From it, per table × column, the largest
difference, the tolerance tests/regression.py holds the column to, and the margin: the smallest ratio, over the
column's rows, of the allowed difference (atol + rtol·|reference|) to the measured one. tests/test_tolerances.py
fails when a margin is below 2, and when the table in docs/explanation/reproducibility.md is not the one these give.

    python tools/kernel_spread.py [--sets native AVX2 AVX SSE41 AVX-ATen-AVX2] [--scratch DIR]   # (≈ 6 min a set)
    python tools/kernel_spread.py --sets AVX-ATen-AVX2 --merge   # add a set's differences to the stored spread
    python tools/kernel_spread.py --table      # after a tolerance changed: the docs' table from the stored spread

A run already complete in DIR/<set> is reused.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("INVADV_RUNS", str(ROOT / "runs"))  # tests.smoke reads it on import; each run sets its own

from tests import regression  # noqa: E402  (the check's own reading of the tables and its tolerances)
from tests.smoke import AVX2_SET, AVX_ATEN_AVX2_SET, SSE41_SET  # noqa: E402  (the suite's second kernel sets)

KERNEL_SETS = {
    "native": {},
    "AVX2": AVX2_SET,
    "AVX": {"ONEDNN_MAX_CPU_ISA": "AVX", "ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "AVX"},
    "SSE41": SSE41_SET,
    "AVX-ATen-AVX2": AVX_ATEN_AVX2_SET,  # nbval's set on an AVX2 CPU: oneDNN and MKL at AVX, ATen at AVX2
}
SPREAD = regression.REFERENCES / "kernel_spread.csv"
DOC = ROOT / "docs" / "explanation" / "reproducibility.md"
BEGIN = "<!-- begin kernel-spread table: python tools/kernel_spread.py --table -->"
END = "<!-- end kernel-spread table -->"
MINIMUM_MARGIN = 2  # a tolerance is at least twice the largest difference any kernel set made


def smoke_run(kernel_set: str, scratch: Path) -> Path:
    """The smoke study's runs folder computed under `kernel_set` (made now unless it is complete)."""
    runs = scratch / kernel_set
    env = {**os.environ, **KERNEL_SETS[kernel_set], "INVADV_RUNS": str(runs),
           "INVADV_REPORTS": str(scratch / f"{kernel_set}-reports"), "INVADV_THREADS": "1"}
    subprocess.run(["make", "-s", "-j2", "report", "PROFILE=smoke", f"VENV={sys.prefix}"], cwd=ROOT, env=env,
                   check=True)
    return runs


def compared(stored: dict[str, pd.DataFrame]) -> list[tuple[str, str]]:
    """The (table, column) pairs the check compares within a tolerance: float columns with one."""
    return [(name, column) for name, reference in stored.items() for column in reference.columns
            if pd.api.types.is_float_dtype(reference[column]) and any(regression.tolerance(name, column).values())]


def differences(tables: dict[str, pd.DataFrame], stored: dict[str, pd.DataFrame], kernel_set: str) -> pd.DataFrame:
    """Per compared table × column × row: the reference and |measured − reference|."""
    rows = []
    for name, column in compared(stored):
        reference = stored[name][column].to_numpy()
        measured = tables[name].reset_index(drop=True)[column].to_numpy()
        rows += [{"table": name, "column": column, "row": i, "reference": r, "difference": abs(m - r), "set": kernel_set}
                 for i, (r, m) in enumerate(zip(reference, measured)) if np.isfinite(r)]
    return pd.DataFrame(rows)


def largest(rows: pd.DataFrame) -> pd.DataFrame:
    """Per table × column × row, the largest difference over the kernel sets, and the set that made it."""
    keys = ["table", "column", "row"]
    return rows.loc[rows.groupby(keys, sort=False).difference.idxmax()].reset_index(drop=True)


def margins(spread: pd.DataFrame) -> pd.DataFrame:
    """Per table × column: the largest difference (its reference, its set), the tolerance and the margin."""
    out = []
    for (table, column), group in spread.groupby(["table", "column"], sort=False):
        bound = regression.tolerance(table, column)
        allowed = bound["atol"] + bound["rtol"] * group.reference.abs()
        ratio = (allowed / group.difference.where(group.difference > 0)).min()
        worst = group.loc[group.difference.idxmax()]
        out.append({"table": table, "column": column, "largest difference": worst.difference,
                    "at reference": worst.reference, "kernel set": worst.set if worst.difference > 0 else "–",
                    "atol": bound["atol"], "rtol": bound["rtol"], "margin": ratio if np.isfinite(ratio) else np.inf})
    return pd.DataFrame(out)


def markdown(table: pd.DataFrame) -> str:
    """The docs' table: three significant digits, margins as '×N', an unmeasurable margin as 'no difference'."""
    shown = table.copy()
    for column in ("largest difference", "at reference", "atol", "rtol"):
        shown[column] = shown[column].map(lambda v: f"{v:.3g}")
    shown["margin"] = shown["margin"].map(lambda v: f"×{v:.3g}" if np.isfinite(v) else "no difference")
    return shown.to_markdown(index=False)


def write_doc(table: str, doc: Path = DOC) -> None:
    """Replace the table between the markers of docs/explanation/reproducibility.md."""
    text = doc.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    doc.write_text(text[:start] + "\n" + table + "\n" + text[end:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(KERNEL_SETS), choices=list(KERNEL_SETS))
    parser.add_argument("--scratch", type=Path, default=ROOT / "runs" / "kernel-spread")
    parser.add_argument("--table", action="store_true", help="only rewrite the docs' table from the stored spread")
    parser.add_argument("--merge", action="store_true", help="keep the stored spread's other sets, add these")
    args = parser.parse_args()
    if not args.table:
        stored = regression.reference_tables()
        rows = pd.concat([differences(regression.smoke_tables(smoke_run(s, args.scratch)), stored, s)
                          for s in args.sets], ignore_index=True)
        if args.merge:
            rows = pd.concat([pd.read_csv(SPREAD), rows], ignore_index=True)
        largest(rows).to_csv(SPREAD, index=False, float_format="%.9g")
    table = margins(pd.read_csv(SPREAD))
    write_doc(markdown(table))
    print(markdown(table))
    low = table[table.margin < MINIMUM_MARGIN]
    if len(low):
        print(f"\nMargins below {MINIMUM_MARGIN}: widen these tolerances in tests/regression.py, then --table:")
        print(low[["table", "column", "largest difference", "margin"]].to_string(index=False))


if __name__ == "__main__":
    main()
