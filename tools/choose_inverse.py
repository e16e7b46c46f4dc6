"""Evidence for the defaults of models C and D: train them over a small grid of ε_train, C's EMA rate and the
inner PGD steps per batch (T) beside A and B, and compare clean accuracy, robust accuracy and compactness.

Usage: python tools/choose_inverse.py --epochs 1 --train-samples 20000 --out reports/sweeps/inverse_sweep.csv
       python tools/choose_inverse.py --epochs 2 --train-samples 30000 --eps 0.1 --rates 0.1 --steps 1 2 3 5 \
           --seeds 0 1 --robust-eps 0.1 0.2 0.3 --robust-steps 40 --robust-samples 500 --out reports/sweeps/train_steps_sweep.csv
The inverse adversaries use T steps of 2.5·ε/T (Madry et al.'s rule); robustness is PGD at --robust-eps
(--robust-steps steps of 0.01, random start) on the first --robust-samples test images. For C and D the column
center_cos_vs_T<max> says whether T steps find the same adversarial centers as the most steps of the grid: the
smallest cosine over classes between the class means of the trained model's features of its inverse adversaries
at ε_train (those test images) made with T steps and with the grid's largest T.
"""
import argparse
import itertools
from pathlib import Path

import pandas as pd
import torch

from lib.core.attacks import inverse_adversary
from lib.core.centers import class_means, cosine
from lib.core.data import load_split, to_input
from lib.core.evaluation import evaluate
from lib.core.precision import CHOICES, resolve
from lib.core.protocol import DEFAULT_CENTER_WEIGHT, TrainConfig
from lib.core.provenance import default_device, device_name
from lib.core.recipes import recipe
from lib.core.train import restore, train


def inverse_config(eps: float, steps: int) -> dict:
    """C and D's inverse-adversary parameters: T steps of 2.5·ε/T."""
    return {"train_eps": eps, "train_steps": steps, "train_step_size": 2.5 * eps / steps}


def same_centers(model, split, config: TrainConfig, reference_steps: int) -> float:
    """Smallest class cosine between the adversarial centers made with config's T steps and with reference_steps."""
    x, y = to_input(split.images).to(split.labels.device), split.labels

    @torch.no_grad()
    def centers(steps: int) -> torch.Tensor:
        with torch.enable_grad():
            x_inv = inverse_adversary(model, x, y, config.train_eps, 2.5 * config.train_eps / steps, steps,
                                      config.precision)
        return class_means(model.features(x_inv).cpu(), y.cpu())

    return cosine(centers(config.train_steps), centers(reference_steps)).min().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-samples", type=int, default=20000)
    parser.add_argument("--eps", type=float, nargs="+", default=[0.1, 0.3])
    parser.add_argument("--rates", type=float, nargs="+", default=[0.1, 0.5])
    parser.add_argument("--steps", type=int, nargs="+", default=[5], help="inner PGD steps per batch (T)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="every model is trained at each")
    parser.add_argument("--robust-eps", type=float, nargs="+", default=[0.1, 0.2])
    parser.add_argument("--robust-steps", type=int, default=20)
    parser.add_argument("--robust-samples", type=int, default=1000)
    parser.add_argument("--precision", choices=CHOICES, default="fp32", help="of the training and PGD steps")
    parser.add_argument("--out", type=Path, default=Path("reports/sweeps/inverse_sweep.csv"))
    args = parser.parse_args()
    device = default_device()
    precision = resolve(args.precision, device.type)
    train_split, test_split = load_split(True), load_split(False)
    robust_split = test_split.subset(args.robust_samples).to(device)
    reference_steps = max(args.steps)
    rows = []
    for seed in args.seeds:
        common = {"epochs": args.epochs, "train_samples": args.train_samples, "test_samples": 2000, "seed": seed,
                  "center_weight": DEFAULT_CENTER_WEIGHT, "precision": precision}
        configs = [TrainConfig(model="A", **{**common, "center_weight": 0.0}), TrainConfig(model="B", **common)]
        configs += [TrainConfig(model="C", ema_rate=rate, **common, **inverse_config(eps, steps))
                    for eps, rate, steps in itertools.product(args.eps, args.rates, args.steps)]
        configs += [TrainConfig(model="D", **common, **inverse_config(eps, steps))
                    for eps, steps in itertools.product(args.eps, args.steps)]
        for config in configs:
            checkpoint = train(config, train_split, test_split, device)
            model, _ = restore(checkpoint, device)
            row = evaluate(model, robust_split, tuple(args.robust_eps), args.robust_steps, 0.01, seed, config.model,
                           precision)
            inverse = recipe(config.model).targets is not None
            seconds = sum(e["seconds"] for e in checkpoint["history"]) / config.epochs
            rows.append({"model": config.model, "seed": seed, "train_eps": config.train_eps if inverse else None,
                         "ema_rate": config.ema_rate if config.model == "C" else None,
                         "train_steps": config.train_steps if inverse else None, **row,
                         f"center_cos_vs_T{reference_steps}":
                             same_centers(model, robust_split, config, reference_steps) if inverse else None,
                         "epoch_seconds": round(seconds, 1), "epochs": config.epochs,
                         "train_samples": config.train_samples, "precision": precision, "device": device_name(device)})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(table.drop(columns="device").round(4).to_string(index=False))


if __name__ == "__main__":
    main()
