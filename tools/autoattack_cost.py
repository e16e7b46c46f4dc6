"""What AutoAttack costs per image on this machine, stage by stage, to size the study's AutoAttack step (issue 29).

Trains model A briefly (or loads a checkpoint), then runs each stage of lib.core.autoattack on the same correctly
classified test images (every stage on every image: an upper bound, since AutoAttack's later stages see only the
images the earlier ones left robust) and prints seconds per image per stage and ε, with the accuracy each leaves.

    python tools/autoattack_cost.py --images 64 --eps 0.1 0.2 0.3
"""
from __future__ import annotations

import argparse
import time

import torch

from lib.core.autoattack import stages
from lib.core.data import load_split, to_input
from lib.core.protocol import TrainConfig
from lib.core.train import load_checkpoint, restore, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a checkpoint.pt of the pipeline (default: train A for --epochs)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-samples", type=int, default=10000)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--eps", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    args = parser.parse_args()
    test = load_split(False)
    if args.checkpoint:
        checkpoint = load_checkpoint(args.checkpoint)
    else:
        config = TrainConfig(model="A", epochs=args.epochs, train_samples=args.train_samples, test_samples=1000)
        checkpoint = train(config, load_split(True), test, progress=False)
    model = restore(checkpoint)[0]
    x, y = to_input(test.images[:4 * args.images]), test.labels[:4 * args.images]
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    x, y = x[correct][:args.images], y[correct][:args.images]
    print(f"{len(x)} correctly classified test images, {torch.get_num_threads()} threads")
    print(f"{'ε':>5} {'stage':>8} {'s/image':>8} {'accuracy':>9}")
    for eps in args.eps:
        for name, attack in stages(model, eps).items():
            start = time.perf_counter()
            x_adv = attack(x, y)
            seconds = time.perf_counter() - start
            with torch.no_grad():
                accuracy = (model(x_adv).argmax(1) == y).float().mean().item()
            print(f"{eps:>5g} {name:>8} {seconds / len(x):>8.3f} {accuracy:>9.3f}", flush=True)


if __name__ == "__main__":
    main()
