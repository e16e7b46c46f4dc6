"""What a parameter's value must be: each rule is written once, beside the parameter's default, and one loop
checks them all (TrainConfig here in core, Study in lib.pipeline.config)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

from lib.core.errors import ConfigError

Rule = tuple[str, Callable[[Any], bool]]  # what a value must be (for the message), and the test

# Reach of a PGD attack: T steps of size α can cross an ε-ball only if T·α >= ε (docs/study.md §3); the slack
# absorbs the rounding of products like 10·0.03.
REACH_SLACK = 1e-9


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    """A finite int or float (not a bool): NaN and ±inf are never a meaningful setting here."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def passes(rule: Rule, value: Any) -> bool:
    """Whether `value` meets `rule`; a value of the wrong type (a comparison that raises) does not."""
    try:
        return bool(rule[1](value))
    except (TypeError, ValueError, OverflowError):
        return False


AT_LEAST_1: Rule = ("an integer >= 1", lambda v: is_int(v) and v >= 1)
POSITIVE: Rule = ("> 0 (and finite)", lambda v: is_number(v) and v > 0)
NON_NEGATIVE: Rule = (">= 0 (and finite)", lambda v: is_number(v) and v >= 0)
RATE: Rule = ("in (0, 1]", lambda v: is_number(v) and 0 < v <= 1)
FRACTION: Rule = ("in [0, 1)", lambda v: is_number(v) and 0 <= v < 1)
PIXEL_STEP: Rule = ("in (0, 1] (pixels are in [0, 1], so a larger step means nothing more)",
                    lambda v: is_number(v) and 0 < v <= 1)
RADIUS: Rule = ("in [0, 1] (pixels are in [0, 1])", lambda v: is_number(v) and 0 <= v <= 1)
SEED: Rule = ("an integer in [0, 2^64) (torch seeds are unsigned 64-bit)", lambda v: is_int(v) and 0 <= v < 2 ** 64)
FIRST_N: Rule = ("None (all) or an integer >= 10", lambda v: v is None or (is_int(v) and v >= 10))
BOOLEAN: Rule = ("true or false", lambda v: isinstance(v, bool))


def one_of(options: tuple | list | dict) -> Rule:
    """The value is one of `options`."""
    return (f"one of {tuple(options)}", lambda v: isinstance(v, str) and v in options)


def distinct(element: Rule, what: str = "values") -> Rule:
    """A non-empty tuple of distinct values, each meeting `element`."""
    return (f"distinct {what}, each {element[0]}, at least one",
            lambda v: isinstance(v, tuple) and len(v) >= 1 and len(set(v)) == len(v) and all(passes(element, e) for e in v))


def seeds_rule() -> Rule:
    """A tuple (possibly empty) of distinct seeds."""
    return (f"distinct integers, each {SEED[0]}",
            lambda v: isinstance(v, tuple) and len(set(v)) == len(v) and all(passes(SEED, s) for s in v))


@dataclass(frozen=True)
class Hyperparameter:
    """A parameter a model introduces (lib.core.recipes.Model): its name, default, rule and meaning; TrainConfig and
    Study take it like a field of their own."""

    name: str
    default: Any
    rule: Rule
    doc: str  # what it is, in a line (the parameters' reference shows it)

    @property
    def kind(self) -> type:
        """The type `make report SET=...` parses its value as: its default's."""
        return type(self.default)


def param(default: Any, rule: Rule | None = None, doc: str = "") -> Any:
    """A dataclass field: its default and, beside it, the rule its value must meet and what it is, in a line (the
    parameters' reference, docs/reference/parameters.md, is generated from them)."""
    return dataclasses.field(default=default, metadata={"rule": rule, "doc": doc})


def check_fields(obj: Any) -> None:
    """ConfigError naming the first field of dataclass `obj` whose value breaks its rule."""
    for f in dataclasses.fields(obj):
        rule, value = f.metadata.get("rule"), getattr(obj, f.name)
        if rule and not passes(rule, value):
            raise ConfigError(f"{type(obj).__name__}: {f.name} must be {rule[0]}, got {value!r}")


def check_reach(owner: str, steps_name: str, steps: int, size_name: str, size: float, radius_name: str,
                radius: float) -> None:
    """ConfigError when `steps` steps of `size` cannot reach the boundary of the largest ε-ball."""
    if steps * size < radius - REACH_SLACK:
        raise ConfigError(f"{owner}: {steps_name}·{size_name} = {steps}·{size:g} = {steps * size:g} cannot reach "
                          f"{radius_name} = {radius:g}: the attack would never reach the ball's boundary (docs/study.md §3 "
                          f"needs T·α >= ε); raise {steps_name} to {math.ceil(radius / size - REACH_SLACK)} or "
                          f"{size_name} to {radius / steps:.3g}")
