"""Does bf16 change the study's numbers more than a change of seed does? The fidelity table of the paper protocol.

Usage: python tools/fidelity.py RUNS [RUNS ...] [--centers fp32-a76638a:0:reports/reference/centers_a76638a.csv] \
           --out reports/sweeps/fidelity_paper.csv
Every training of A-200d / B-200d found under RUNS/paper (its checkpoint says its precision and seed) gives its
test accuracy and compactness (within / between class scatter of its test features); every centers step (its
executed notebook says the study's overrides) gives the class-averaged cosines of Figures 2 and 3 and the MSE of
Figure 3, per ε; --centers adds a centers.csv made elsewhere as PRECISION:SEED:PATH. The table puts fp32 and bf16
of the first seed side by side with fp32 of the second: a difference passes when |bf16 − fp32| ≤ |seed 1 − seed 0|.
Every other seed-0 case (e.g. an fp32 run of older code, whose kernels differ) gets the same test, as a yardstick:
if bf16 were merely another seed, it would pass only half of them (|X − Y| ≤ |X − Z| for exchangeable X, Y, Z).
The claims' verdicts are computed from each case's numbers with the report's own code.
"""
import argparse
import json
from pathlib import Path

import pandas as pd

from lib.analysis import claims, tables
from lib.core.centers import compactness, split_features
from lib.core.data import load_split
from lib.core.train import load_checkpoint, restore
from lib.pipeline.config import study

MODELS = ("A-200d", "B-200d")
KEYS = ("quantity", "model", "eps")


def trainings(runs: Path, test) -> list[dict]:
    """Accuracy and compactness of every 200-d A/B checkpoint under runs/paper, with its precision and seed."""
    rows = []
    for path in sorted(runs.glob("paper/train-[AB]-200d-*/checkpoint.pt")):
        checkpoint = load_checkpoint(path)
        config = checkpoint["config"]
        model, _ = restore(checkpoint)
        features = split_features(model, test).cpu()
        case = {"precision": config["precision"], "seed": config["seed"], "model": f"{config['model']}-200d"}
        rows.append({**case, "quantity": "test accuracy", "eps": None, "value": checkpoint["history"][-1]["test_acc"]})
        rows.append({**case, "quantity": "compactness", "eps": None, "value": compactness(features, test.labels).item()})
    return rows


def centers(path: Path, precision: str, seed: int) -> list[dict]:
    """Figure 2 and 3's numbers of one centers.csv: class-averaged cosine to each reference, and B's MSE, per ε."""
    averages = tables.class_average(pd.read_csv(path))
    rows = [{"precision": precision, "seed": seed, "model": r.model, "quantity": f"cos(adversarial center, {r.reference})",
             "eps": r.eps, "value": r.cosine} for r in averages.itertuples() if r.model in MODELS]
    rows += [{"precision": precision, "seed": seed, "model": r.model, "quantity": "relative MSE to center",
              "eps": r.eps, "value": r.relative_mse} for r in averages.itertuples()
             if r.model == "B-200d" and r.reference == "center"]
    return rows


def centers_steps(runs: Path) -> list[tuple[Path, str, int]]:
    """(centers.csv, precision, seed) of every centers step under runs/paper, read from its executed notebook."""
    found = []
    for notebook in sorted(runs.glob("paper/centers-*/03_centers.ipynb")):
        parameters = json.loads(notebook.read_text())["metadata"]["papermill"]["parameters"]
        s = study(parameters["profile"], parameters["overrides"])
        found.append((notebook.with_name("centers.csv"), s.precision, s.seed))
    return found


def verdicts(path: Path) -> dict[str, str]:
    """Claims 1–3's verdicts from one centers.csv, as the report computes them."""
    table = claims.check(tables.class_average(pd.read_csv(path)))
    return {claim: verdict for claim, verdict in zip(table.claim, table.verdict) if claim <= 3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="INVADV_RUNS folders of paper-protocol runs")
    parser.add_argument("--centers", action="append", default=[], help="PRECISION:SEED:PATH of a centers.csv")
    parser.add_argument("--out", type=Path, default=Path("reports/sweeps/fidelity_paper.csv"))
    args = parser.parse_args()
    test = load_split(False)
    found = [(Path(p), precision, int(seed)) for precision, seed, p in (c.split(":", 2) for c in args.centers)]
    rows = []
    for runs in args.runs:
        rows += trainings(runs, test)
        found += centers_steps(runs)
    for path, precision, seed in found:
        rows += centers(path, precision, seed)
        print(f"claims of {precision} seed {seed}: {verdicts(path)}")
    long = pd.DataFrame(rows)
    wide = long.set_index(["quantity", "model", "eps", "precision", "seed"]).value.unstack(["precision", "seed"])
    wide = wide.reset_index()
    wide.columns = [" ".join(str(c) for c in col if c != "").strip() for col in wide.columns]
    for case in ("fp32 0", "bf16 0", "fp32 1"):  # a case not (yet) measured stays empty
        wide[case] = wide.get(case, float("nan"))
    # Every other case of seed 0 (bf16; fp32 made by other code or kernels) against fp32 of seed 0.
    others = [c for c in wide.columns if c.endswith(" 0") and c != "fp32 0" and c not in KEYS]
    seed_spread = (wide["fp32 1"] - wide["fp32 0"]).abs()
    wide["seed 1 - seed 0"] = wide["fp32 1"] - wide["fp32 0"]
    for case in others:
        wide[f"{case} - fp32 0"] = wide[case] - wide["fp32 0"]
        wide[f"{case} within seed spread"] = (wide[f"{case} - fp32 0"].abs() <= seed_spread).where(wide[case].notna())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    wide.to_csv(args.out, index=False)
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(wide.round(4).to_string(index=False))
    group = wide.quantity + " · " + wide.model
    summary = pd.DataFrame({"rows": group.value_counts(sort=False),
                            "max |seed 1 - seed 0|": seed_spread.groupby(group, sort=False).max()})
    for case in others:
        summary[f"{case}: within"] = wide[f"{case} within seed spread"].groupby(group, sort=False).sum()
        summary[f"{case}: max diff"] = wide[f"{case} - fp32 0"].abs().groupby(group, sort=False).max()
    print(summary.round(4).to_string())

if __name__ == "__main__":
    main()
