"""The few input checks, written once, for the boundaries of `core` (configs, public entry points, files).

The math itself does not re-check its arguments: a value that reached it came through one of these.
Every check raises ValueError with a one-line message that names the parameter, the value and what is
allowed, so a page or a command can show it as it is. Each returns the value normalised (a Python int or
float), which callers keep instead of the raw input (numpy integers and the like are accepted).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Integral, Real

import torch


def check_int(name: str, value, low: int | None = None, high: int | None = None) -> int:
    """An integer (not a bool) in [low, high]; either bound may be None."""
    if isinstance(value, bool) or not isinstance(value, Integral) or \
            (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name}={value!r} is not allowed; expected {_integer_range(low, high)}")
    return int(value)


def check_number(name: str, value, low: float | None = None, high: float | None = None,
                 open_low: bool = False, open_high: bool = False) -> float:
    """A finite real number (not a bool) in the interval from low to high (closed unless open_* is set)."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (low is None or (value > low if open_low else value >= low))
    ok = ok and (high is None or (value < high if open_high else value <= high))
    if not ok:
        raise ValueError(f"{name}={value!r} is not allowed; expected a finite number"
                         f"{_interval(low, high, open_low, open_high)}")
    return float(value)


def check_choice(name: str, value, allowed: Iterable):
    """One of `allowed` (compared with ==)."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; expected one of {', '.join(map(str, allowed))}")
    return value


def check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r} is not allowed; expected True or False")
    return value


def check_generator(name: str, value, optional: bool = False) -> torch.Generator | None:
    """A torch.Generator (or None where `optional`): every random draw in `core` takes one explicitly."""
    if value is None and optional:
        return None
    if not isinstance(value, torch.Generator):
        raise ValueError(f"{name} must be a torch.Generator{' or None' if optional else ''}, "
                         f"got {type(value).__name__}")
    return value


def _integer_range(low, high) -> str:
    if low is None and high is None:
        return "an integer"
    if high is None:
        return f"an integer >= {low}"
    if low is None:
        return f"an integer <= {high}"
    return f"an integer in {low}..{high}"


def _interval(low, high, open_low, open_high) -> str:
    if low is None and high is None:
        return ""
    if high is None:
        return f" {'>' if open_low else '>='} {low}"
    if low is None:
        return f" {'<' if open_high else '<='} {high}"
    return f" in {'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"


class NonFiniteOutputError(ValueError):
    """A network's output holds NaN or infinity (its weights overflow at some input or timestep): pages show the
    message as one line, like every other ValueError of a check."""


def check_finite_output(name: str, value: torch.Tensor, t=None) -> torch.Tensor:
    """`value` (a batch of outputs) unchanged when every entry is finite, else NonFiniteOutputError naming the first
    timestep whose row is not finite (`t`: the batch's timesteps, a tensor of one per row, or None)."""
    finite = torch.isfinite(value)
    if bool(finite.all()):
        return value
    where = ""
    if isinstance(t, torch.Tensor) and t.ndim == 1 and value.ndim >= 1 and len(t) == value.shape[0]:
        bad = torch.unique(t[~finite.reshape(len(t), -1).all(dim=1)])
        where = f" at timestep index {int(bad[0])}" + (f" (and {len(bad) - 1} more in this batch)" if len(bad) > 1 else "")
    raise NonFiniteOutputError(f"{name} is not finite (NaN or infinite){where}: its weights overflow there, so this "
                               f"model cannot be used for this; choose another model")
