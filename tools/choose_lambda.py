"""Evidence for the default λ: train A and B at several λ, compare accuracy and class compactness.

Usage: python tools/choose_lambda.py --epochs 3 --lambdas 0.003 0.01 0.03 0.1 --out reports/sweeps/lambda_sweep.csv
Compactness is within-class over between-class scatter of test features (scale-free), and
`scatter_ratio_vs_A` is B's compactness divided by A's (lower = more compact).
"""
import argparse
import time
from pathlib import Path

import pandas as pd

from lib.core.centers import compactness, extract_features, within_class_scatter
from lib.core.data import load_split, to_input
from lib.core.protocol import TrainConfig
from lib.core.provenance import default_device, device_name
from lib.core.train import restore, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lambdas", type=float, nargs="+", default=[0.003, 0.01, 0.03, 0.1])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("reports/sweeps/lambda_sweep.csv"))
    parser.add_argument("--baseline", type=Path, help="reuse model A's row from this CSV (same epochs and seed) "
                                                       "instead of training A again; its rows are kept in --out")
    args = parser.parse_args()
    device = default_device()
    train_split, test_split = load_split(True), load_split(False)
    test_x, test_y = to_input(test_split.images).to(device), test_split.labels.to(device)
    rows, runs = [], [("B", lam) for lam in args.lambdas]
    if args.baseline:
        previous = pd.read_csv(args.baseline)
        previous = previous[(previous.epochs == args.epochs) & (previous.seed == args.seed)]
        if "A" not in set(previous.model):
            raise SystemExit(f"error: {args.baseline} has no model A row for epochs={args.epochs}, seed={args.seed}")
        rows = previous.drop(columns="scatter_ratio_vs_A").to_dict("records")
    else:
        runs.insert(0, ("A", 0.0))
    for model_name, lam in runs:
        config = TrainConfig(model=model_name, center_weight=lam, epochs=args.epochs, seed=args.seed)
        start = time.perf_counter()
        model, _ = restore(train(config, train_split, test_split, device), device)
        features = extract_features(model, test_x)
        rows.append({"model": model_name, "lambda": lam, "epochs": args.epochs, "seed": args.seed,
                     "test_acc": (model.classify(features).argmax(1) == test_y).float().mean().item(),
                     "within_scatter": within_class_scatter(features, test_y).item(),
                     "compactness": compactness(features, test_y).item(),
                     "seconds": round(time.perf_counter() - start, 1), "device": device_name(device)})
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    table["scatter_ratio_vs_A"] = table["compactness"] / table.loc[table.model == "A", "compactness"].iloc[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
