"""What every exercise checker shares: the register, the verdict and the checks a hint comes from.

A checker is a function of the learner's answer that returns a short description of
what it checked, or raises :class:`Wrong` with a one-line hint. Checkers test answers on
inputs the notebook never showed (fresh keys, other shapes, other numbers), so a value
copied from an output or a function that only works for the notebook's example fails.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np


DONATED = ("this state was given to fit, which reuses its arrays' memory for the new state: give the state that "
           "fit returned")


def donated(err: BaseException) -> bool:
    """Whether ``err`` says an array was used after a step donated its memory."""
    return "has been deleted" in str(err) or "deleted or donated" in str(err)


class Wrong(Exception):
    """An answer that is not right yet; the message is the hint the learner reads."""


@dataclasses.dataclass(frozen=True)
class Exercise:
    """One exercise: its name (``"01.2"``: notebook 01, exercise 2), what it asks in a
    line, its checker and, where the answer is a function, how that function starts."""

    name: str
    asks: str
    checker: Callable[[Any], str]
    function: str | None = None

    def check(self, answer) -> str:
        """Run the checker (after refusing a non-function where a function is asked for)."""
        if self.function is not None:
            expect_function(answer, self.function)
        return self.checker(answer)


EXERCISES: dict[str, Exercise] = {}


def exercise(name: str, asks: str, function: str | None = None):
    """Register the decorated function as the checker of exercise ``name``; ``function``
    (``"def multiply(a, b): ..."``) says the answer is a function and how it starts."""

    def register(checker):
        if name in EXERCISES:
            raise RuntimeError(f"exercise {name} has two checkers")
        EXERCISES[name] = Exercise(name, asks, checker, function)
        return checker

    return register


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome of one check: ``passed`` and the line the learner reads."""

    name: str
    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return f"{self.name} passed: {self.message}" if self.passed else f"{self.name} not yet: {self.message}"


def first_line(err: BaseException) -> str:
    """An exception as ``TypeError: its first line``."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def expect_function(answer, example: str) -> None:
    """Refuse an answer that is not callable, saying what kind of function is asked for."""
    if not callable(answer):
        raise Wrong(f"this exercise asks for a function, like `{example}`; got a {type(answer).__name__}")


def call(function, *args, what: str):
    """The learner's ``function(*args)``; an exception it raises becomes the hint."""
    try:
        return function(*args)
    except Wrong:
        raise
    except Exception as err:  # noqa: BLE001 -- any error in the learner's code is the answer's, shown as a hint
        raise Wrong(f"{what} raised {first_line(err)}") from err


def as_array(value, what: str) -> np.ndarray:
    """``value`` as a NumPy array, or a hint saying it is not one."""
    try:
        array = np.asarray(value)
    except Exception as err:  # noqa: BLE001
        raise Wrong(f"{what} is a {type(value).__name__}, which does not convert to an array ({first_line(err)})") from err
    if array.dtype == object:
        raise Wrong(f"{what} is a {type(value).__name__}, not an array of numbers")
    return array


def expect_shape(value, shape: tuple[int, ...], what: str, advice: str = "") -> np.ndarray:
    """``value`` as an array of ``shape``, or a hint giving both shapes (and saying so when
    the axes are NCHW where NHWC was meant)."""
    array = as_array(value, what)
    if array.shape == tuple(shape):
        return array
    hint = f"{what} has shape {array.shape} where {tuple(shape)} was asked"
    if len(shape) == 4 and array.shape == (shape[0], shape[3], shape[1], shape[2]):
        hint += ": that is NCHW (channels first, PyTorch's order) where NHWC (channels last) was meant"
    elif advice:
        hint += f": {advice}"
    raise Wrong(hint)


def expect_float(array: np.ndarray, what: str) -> None:
    """Refuse an integer or boolean array where numbers between whole ones are meant."""
    if not np.issubdtype(array.dtype, np.floating):
        raise Wrong(f"{what} has dtype {array.dtype} where floating-point numbers were meant")


def expect_close(got, want, what: str, atol: float = 1e-5, rtol: float = 1e-5, advice: str = "") -> None:
    """Refuse ``got`` unless it equals ``want`` within the tolerances; the hint gives the
    largest difference."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        raise Wrong(f"{what} has shape {got.shape} where {want.shape} was asked")
    if not np.allclose(got, want, atol=atol, rtol=rtol, equal_nan=False):
        difference = np.abs(got - want)
        largest = float(np.nanmax(difference)) if np.isfinite(difference).any() else float("nan")
        raise Wrong(f"{what} is not right: it differs from the expected values by up to {largest:.3g}"
                    + (f" ({advice})" if advice else ""))


def expect_state(state) -> None:
    """Refuse what is not a train state, saying what is asked for."""
    if not hasattr(state, "apply_fn") or not hasattr(state, "params"):
        raise Wrong(f"this exercise asks for the trained state (what jaxdl.fit returns); got a {type(state).__name__}")


def apply_model(state, x):
    """A trained state's outputs for ``x``, as an array, with hints for what is not a
    state and for a model built for NCHW images."""
    from jaxdl import train

    expect_state(state)
    try:
        return np.asarray(train.make_predictions(state, x))
    except Exception as err:  # noqa: BLE001
        if donated(err):
            raise Wrong(DONATED) from err
        if x.ndim == 4:
            try:
                train.make_predictions(state, np.transpose(x, (0, 3, 1, 2)))
            except Exception:  # noqa: BLE001
                pass
            else:
                raise Wrong(f"the model takes images of shape {np.transpose(x, (0, 3, 1, 2)).shape[1:]}: NCHW "
                            f"(PyTorch's order) where jaxdl's NHWC {x.shape[1:]} was meant; build it on "
                            f"images like train_set.images[:1]") from err
        raise Wrong(f"the model could not be run on new inputs of shape {x.shape}: {first_line(err)}") from err


def parameter_count(state) -> int:
    """Trainable parameters of a state, a variables dict or a params tree."""
    from jaxdl.models import count_params

    return count_params(state.params if hasattr(state, "params") else state)
