"""The regression check's tolerances against the noise of many CPU kernel sets (issue 31).

Computes the smoke study under each kernel set (the CPU's own, AVX2, AVX, SSE4.1: oneDNN, ATen and MKL limited
together, as tests/smoke.other_kernels does), reads each run's tables as the regression check does
(tests/regression.smoke_tables) and writes, per table × column, the largest difference from the stored references
over all sets, the set that made it, the tolerance tests/regression.py holds the column to, and the margin: the
smallest ratio, over the column's values, of the allowed difference (atol + rtol·|reference|) to the measured one.
A margin below 2 is a tolerance to widen; the table goes in docs/reproducibility.md.

    python tools/kernel_spread.py [--sets native AVX2 AVX SSE41] [--scratch DIR] [--out reports/kernel_spread.csv]

Each set is one smoke run (≈ 5 min on the 2-core CPU); a run already in DIR/<set> is reused.
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

KERNEL_SETS = {
    "native": {},
    "AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "AVX": {"ONEDNN_MAX_CPU_ISA": "AVX", "ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "AVX"},
    "SSE41": {"ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
}
REFERENCES = ROOT / "tests" / "test_regression"


def smoke_run(kernel_set: str, scratch: Path) -> Path:
    """The smoke study's runs folder computed under `kernel_set` (made now unless it is complete)."""
    runs = scratch / kernel_set
    env = {**os.environ, **KERNEL_SETS[kernel_set], "INVADV_RUNS": str(runs),
           "INVADV_REPORTS": str(scratch / f"{kernel_set}-reports"), "INVADV_THREADS": "1"}
    subprocess.run(["make", "-s", "-j2", "report", "PROFILE=smoke", f"VENV={sys.prefix}"], cwd=ROOT, env=env,
                   check=True)
    return runs


def references() -> dict[str, pd.DataFrame]:
    return {path.stem: pd.read_csv(path, index_col=0) for path in sorted(REFERENCES.glob("*.csv"))}


def differences(tables: dict[str, pd.DataFrame], stored: dict[str, pd.DataFrame], kernel_set: str) -> pd.DataFrame:
    """Per table × float column × row: |measured − reference|, the reference and the allowed difference."""
    rows = []
    for name, reference in stored.items():
        measured = tables[name].reset_index(drop=True)
        for column in reference.columns:
            if column not in measured or not pd.api.types.is_float_dtype(reference[column]):
                continue
            bound = regression.tolerance(name, column)
            ref = reference[column].to_numpy()
            diff = np.abs(measured[column].to_numpy() - ref)
            allowed = bound["atol"] + bound["rtol"] * np.abs(ref)
            rows += [{"table": name, "column": column, "set": kernel_set, "reference": r, "difference": d,
                      "allowed": a, "atol": bound["atol"], "rtol": bound["rtol"]}
                     for r, d, a in zip(ref, diff, allowed) if np.isfinite(d)]
    return pd.DataFrame(rows)


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per table × column: the largest difference and its set, the tolerance, and the margin (allowed / measured)."""
    rows = rows.assign(margin=np.where(rows.difference > 0, rows.allowed / rows.difference.where(rows.difference > 0),
                                       np.inf))
    out = []
    for (table, column), group in rows.groupby(["table", "column"], sort=False):
        worst = group.loc[group.difference.idxmax()]
        out.append({"table": table, "column": column, "max_difference": worst.difference, "at_reference": worst.reference,
                    "set": worst.set, "atol": worst.atol, "rtol": worst.rtol, "margin": group.margin.min()})
    return pd.DataFrame(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(KERNEL_SETS), choices=list(KERNEL_SETS))
    parser.add_argument("--scratch", type=Path, default=ROOT / "runs" / "kernel-spread")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "kernel_spread.csv")
    args = parser.parse_args()
    stored = references()
    rows = pd.concat([differences(regression.smoke_tables(smoke_run(s, args.scratch)), stored, s) for s in args.sets])
    table = summary(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(table.to_markdown(index=False, floatfmt=".3g"))
    if (table.margin < 2).any():
        print("\nMargins below 2 (widen these tolerances in tests/regression.py):")
        print(table[table.margin < 2][["table", "column", "max_difference", "margin"]].to_string(index=False))


if __name__ == "__main__":
    main()
