"""Evidence for model E's method (issue 32): adversarial training at ε = 0.3 by PGD with few steps, FGSM with a random
start (Wong et al. 2020) and N-FGSM (de Jorge et al. 2022), each trained at the same protocol and seeds, compared in
clean and PGD-40 accuracy, in the held-out robustness curve (catastrophic overfitting shows there as a collapse) and
in cost.

Usage: python tools/choose_adversarial.py --protocol quick --methods fgsm-rs n-fgsm pgd:2 pgd:5 \
           --out reports/sweeps/adversarial_methods_quick.csv
       python tools/choose_adversarial.py --protocol paper --methods fgsm-rs --epochs 6 --robust-samples 1000 \
           --out reports/sweeps/adversarial_methods_paper_fgsm-rs.csv --checkpoints runs/choose_adversarial
Each model is E as the study's --protocol trains it (lib.pipeline.config), with the method's at_method and at_steps
and, where given, fewer --epochs: the learning rate is constant, so a shorter run is the longer one's first epochs.
Robustness is PGD (--robust-steps steps of 0.01, random start) at --robust-eps on the first --robust-samples test
images; the curve (one row per epoch, in <out>_epochs.csv) is the training's own monitor, PGD-10 at ε = 0.3 on the
first 500 test images (lib.core.recipes.heldout_robustness).
"""
import argparse
import dataclasses
from pathlib import Path

import pandas as pd

from lib.core.data import load_split
from lib.core.evaluation import evaluate
from lib.core.provenance import default_device, device_name
from lib.core.train import restore, train, train_or_load
from lib.pipeline.config import study


def method_config(spec: str) -> dict:
    """'pgd:5' -> PGD with 5 steps; 'fgsm-rs', 'n-fgsm' -> that single-step method."""
    method, _, steps = spec.partition(":")
    return {"at_method": method, "at_steps": int(steps) if steps else 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=["quick", "paper"], default="quick", help="the study profile E follows")
    parser.add_argument("--epochs", type=int, help="fewer epochs than the protocol's (default: its own)")
    parser.add_argument("--methods", nargs="+", default=["pgd:2", "pgd:5", "fgsm-rs", "n-fgsm"],
                        help="at_method[:at_steps] for each candidate")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--robust-eps", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    parser.add_argument("--robust-steps", type=int, default=40)
    parser.add_argument("--robust-samples", type=int, default=500)
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto", help="of the training and PGD steps")
    parser.add_argument("--out", type=Path, default=Path("reports/sweeps/adversarial_methods_quick.csv"))
    parser.add_argument("--checkpoints", type=Path,
                        help="a folder for each candidate's checkpoint: a run stopped midway resumes at its last epoch")
    args = parser.parse_args()
    device = default_device()
    s = study(args.protocol, f"precision={args.precision}")
    precision = s.precision
    train_split, test_split = load_split(True), load_split(False)
    robust_split = test_split.subset(args.robust_samples).to(device)
    rows, epochs = [], []
    for seed in args.seeds:
        for spec in args.methods:
            config = dataclasses.replace(s.train_config("E", 200, seed), **method_config(spec),
                                         epochs=args.epochs or s.epochs)
            if args.checkpoints:
                args.checkpoints.mkdir(parents=True, exist_ok=True)
                path = args.checkpoints / f"E-{spec.replace(':', '')}-s{seed}-{config.epochs}ep.pt"
                checkpoint = train_or_load(config, path, train_split, test_split, device)
            else:
                checkpoint = train(config, train_split, test_split, device)
            model, _ = restore(checkpoint, device)
            row = evaluate(model, robust_split, tuple(args.robust_eps), args.robust_steps, 0.01, seed, "E", precision)
            history = checkpoint["history"]
            epochs += [{"method": spec, "seed": seed, **h} for h in history]
            rows.append({"method": spec, "seed": seed, **row,
                         "heldout_pgd_best": max(h["heldout_pgd"] for h in history),
                         "heldout_pgd_last": history[-1]["heldout_pgd"],
                         "epoch_seconds": round(sum(h["seconds"] for h in history) / len(history), 1),
                         "epochs": config.epochs, "train_samples": config.train_samples, "precision": precision,
                         "device": device_name(device)})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    pd.DataFrame(epochs).to_csv(args.out.with_name(args.out.stem + "_epochs.csv"), index=False)
    print(table.drop(columns="device").round(4).to_string(index=False))


if __name__ == "__main__":
    main()
