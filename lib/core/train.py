"""Train a model with the protocol of docs/study.md §2: the epoch loop, checkpoints and resuming. What differs between
models (A: cross-entropy; B: + λ·center loss; the extension's C and D, which pull features towards inverse
adversaries instead) is each model's recipe, lib.core.recipes."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from lib.core import products
from lib.core.centers import references
from lib.core.data import Split, batches
from lib.core.errors import Diverged, ProductError
from lib.core.finite import check_finite
from lib.core.losses import CenterLoss
from lib.core.models import SmallCNN
from lib.core.precision import autocast
from lib.core.protocol import NUM_CLASSES, TrainConfig, model_name
from lib.core.provenance import provenance
from lib.core.recipes import Batch, key_params, recipe

SYNC_EVERY = 32  # batches between reads of the loss's finiteness on a GPU (see train_epoch)


@torch.no_grad()
def accuracy(model: SmallCNN, split: Split, batch_size: int = 1000) -> float:
    """Top-1 accuracy in eval mode."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=split.labels.device)
    for x, y in batches(split, batch_size):
        correct += (model(x).argmax(1) == y).sum()
    model.train(was_training)
    return correct.item() / len(split)


def build(config: TrainConfig, device: torch.device | str = "cpu") -> tuple[SmallCNN, CenterLoss]:
    """A fresh model and its recipe's centers for `config`, initialised from its seed."""
    torch.manual_seed(config.seed)
    # channels_last: oneDNN's and cuDNN's fast convolution layout (1.3-1.7x per epoch on CPU, `make bench`).
    model = SmallCNN(config.feature_dim, config.dropout, NUM_CLASSES).to(device, memory_format=torch.channels_last)
    return model, recipe(config.model).centers(config).to(device)


def divergence_cause(config: TrainConfig) -> str:
    """What most likely made a training diverge, for the error message: a loss term's weight, else the rate."""
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    weights = [term.weight for term in recipe(config.model).terms if term.weight and getattr(config, term.weight) > 0]
    if weights:
        values = ", ".join(f"{name} = {getattr(config, name):g}" for name in weights)
        defaults = ", ".join(f"{name} = {fields[name]:g}" for name in weights)
        return f"{values} is too large for the learning rate {config.lr:g}; lower it (the default: {defaults})"
    return f"the learning rate {config.lr:g} is too large for this model"


def train_epoch(model: SmallCNN, centers: CenterLoss, optimizer: torch.optim.Optimizer, split: Split,
                config: TrainConfig, generator: torch.Generator, epoch: int = 1) -> dict[str, float]:
    """One pass over `split` as the model's recipe says; returns the epoch's mean cross-entropy, loss terms and loss,
    and its running train accuracy. Stops with Diverged at the first non-finite loss."""
    plan = recipe(config.model)
    weights = [plan.weight(term, config) for term in plan.terms]
    model.train()
    device = split.labels.device
    sums = torch.zeros(2 + len(plan.terms), device=device)  # CE, terms, correct: summed on device, one sync an epoch
    n_batches = -(-len(split) // config.batch_size)
    # Reading the loss's finiteness is a host sync: every batch on a CPU (free there), every SYNC_EVERY-th on a
    # GPU, where the first bad batch is recorded on the device so the message still names it.
    check_every = 1 if device.type == "cpu" else SYNC_EVERY
    first_bad = torch.full((), -1, dtype=torch.long, device=device)
    for batch, (x, y) in enumerate(tqdm(batches(split, config.batch_size, shuffle=True, generator=generator),
                                        total=n_batches, desc=f"epoch {epoch}", leave=False, mininterval=2), 1):
        targets = plan.targets(model, x, y, config) if plan.targets is not None else None
        if plan.centers_from == "targets":  # this batch's targets already count towards the centers
            centers.update(targets, y)
        inputs = plan.inputs(model, x, y, config) if plan.inputs is not None else x
        with autocast(config.precision, device):  # bf16 convolutions and products; losses reduce in fp32
            features = model.features(inputs)
            logits = model.classify(features)
            features = features.float()
        ce = F.cross_entropy(logits.float(), y)
        outputs = Batch(features, logits, y, centers, targets, model, x)
        values = [term.value(outputs) for term in plan.terms]
        loss = ce
        for weight, value in zip(weights, values):
            if weight > 0:  # a term weighted 0 is only recorded: it adds nothing to the graph
                loss = loss + weight * value
        first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()), batch, first_bad)
        if (batch % check_every == 0 or batch == n_batches) and (bad := int(first_bad)) > 0:
            raise Diverged(f"training {model_name(config.model, config.feature_dim)} (seed {config.seed}) diverged at "
                           f"epoch {epoch}, batch {bad} of {n_batches}: the loss became non-finite. Likely cause: "
                           f"{divergence_cause(config)}. No product was written")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if plan.centers_from == "features":
            centers.update(features, y)
        with torch.no_grad():
            correct = logits.argmax(1).eq(y).sum()
            sums += torch.stack([ce.detach() * len(y), *(v.detach() * len(y) for v in values), correct.float()])
    check_finite(f"training {model_name(config.model, config.feature_dim)} (seed {config.seed}), end of epoch {epoch}",
                 divergence_cause(config), weights=torch.cat([p.detach().flatten() for p in model.parameters()]),
                 centers=centers.centers)
    ce_mean, *term_means, correct = (sums / len(split)).tolist()
    metrics = {"ce": ce_mean, **{term.name: mean for term, mean in zip(plan.terms, term_means)}}
    metrics["loss"] = ce_mean + sum(weight * mean for weight, mean in zip(weights, term_means))
    return {**metrics, "train_acc_running": correct}


def rng_state(device: torch.device | str) -> dict:
    """The global RNG streams training draws from (dropout), to resume bit-identically."""
    device = torch.device(device)
    return {"cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def set_rng_state(state: dict, device: torch.device | str) -> None:
    """Restore what rng_state saved."""
    torch.set_rng_state(state["cpu"])
    if state["cuda"] is not None and torch.device(device).type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], torch.device(device))


def train(config: TrainConfig, train_split: Split, test_split: Split, device: torch.device | str = "cpu",
          progress: bool = True, state_path: Path | str | None = None) -> dict:
    """Train; return a checkpoint: weights, centers, config, per-epoch history, provenance.

    With `state_path`, the full training state (weights, optimizer, centers, RNG streams, history)
    is saved there atomically after every epoch and a run resumes from it, ending with the same
    weights as an uninterrupted run. train_acc_running is measured on the fly with dropout active
    (free); test_acc is a clean eval-mode pass over the test split after every epoch.
    """
    plan = recipe(config.model)
    model, centers = build(config, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    history = []
    if state_path is not None and Path(state_path).exists():
        state = load_checkpoint(state_path, expected=config)
        model.load_state_dict(state["model"])
        centers.load_state_dict(state["center_loss"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        set_rng_state(state["rng"], device)
        history = state["history"]
    train_split = train_split.subset(config.train_samples).to(device)
    test_split = test_split.subset(config.test_samples).to(device)
    epochs = tqdm(range(len(history) + 1, config.epochs + 1), desc=f"train {config.model}/{config.feature_dim}d",
                  disable=not progress, initial=len(history), total=config.epochs)
    for epoch in epochs:
        start = time.perf_counter()
        metrics = train_epoch(model, centers, optimizer, train_split, config, generator, epoch)
        metrics["test_acc"] = accuracy(model, test_split)
        model.eval()
        metrics |= {monitor.name: monitor.value(model, test_split, config) for monitor in plan.monitors}
        metrics["seconds"] = time.perf_counter() - start
        history.append({"epoch": epoch, **metrics})
        epochs.set_postfix(ce=f"{metrics['ce']:.4f}", test_acc=f"{metrics['test_acc']:.4f}")
        if state_path is not None and epoch < config.epochs:
            products.save({"config": config.to_dict(), "model": model.state_dict(),
                           "center_loss": centers.state_dict(), "optimizer": optimizer.state_dict(),
                           "generator": generator.get_state(), "rng": rng_state(device), "history": history},
                          state_path)
    return {
        "model": {k: v.cpu() for k, v in model.state_dict().items()},
        "centers": centers.centers.cpu(),
        "config": config.to_dict(),
        "history": history,
        "provenance": provenance(device, config.precision),
    }


def load_checkpoint(path: Path | str, expected: TrainConfig | None = None) -> dict:
    """Load a checkpoint safely (weights_only) and check it was made with the expected config."""
    checkpoint = products.load(path)
    # Only what the training read is compared (its key's values), so that a field added to TrainConfig later, or a
    # value the model never reads, does not refuse a checkpoint that is exactly the requested training.
    stored = checkpoint.get("config", {})
    requested = key_params(expected) if expected is not None else {}
    if expected is not None and {k: stored.get(k) for k in requested} != requested:
        diff = {k: (stored.get(k), v) for k, v in requested.items() if stored.get(k) != v}
        raise ProductError(f"checkpoint {path} was made with another config (stored, requested): {diff}. "
                           "Delete it or give the requested model another path")
    return checkpoint


def restore(checkpoint: dict, device: torch.device | str = "cpu") -> tuple[SmallCNN, CenterLoss]:
    """Model (eval mode) and centers from a checkpoint."""
    config = TrainConfig.from_dict(checkpoint["config"])
    model, centers = build(config, device)
    model.load_state_dict(checkpoint["model"])
    centers.centers.copy_(checkpoint["centers"])
    return model.eval(), centers


def train_or_load(config: TrainConfig, path: Path | str, train_split: Split, test_split: Split,
                  device: torch.device | str = "cpu") -> dict:
    """The checkpoint at `path` if it was made with `config`; otherwise train and save it there.

    The checkpoint also carries the model's references (feature means on both splits, W, centers).
    """
    path = Path(path)
    if path.exists():
        return load_checkpoint(path, expected=config)
    state_path = path.with_name(f".{path.stem}.resume.pt")  # per-epoch state, removed once the checkpoint is saved
    checkpoint = train(config, train_split, test_split, device, state_path=state_path)
    start = time.perf_counter()
    model, centers = restore(checkpoint, device)
    splits = {"train": train_split.subset(config.train_samples), "test": test_split.subset(config.test_samples)}
    checkpoint["references"] = references(model, centers.centers, splits)
    checkpoint["compute_seconds"] = sum(h["seconds"] for h in checkpoint["history"]) + time.perf_counter() - start
    products.save(checkpoint, path)
    state_path.unlink(missing_ok=True)
    return checkpoint
