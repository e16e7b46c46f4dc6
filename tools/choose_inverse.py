"""Evidence for the defaults of models C and D: train them over a small grid of ε_train (and C's EMA
rate) beside A and B, and compare clean accuracy, robust accuracy and compactness.

Usage: python tools/choose_inverse.py --epochs 1 --train-samples 20000 --out reports/inverse_sweep.csv
The inverse adversaries use T = --steps steps of 2.5·ε/T (Madry et al.'s rule); robustness is PGD at
--robust-eps (--robust-steps steps of 0.01, random start) on the first --robust-samples test images.
"""
import argparse
import itertools
from pathlib import Path

import pandas as pd

from lib.config import DEFAULT_CENTER_WEIGHT, TrainConfig
from lib.data import load_split
from lib.evaluation import evaluate
from lib.provenance import default_device, device_name
from lib.train import restore, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-samples", type=int, default=20000)
    parser.add_argument("--eps", type=float, nargs="+", default=[0.1, 0.3])
    parser.add_argument("--rates", type=float, nargs="+", default=[0.1, 0.5])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--robust-eps", type=float, nargs="+", default=[0.1, 0.2])
    parser.add_argument("--robust-steps", type=int, default=20)
    parser.add_argument("--robust-samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("reports/inverse_sweep.csv"))
    args = parser.parse_args()
    device = default_device()
    train_split, test_split = load_split(True), load_split(False)
    common = {"epochs": args.epochs, "train_samples": args.train_samples, "test_samples": 2000, "seed": args.seed,
              "center_weight": DEFAULT_CENTER_WEIGHT}
    inverse = lambda eps: {"train_eps": eps, "train_steps": args.steps, "train_step_size": 2.5 * eps / args.steps}
    configs = [TrainConfig(model="A", **{**common, "center_weight": 0.0}), TrainConfig(model="B", **common)]
    configs += [TrainConfig(model="C", ema_rate=rate, **common, **inverse(eps))
                for eps, rate in itertools.product(args.eps, args.rates)]
    configs += [TrainConfig(model="D", **common, **inverse(eps)) for eps in args.eps]
    rows = []
    for config in configs:
        checkpoint = train(config, train_split, test_split, device)
        model, _ = restore(checkpoint, device)
        row = evaluate(model, test_split.subset(args.robust_samples), tuple(args.robust_eps), args.robust_steps,
                       0.01, args.seed, config.model)
        seconds = sum(e["seconds"] for e in checkpoint["history"]) / config.epochs
        rows.append({"model": config.model, "train_eps": config.train_eps if config.model in "CD" else None,
                     "ema_rate": config.ema_rate if config.model == "C" else None, **row,
                     "epoch_seconds": round(seconds, 1), "epochs": config.epochs,
                     "train_samples": config.train_samples, "device": device_name(device)})
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(table.drop(columns="device").round(4).to_string(index=False))


if __name__ == "__main__":
    main()
