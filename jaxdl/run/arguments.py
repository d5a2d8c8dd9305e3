"""Command-line values checked once, where they come in: argparse types for the flags of
the ``jaxdl`` command and the experiment scripts.

A count must be a whole number in range, a learning rate a finite number above zero:
argparse then refuses a bad value with the flag's name, what it got and what it
allows -- ``argument --examples: must be a whole number >= 1, got 0`` -- instead of a
run that trains on nothing or fails deep inside JAX.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def whole_number(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum`` (and at most ``maximum``)."""
    bounds = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number {bounds}, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be a whole number {bounds}, got {value}")
        return value

    parse.__name__ = f"whole number {bounds}"  # what argparse names in its own messages
    return parse


def number(low: float, high: float = math.inf, *, low_open: bool = True, high_open: bool = True,
           ) -> Callable[[str], float]:
    """An argparse type: a finite number between ``low`` and ``high``, each end open
    (excluded) unless told otherwise."""
    if math.isinf(high):
        bounds = f"{'>' if low_open else '>='} {low:g}"
    else:
        bounds = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number {bounds}, got {text!r}") from None
        below = value <= low if low_open else value < low
        above = value >= high if high_open else value > high
        if not math.isfinite(value) or below or above:
            raise argparse.ArgumentTypeError(f"must be a finite number {bounds}, got {text}")
        return value

    parse.__name__ = f"number {bounds}"
    return parse


positive_int = whole_number(1)
"""A count: a whole number >= 1."""

learning_rate = number(0.0)
"""A learning rate: a finite number > 0."""

momentum = number(0.0, 1.0, low_open=False)
"""An SGD momentum: a number in [0, 1)."""

seed = whole_number(0, 2**63 - 1)
"""A seed for ``jax.random.key``: a whole number that fits its 64 bits, from 0 to 2**63 - 1."""
