"""Where a product came from: code commit, package versions, device (recorded in every product)."""
from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib.metadata import version

import torch

from lib import ROOT

PACKAGES = ("torch", "torchvision", "numpy")


def git_commit() -> str:
    """HEAD's hash, with '+dirty' when tracked files differ from it; 'unknown' outside git."""
    try:
        run = lambda *args: subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)
        commit = run("rev-parse", "HEAD").stdout.strip()
        dirty = run("status", "--porcelain", "--untracked-files=no").stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device_name(device: torch.device | str) -> str:
    """A human-readable name of the device that computed a product."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def cpu_kernels() -> str:
    """The CPU kernel set in use, e.g. 'AVX512' or 'AVX2, oneDNN ≤ AVX2': CPU float results depend on it."""
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return torch.backends.cpu.get_cpu_capability() + (f", oneDNN ≤ {isa}" if isa else "")


def provenance(device: torch.device | str, precision: str = "fp32") -> dict:
    """The record stored beside every product (`precision`: of its training or PGD steps)."""
    return {
        "commit": git_commit(),
        "packages": {name: version(name) for name in PACKAGES},
        "python": platform.python_version(),
        "device": device_name(device),
        **({"cpu_kernels": cpu_kernels()} if torch.device(device).type == "cpu" else {}),
        "precision": precision,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def default_device() -> torch.device:
    """CUDA when available, else CPU; applies INVADV_THREADS to torch's CPU thread pool if set.

    CPU results are bit-identical only for the same number of threads (reductions are split
    differently), so tests pin INVADV_THREADS=1 and `make -jN` shares the cores out through it.
    """
    threads = os.environ.get("INVADV_THREADS")
    if threads:
        if not threads.isdigit() or int(threads) < 1:
            raise ValueError(f"INVADV_THREADS must be a positive integer, got {threads!r}")
        torch.set_num_threads(int(threads))
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
