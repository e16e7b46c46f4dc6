"""Why PGD on the cross-entropy can overstate a model's robustness: the scale of its logits, measured.

A model whose logits are far apart saturates the softmax: the cross-entropy is flat around most images, and where
every other class's probability underflows to 0 its gradient is exactly zero, so PGD's signed steps stand still
(Carlini et al. 2019, "On Evaluating Adversarial Robustness", §5; Croce & Hein 2020 built APGD-T on a scale-free
loss for this reason). Dividing the logits by a constant changes no prediction, so PGD on the rescaled logits is
an attack on the same model: if it finds adversaries that PGD on the raw logits missed, the logits' scale hid them.
"""
from __future__ import annotations

import torch
from torch import nn

from lib.core.attacks import BATCH, cross_entropy
from lib.core.data import Split, batches
from lib.core.evaluation import robust_correct
from lib.core.precision import autocast
from lib.core.robustness import margin_loss

# The rescaled logits' median margin (true logit minus the best other, on the correctly classified images): one
# nat keeps the softmax far from saturation on typical images, so the cross-entropy's gradient follows the margin.
RESCALED_MARGIN = 1.0


class Rescaled(nn.Module):
    """A model with its logits divided by `temperature`: the same predictions, another cross-entropy."""

    def __init__(self, model: nn.Module, temperature: float):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.model, self.temperature = model, temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) / self.temperature


def logit_scale(model: nn.Module, split: Split, precision: str = "fp32",
                batch_size: int = BATCH) -> dict[str, torch.Tensor]:
    """Per image of `split` (on the CPU): the logit margin (true minus best other; fp32), whether the fp32 softmax of
    the true class is exactly 1 (saturated), and whether the cross-entropy's gradient with respect to the input is
    exactly zero at the clean image as PGD computes it (at `precision`), so that a signed step cannot move."""
    model.eval()
    device = next(model.parameters()).device
    parts: dict[str, list[torch.Tensor]] = {"margin": [], "saturated": [], "vanishing": []}
    for x, y in batches(split, batch_size):
        x, y = x.to(device).requires_grad_(True), y.to(device)
        with autocast(precision, device):
            logits = model(x)
        (grad,) = torch.autograd.grad(cross_entropy(logits, y), x)
        logits = logits.detach().float()
        parts["margin"].append(-margin_loss(logits, y))
        parts["saturated"].append(logits.softmax(1).gather(1, y[:, None]).squeeze(1) == 1)
        parts["vanishing"].append(grad.flatten(1).abs().amax(1) == 0)
    return {k: torch.cat(v).cpu() for k, v in parts.items()}


def temperature(margins: torch.Tensor) -> float:
    """The divisor that brings the median margin of the correctly classified images to RESCALED_MARGIN."""
    correct = margins[margins > 0]
    if len(correct) == 0:
        raise ValueError("no image is correctly classified: the logits' scale is undefined")
    return correct.median().item() / RESCALED_MARGIN


def masking(model: nn.Module, split: Split, robust_eps: tuple[float, ...], steps: int, step_size: float,
            pgd: dict[float, torch.Tensor], seed: int = 0, precision: str = "fp32", name: str = "") -> dict:
    """One row on the logits' scale of a model: the median and 90th-percentile margin, the shares of saturated
    softmax and exactly vanishing input gradient (of the correctly classified images of `split`), the temperature
    RESCALED_MARGIN asks for, and per ε > 0 the accuracy under the evaluation's PGD (`pgd`: bool per image, as
    made by lib.core.evaluation) beside that of the same PGD on the rescaled logits, on the same images and seed."""
    scale = logit_scale(model, split, precision)
    correct = scale["margin"] > 0
    if not correct.any():
        raise ValueError(f"{name or 'the model'} classifies none of the {len(split)} images correctly")
    t = temperature(scale["margin"])
    margins = scale["margin"][correct]
    row = {"margin_median": margins.median().item(), "margin_p90": margins.quantile(0.9).item(),
           "saturated": scale["saturated"][correct].float().mean().item(),
           "vanishing": scale["vanishing"][correct].float().mean().item(), "temperature": t}
    rescaled = Rescaled(model, t)
    for eps in (e for e in robust_eps if e > 0):
        if pgd[eps].shape != (len(split),):
            raise ValueError(f"pgd must hold one outcome per image ({len(split)}) at ε={eps:g}, got shape "
                             f"{tuple(pgd[eps].shape)}")
        row[f"pgd@{eps:g}"] = pgd[eps].float().mean().item()
        row[f"pgd_rescaled@{eps:g}"] = robust_correct(rescaled, split, eps, steps, step_size, seed,
                                                      desc=f"PGD on rescaled logits ε={eps:g} {name}",
                                                      precision=precision).float().mean().item()
    return row

