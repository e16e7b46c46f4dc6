"""L∞ projected gradient steps on the cross-entropy: inverse adversaries descend it, attacks ascend it.

One function, `pgd`, does both; the sign of the step is the only difference (docs/study.md §3). Its objective is the
cross-entropy unless a caller passes another (the attack check ascends the logit margin).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lib.core.precision import autocast

DESCEND, ASCEND = -1.0, 1.0
# Images per PGD batch in the ε runs and the robustness evaluation. Measured on the 2-core CPU (SmallCNN, 5 steps,
# image-steps/s at batch 128/256/500/1000): fp32 2 threads 2439/2603/2028/1928, bf16 2 threads 9129/9621/5875/4669;
# past 256 the activations no longer fit the caches. PGD treats every image on its own, so this changes no result
# beyond float rounding (and where a robustness batch's random start is drawn from the seeded stream).
BATCH = 256

Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, labels) -> the scalar PGD steps on


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PGD's default objective: the cross-entropy summed, not averaged, so that per-sample gradients keep their sign
    instead of underflowing to zero in large batches."""
    return F.cross_entropy(logits, y, reduction="sum")


def as_radius(eps: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """ε as a tensor broadcastable against x: a scalar, or one value per sample."""
    eps = torch.as_tensor(eps, dtype=x.dtype, device=x.device)
    if eps.ndim == 1:
        if len(eps) != len(x):
            raise ValueError(f"eps has {len(eps)} values but the batch has {len(x)} samples")
        eps = eps.view(-1, *([1] * (x.ndim - 1)))
    elif eps.ndim != 0:
        raise ValueError(f"eps must be a scalar or a 1-D per-sample tensor, got shape {tuple(eps.shape)}")
    if (eps < 0).any() or (eps > 1).any():
        raise ValueError(f"eps must lie in [0, 1] (pixels are in [0, 1]), got {eps.flatten().tolist()[:5]}")
    return eps


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | torch.Tensor,
        step_size: float, steps: int, direction: float, random_start: bool = False,
        generator: torch.Generator | None = None, precision: str = "fp32",
        loss: Objective = cross_entropy) -> torch.Tensor:
    """Signed-gradient steps on loss(model(x'), y) (the summed cross-entropy by default), each projected onto
    B∞(x, ε) ∩ [0, 1].

    The model runs in eval mode (restored afterwards) and only the input gets a gradient, so no
    parameter's .grad is touched. With precision 'bf16' the forward and backward passes run under bf16
    autocast; the iterate, its gradient and the projection stay fp32.
    """
    if steps < 0 or not isinstance(steps, int):
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    if step_size <= 0:
        raise ValueError(f"step_size must be > 0, got {step_size!r}")
    if direction not in (DESCEND, ASCEND):
        raise ValueError(f"direction must be DESCEND (-1) or ASCEND (+1), got {direction!r}")
    eps = as_radius(eps, x)
    if not random_start and (eps == 0).all():  # the ball is a point: skip the steps, the answer is x
        return x.detach().clone()
    lower, upper = (x - eps).clamp(min=0), (x + eps).clamp(max=1)
    x_adv = x.detach().clone()
    if random_start:
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1
        x_adv = torch.clamp(x_adv + noise * eps, lower, upper)
    was_training = model.training
    model.eval()
    try:
        for _ in range(steps):
            x_adv.requires_grad_(True)
            with autocast(precision, x.device):
                objective = loss(model(x_adv), y)
            (grad,) = torch.autograd.grad(objective, x_adv)
            # one fused projection onto the ball ∩ [0, 1] (lower <= upper always): no temporaries per step
            x_adv = torch.clamp(x_adv.detach().add_(grad.sign_(), alpha=direction * step_size), lower, upper)
    finally:
        model.train(was_training)
    return x_adv.detach()


def inverse_adversary(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | torch.Tensor,
                      step_size: float = 0.01, steps: int = 40, precision: str = "fp32") -> torch.Tensor:
    """Inverse adversarial example (Dong et al., 2023): x moved to *decrease* the loss, no random start."""
    return pgd(model, x, y, eps, step_size, steps, direction=DESCEND, precision=precision)


def pgd_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | torch.Tensor,
               step_size: float = 0.01, steps: int = 40, random_start: bool = True,
               generator: torch.Generator | None = None, precision: str = "fp32") -> torch.Tensor:
    """The standard MNIST robustness attack (Madry et al.; TRADES' evaluation): ascend, random start."""
    return pgd(model, x, y, eps, step_size, steps, direction=ASCEND, random_start=random_start,
               generator=generator, precision=precision)


# --- adversarial training's examples (models E–G): made once per batch, so their cost is the training's ---------

def fgsm_rs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, precision: str = "fp32") -> torch.Tensor:
    """FGSM with a random start (Wong et al. 2020, "Fast is better than free"): a uniform start in B∞(x, ε), one
    signed step of 1.25·ε, projected back onto the ball ∩ [0, 1]. The start is drawn from torch's global stream,
    which a training saves and restores with its checkpoints."""
    return pgd(model, x, y, eps, 1.25 * eps, 1, direction=ASCEND, random_start=True, precision=precision)


def n_fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, precision: str = "fp32") -> torch.Tensor:
    """N-FGSM (de Jorge et al. 2022): noise uniform in B∞(x, 2ε), then one signed step of ε, *not* projected back onto
    B∞(x, ε) (the example may lie up to 3ε from x; pixels stay in [0, 1]). One step of ε never leaves the ε-ball
    around the noisy start, so it is PGD's single step from there."""
    noise = (torch.rand(x.shape, device=x.device, dtype=x.dtype) * 2 - 1) * (2 * eps)
    return pgd(model, (x + noise).clamp(0, 1), y, eps, eps, 1, direction=ASCEND, precision=precision)


def pgd_training(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
                 precision: str = "fp32") -> torch.Tensor:
    """Madry et al.'s adversarial training examples: PGD with a random start and `steps` steps of 2.5·ε/steps (the
    rule that lets the steps reach the ball's boundary from any start)."""
    return pgd(model, x, y, eps, 2.5 * eps / steps, steps, direction=ASCEND, random_start=True, precision=precision)
