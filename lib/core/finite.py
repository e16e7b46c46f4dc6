"""Stop at the first non-finite number: a diverged run ends in one line that says where and why, and leaves no
product behind, instead of feeding NaN to every later step."""
from __future__ import annotations

import torch

from lib.core.errors import Diverged

# Why an ε run or an evaluation sees NaN although its parameters were checked: the model it was given.
NON_FINITE_MODEL = ("the model's weights are not finite (a checkpoint of a training that diverged, made before "
                    "trainings stopped at the first NaN?); delete its training folder under runs/ to retrain it")


def first_non_finite(**values: torch.Tensor | float) -> tuple[str, str] | None:
    """(name, 'nan' or 'inf') of the first value holding a non-finite number, or None when all are finite."""
    for name, value in values.items():
        tensor = torch.as_tensor(value)
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            return name, "nan" if torch.isnan(tensor).any() else "inf"
    return None


def check_finite(where: str, cause: str, **values: torch.Tensor | float) -> None:
    """Diverged naming `where`, the first non-finite value and its likely `cause`, when any value is NaN or ±inf."""
    if found := first_non_finite(**values):
        name, kind = found
        raise Diverged(f"{where}: the {name} became {kind}. Likely cause: {cause}. No product was written")
