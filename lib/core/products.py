"""Products on disk: written atomically, read back safely (weights_only), missing ones explained."""
from __future__ import annotations

import io
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from lib.core.errors import NotWritable, ProductError, WriteFailed


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write; rename it over `path` only if the block succeeds."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise NotWritable(f"cannot write {path.name} into {path.parent}: {exc.strerror}. Fix the folder's "
                          "permissions, or point INVADV_RUNS / INVADV_REPORTS / INVADV_DATA elsewhere") from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; products are meant to be shared
        os.replace(tmp, path)
    except OSError as exc:  # disk full, quota, I/O error: say so, and leave what was there
        Path(tmp).unlink(missing_ok=True)
        raise WriteFailed(f"could not write {path.name} into {path.parent}: {exc.strerror or exc}. Nothing was "
                          "replaced, so earlier products are intact; free space there (or point INVADV_RUNS / "
                          "INVADV_REPORTS elsewhere) and run again") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_writable(folder: Path | str) -> None:
    """Create `folder` if needed and prove a file can be written into it (NotWritable if not)."""
    with atomic_path(Path(folder) / ".write-check"):
        pass
    (Path(folder) / ".write-check").unlink()


def save(obj: dict, path: Path | str) -> None:
    """torch.save atomically: a product is whole or absent. Serialised in memory first, because torch's own
    file writer turns a full disk into an opaque 'unexpected pos' error."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes(buffer.getbuffer(), path)


def write_bytes(payload: bytes | memoryview, path: Path | str) -> None:
    """Write bytes atomically, on disk (fsync) before the rename makes them the product."""
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        file.write(payload)
        file.flush()
        os.fsync(file.fileno())


def write_text(text: str, path: Path | str) -> None:
    """Write a text product (CSV, HTML) atomically."""
    write_bytes(text.encode(), path)


def load(path: Path | str) -> dict:
    """Load a product with weights_only=True (never unpickles arbitrary objects)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ProductError(f"product {path} is unreadable (truncated or corrupt?): {exc}. "
                           "Delete it (or run `make report` again, which moves it aside) to recompute it") from None
