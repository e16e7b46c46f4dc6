"""The precision of the heavy arithmetic (training steps, PGD steps): fp32, or bf16 autocast where the
hardware computes bf16 natively (CPUs with AVX512_BF16 or AMX, most GPUs).

Under autocast only the convolutions and matrix products run in bf16: weights, optimizer state and
centers stay fp32, and so do the losses' reductions. The features that enter the analysis (centers,
cosines, MSE, accuracies) are always computed outside autocast, in fp32.
"""
from __future__ import annotations

from pathlib import Path

import torch

from lib.core.errors import ConfigError

PRECISIONS = ("fp32", "bf16")
CHOICES = (*PRECISIONS, "auto")  # what a user may ask for; 'auto' resolves to one of PRECISIONS


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo); empty where they cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def onednn_bf16() -> bool:
    """Whether the oneDNN kernels this process will run compute bf16 natively: oneDNN's own check of the instruction
    set it may use, which ONEDNN_MAX_CPU_ISA limits (held to AVX2 or below, bf16 is emulated, several times slower
    than fp32). A fixed property of the machine and the environment, so the choice it feeds is stable."""
    return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def native_bf16(device_type: str) -> bool:
    """Whether the device computes bf16 natively (emulated bf16 is slower than fp32, so it is never chosen): on a
    CPU, its flags say so and the kernels that will run use them."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags()) and onednn_bf16()


def resolve(precision: str, device_type: str) -> str:
    """'fp32' or 'bf16': `precision` itself, or for 'auto' bf16 where it is native, else fp32."""
    if precision not in CHOICES:
        raise ConfigError(f"precision must be one of {CHOICES}, got {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16(device_type) else "fp32"
    return precision


def autocast(precision: str, device: torch.device | str) -> torch.autocast:
    """bf16 autocast on the device for 'bf16'; a context that changes nothing for 'fp32'."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS} here, got {precision!r}")
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")
