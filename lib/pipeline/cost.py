"""What a study costs on this machine: its work counted in images per kind of step, this machine's seconds
per image for each kind (timed on the spot with the pipeline's own code), and the two multiplied.

Three kinds of step carry almost all the arithmetic: a training step (forward, backward, SGD), a PGD step
(forward and the input's gradient) and a forward pass; `flops_per_image` counts each one's FLOPs for SmallCNN.
Data handling and metrics are a few per cent of an epoch (`make bench`'s breakdown), so the estimate leaves them
out, and adds a fixed start-up per notebook.
"""
from __future__ import annotations

import contextlib
import io
import math
import time

import torch
import torch.nn.functional as F

from lib.core.attacks import BATCH, inverse_adversary
from lib.core.data import Split, to_input
from lib.core.models import SmallCNN
from lib.core.protocol import TrainConfig
from lib.core.recipes import ADVERSARIALLY_TRAINED, HELDOUT, HELDOUT_STEPS, recipe
from lib.core.robustness import LONGER
from lib.core.train import accuracy, build, train_epoch
from lib.pipeline.config import COMPARED_MODELS, Study

# "attack" is a PGD step in fp32: AutoAttack's stages run the model in fp32 whatever the study's precision, so where
# bf16 is emulated (≈ 10× fp32) they are costed at fp32's rate, not at the study's PGD rate.
KINDS = ("train", "pgd", "forward", "attack")
SIZES = {"train": 60000, "test": 10000}  # MNIST's splits
# Seconds a notebook spends before and after its work (kernel start, imports, papermill's writes): the
# smoke profile's centers and figures steps, whose work is a few seconds, take 8-12 s on the 2-core CPU.
STEP_OVERHEAD = 10.0
# AutoAttack (step autoattack) in PGD steps per image that PGD-40 left robust, its four stages together, at the
# pipeline's rate of a PGD step (0.39 ms on one core of the 2-core CPU under make -j2). An image still robust after
# every stage costs the most (Square's 5,000 queries, FAB-T's targets), one that APGD-T breaks a tenth of that.
# Measured in the paper rerun (issue 29), one core per step beside one other step: seed 0's A, B, C and D on 750
# images took 5,830 s for the four, ≈ 7,100 PGD steps per survivor; seed 0's G on 250 images 2,230 s (per image and
# radius: APGD-CE 0.06, APGD-T 0.58, FAB-T 1.07, Square 1.23 s), ≈ 7,800 (seed 0's E took 2,950 s, sharing the cores
# with the test suite for part of it). Each AutoAttack product records its stages' seconds to check this against.
AUTOATTACK_PGD_STEPS = 7500
# The share of images PGD-40 leaves robust, averaged over ε 0.1–0.3, in the same run's seed 0: A–D 23 % (D 5 %,
# A and C 33 %), the adversarially trained E–G 97 %.
PGD_SURVIVORS = 0.23
# The follow-up of the authors' AutoAttack (step authors) where Square's check fires: Square again with four times its
# queries (lib.core.protocol.FOLLOWUP_*) on the images still robust, ≈ 4 × 1.23 / 2.94 of AUTOATTACK_PGD_STEPS. The
# composition's Square fired that check for E–G at the largest ε at every seed (issue 53), so the estimate counts it
# there.
FOLLOWUP_PGD_STEPS = 12600
ROBUST_SURVIVORS = 0.97


# The calibration times one batch of each kind (one PGD step), after one untimed run of it: where bf16 is emulated a
# step costs ~10× fp32's, and four batches of each (four PGD steps) made every `make report` with steps to run wait
# 40 s for its estimate on one core of the 2-core CPU (now ≈ 10 s; fp32 3.6 → 1 s), for rates that agree within the
# timing's noise.
CALIBRATION_PGD_STEPS = 1


def first(n: int | None, split: str) -> int:
    """How many images 'the first n of a split' is (None: all of it)."""
    return SIZES[split] if n is None else min(n, SIZES[split])


def task_work(s: Study, step: str, params: dict) -> dict[str, int]:
    """Images through each kind of step that one task of the study runs (see lib.pipeline.registry)."""
    n_train, n_test = first(s.train_samples, "train"), first(s.test_samples, "test")
    if step == "train":
        c = s.train_config(params["model"], params["feature_dim"], params["seed"])
        plan = recipe(c.model)
        inner = c.train_steps if plan.targets is not None else 0  # C, D, F and G's inverse adversaries
        adversarial = c.at_steps if plan.inputs is not None else 0  # E–G's adversarial examples
        monitor = min(HELDOUT, n_test) * HELDOUT_STEPS if plan.monitors else 0  # E–G's held-out PGD, every epoch
        per_epoch_forward = n_test + (n_train if inner else 0)  # the test pass; the features of the inverse adversaries
        return {"train": c.epochs * n_train, "pgd": c.epochs * (n_train * (inner + adversarial) + monitor),
                "forward": c.epochs * per_epoch_forward + n_train + n_test}  # + the references at the end
    if step == "eps":  # one model at one ε
        n = min(first(s.attack_samples, s.attack_split), first(s.test_samples if s.attack_split == "test"
                                                                 else s.train_samples, s.attack_split))
        return {"pgd": n * s.steps if params["eps"] > 0 else 0, "forward": 2 * n}
    attacked = sum(e > 0 for e in s.robust_eps)
    n_robust = min(first(s.robust_samples, "test"), n_test)
    if step == "evaluate":  # one model
        return {"pgd": n_robust * s.robust_steps * attacked, "forward": n_robust * (1 + len(s.robust_eps))}
    if step == "check":  # per ε: the source's PGD, and per model the long PGD and the margin PGD; 3 predictions
        n, models = min(n_robust, s.check_samples), len(COMPARED_MODELS)
        per_eps = s.robust_steps * (1 + models * (LONGER + 1))
        return {"pgd": n * attacked * per_eps, "forward": n * attacked * models * 3}
    robust = params.get("model") in ADVERSARIALLY_TRAINED
    survivors = ROBUST_SURVIVORS if robust else PGD_SURVIVORS  # the share of its images AutoAttack runs on
    if step == "autoattack":  # one model: AutoAttack on PGD's survivors, PGD on rescaled logits, the logits' scale
        n = min(n_robust, s.autoattack_images(params["model"]))
        return {"pgd": n * attacked * s.robust_steps, "attack": round(n * attacked * survivors * AUTOATTACK_PGD_STEPS),
                "forward": n * (1 + attacked)}
    if step == "authors":  # AutoAttack as above, per-ε images, the follow-up where Square's check is expected
        images = {e: min(n_robust, s.authors_images(params["model"], e)) for e in s.robust_eps if e > 0}
        followup = images[max(images)] * ROBUST_SURVIVORS * FOLLOWUP_PGD_STEPS if robust else 0
        return {"attack": round(sum(images.values()) * survivors * AUTOATTACK_PGD_STEPS + followup),
                "forward": sum(images.values())}
    return {}  # the analysis steps: tables and figures from products, seconds of work


def task_seconds(work: dict[str, int], rates: dict[str, float]) -> float:
    """Estimated seconds of one task: its work at `rates` (seconds per image) plus the notebook's start-up."""
    return STEP_OVERHEAD + sum(n * rates[kind] for kind, n in work.items())


def estimate(s: Study, tasks, rates: dict[str, float]) -> dict[str, float]:
    """Estimated seconds of each task (lib.pipeline.dag's Tasks: name, step, params) at `rates`."""
    return {t.name: task_seconds(task_work(s, t.step.name, t.params), rates) for t in tasks}


# --- what a scheduler is asked for ---------------------------------------------------------------------------

# Seconds per image of each kind on one thread of the 2-core CPU that made the committed run (`make report`'s timing
# there under make -j2, bf16): a cluster job must ask for its time before any node has timed itself.
REFERENCE_RATES = {"train": 0.49e-3, "pgd": 0.39e-3, "forward": 0.1e-3, "attack": 0.39e-3}
# A job asks for its estimate times RUNTIME_MARGIN (nodes differ: draws of the same kind of machine were up to 1.5×
# faster or slower, and fp32 on a CPU without native bf16 is slower still), and never less than MIN_RUNTIME minutes.
RUNTIME_MARGIN, MIN_RUNTIME = 3.0, 10
# Host memory: a paper step's notebook stays under 1 GB (`make bench`'s peak of its processes), the steps that read
# every product (centers, extension, figures) under 2 GB; each asks for twice that.
MEMORY_MB = {"centers": 4096, "extension": 4096, "figures": 4096}
DEFAULT_MEMORY_MB = 2048


def resources(s: Study, step: str, params: dict, rates: dict[str, float] = REFERENCE_RATES) -> dict[str, int]:
    """What one task asks a scheduler for: `runtime` in minutes (its estimate at `rates`, with the margin) and
    `mem_mb`; one CPU, the thread every step computes with."""
    minutes = RUNTIME_MARGIN * task_seconds(task_work(s, step, params), rates) / 60
    return {"runtime": max(MIN_RUNTIME, math.ceil(minutes)), "mem_mb": MEMORY_MB.get(step, DEFAULT_MEMORY_MB)}


# --- timing --------------------------------------------------------------------------------------------------

def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a timer measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device):
    """(seconds, result) of fn()."""
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return time.perf_counter() - start, result


@contextlib.contextmanager
def threads(n: int | None):
    """torch's CPU thread count set to n for the block (None: unchanged)."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def random_digits(n: int, device: torch.device, seed: int = 0) -> Split:
    """n random 28×28 uint8 images with labels: the arithmetic of a step does not depend on the pixels."""
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g),
                 torch.randint(0, 10, (n,), generator=g)).to(device)


def calibrate(precision: str, device: torch.device, n_threads: int | None = None) -> dict[str, float]:
    """Seconds per image of each kind of step on this machine, now: one batch of the pipeline's own training
    epoch, PGD step (at `precision`, and in fp32 for AutoAttack's stages) and evaluation pass, at the pipeline's batch
    sizes, each after one untimed warm-up run."""
    config = TrainConfig(model="B", precision=precision)
    model, centers = build(config, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    generator = torch.Generator().manual_seed(0)

    def pgd(d: Split, precision: str = precision):
        return inverse_adversary(model, to_input(d.images), d.labels, 0.1, 0.01, CALIBRATION_PGD_STEPS, precision)

    # (step, its timed input, images through it): one batch each
    steps = {"train": (lambda d: train_epoch(model, centers, optimizer, d, config, generator),
                       random_digits(config.batch_size, device), config.batch_size),
             "pgd": (pgd, random_digits(BATCH, device), BATCH * CALIBRATION_PGD_STEPS),
             "forward": (lambda d: accuracy(model, d), random_digits(BATCH, device), BATCH)}
    if precision != "fp32":  # else the PGD step's rate is fp32's
        steps["attack"] = (lambda d: pgd(d, "fp32"), random_digits(BATCH, device), BATCH * CALIBRATION_PGD_STEPS)
    rates = {}
    with threads(n_threads), contextlib.redirect_stderr(io.StringIO()):  # no progress bars for a 1-s timing
        for kind, (step, data, images) in steps.items():
            step(data)  # warm-up: thread pool, allocator, the kernels chosen for these shapes
            rates[kind] = timed(lambda: step(data), device)[0] / images
    return {"attack": rates["pgd"], **rates}


def flops_per_image(feature_dim: int = 200) -> dict[str, float]:
    """FLOPs per image of each kind of step for SmallCNN, counted by torch's FlopCounterMode on a batch."""
    from torch.utils.flop_counter import FlopCounterMode


    model, n = SmallCNN(feature_dim), 16
    x, y = torch.rand(n, 1, 28, 28), torch.randint(0, 10, (n,))

    def count(fn) -> float:
        with FlopCounterMode(display=False) as counter:
            fn()
        return counter.get_total_flops() / n

    def pgd_step():
        x_adv = x.clone().requires_grad_(True)
        F.cross_entropy(model.eval()(x_adv), y).backward(inputs=[x_adv])  # the input's gradient only, as pgd()

    with torch.no_grad():
        forward = count(lambda: model.eval()(x))
    return {"train": count(lambda: F.cross_entropy(model.train()(x), y).backward()), "pgd": count(pgd_step),
            "forward": forward}
