"""Errors a user can fix: shown as their message alone, never buried in a traceback.

IPython renders an exception through its `_render_traceback_` when it has one, so in a notebook
these appear as one line at the top of the failing cell's output; papermill and `make report`
print the same line (lib.pipeline).
"""
from __future__ import annotations


class UserFacing(Exception):
    """Base of errors whose message is the whole story (what is wrong and the fix)."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class ConfigError(UserFacing, ValueError):
    """A parameter is out of range, of the wrong type, unknown, or inconsistent."""


class ProductError(UserFacing, ValueError):
    """A product on disk is unreadable or was made with other parameters."""


class MissingInput(UserFacing, FileNotFoundError):
    """An upstream product does not exist yet; the message names the step and the command."""


class NotWritable(UserFacing, PermissionError):
    """An output folder cannot be written."""


class Diverged(UserFacing, FloatingPointError):
    """A loss, weight or feature became NaN or infinite: the run stops, and writes no product."""


class WriteFailed(UserFacing, OSError):
    """A product could not be written (disk full, quota, I/O error); nothing was replaced."""
