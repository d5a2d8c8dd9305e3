"""Checkers of notebook 01 (JAX fundamentals; the course's chapter 00 exercises)."""

from __future__ import annotations

import jax
import numpy as np

from jaxdl.exercises.checking import Wrong, as_array, call, exercise, expect_close, expect_float, \
    expect_shape

FRESH_KEYS = (jax.random.key(2718), jax.random.key(31415))  # keys the notebook never uses


@exercise("01.1", "random_matrix(key): a random (7, 7) array drawn from key",
          function="def random_matrix(key): ...")
def random_matrix(answer) -> str:
    first, other = FRESH_KEYS
    drawn = expect_shape(call(answer, first, what="random_matrix(key)"), (7, 7), "random_matrix(key)")
    expect_float(drawn, "random_matrix(key)")
    if not np.array_equal(drawn, as_array(call(answer, first, what="random_matrix(key)"), "random_matrix(key)")):
        raise Wrong("two calls with the same key gave different arrays: draw with jax.random from the key you are "
                    "given, not with NumPy's global generator")
    if np.array_equal(drawn, as_array(call(answer, other, what="random_matrix(key)"), "random_matrix(key)")):
        raise Wrong("two different keys gave the same array: draw it from the key you are given (not from a key "
                    "made inside the function)")
    if np.unique(drawn).size < 40:
        raise Wrong("the array repeats its values: draw all 49 numbers at random (jax.random.uniform or normal)")
    return "a (7, 7) float array from the key: the same for the same key, new for a new one"


@exercise("01.2", "multiply(a, b): the matrix product of a (7, 7) array and a (1, 7) array, shape (7, 1)",
          function="def multiply(a, b): ...")
def multiply(answer) -> str:
    rng = np.random.default_rng(17)
    for _ in range(2):
        a, b = rng.normal(size=(7, 7)).astype(np.float32), rng.normal(size=(1, 7)).astype(np.float32)
        try:
            got = as_array(answer(a, b), "multiply(a, b)")
        except Wrong:
            raise
        except Exception as err:  # noqa: BLE001
            raise Wrong(f"multiply(a, b) raised {type(err).__name__}: a (7, 7) matrix times a (1, 7) one does not "
                        "fit: the inner sizes must match, so transpose the second") from err
        if got.shape == (7, 7):
            raise Wrong("the result has shape (7, 7) where (7, 1) was asked: `*` multiplies element by element "
                        "(broadcasting the (1, 7) row); a matrix product is `@`")
        if got.shape == (1, 7):
            raise Wrong("the result has shape (1, 7) where (7, 1) was asked: keep the (7, 7) array on the left")
        expect_shape(got, (7, 1), "multiply(a, b)")
        expect_close(got, a @ b.T, "multiply(a, b)", atol=1e-4, rtol=1e-4)
    return "(7, 7) @ (7, 1) -> (7, 1), right on arrays you had not seen"


@exercise("01.3", "two_draws(key): two different (7, 7) arrays from one key, the same two for the same key",
          function="def two_draws(key): ...")
def two_draws(answer) -> str:
    first, other = FRESH_KEYS
    pair = call(answer, first, what="two_draws(key)")
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise Wrong(f"two_draws(key) should return two arrays, (x, y); it returned a {type(pair).__name__}")
    x, y = (expect_shape(a, (7, 7), f"the {which} array") for a, which in zip(pair, ("first", "second")))
    if np.array_equal(x, y):
        raise Wrong("the two arrays are equal: the same key was used for both. A key is used once: split it "
                    "(jax.random.split(key)) and draw each array from its own part")
    again = call(answer, first, what="two_draws(key)")
    if not (np.array_equal(x, as_array(again[0], "x")) and np.array_equal(y, as_array(again[1], "y"))):
        raise Wrong("the same key gave other arrays the second time: draw only from the key you are given, so that "
                    "it does what torch.manual_seed does")
    if np.array_equal(x, as_array(call(answer, other, what="two_draws(key)")[0], "x")):
        raise Wrong("another key gave the same arrays: draw from the key you are given")
    return "two different arrays from one key (split, each part used once), the same two again for the same key"


@exercise("01.4", "extremes(x): (max, min, argmax, argmin) of the whole array, the indices into the flattened array",
          function="def extremes(x): ...")
def extremes(answer) -> str:
    rng = np.random.default_rng(23)
    for shape in ((7, 1), (4, 5)):
        x = rng.permutation(np.arange(np.prod(shape), dtype=np.float32) - 6).reshape(shape)
        result = call(answer, x, what="extremes(x)")
        if not isinstance(result, (tuple, list)) or len(result) != 4:
            raise Wrong("extremes(x) should return four things: (max, min, argmax, argmin)")
        got = [as_array(r, name) for r, name in zip(result, ("the max", "the min", "argmax", "argmin"))]
        for value, name in zip(got, ("the max", "the min", "argmax", "argmin")):
            if value.size != 1:
                raise Wrong(f"{name} has shape {value.shape} for an input of shape {shape}: reduce the whole array "
                            "(x.max(), x.argmax() with no axis), which gives one number")
        got = [float(g.reshape(())) for g in got]
        want = [float(x.max()), float(x.min()), int(x.argmax()), int(x.argmin())]
        if got[:2] == want[1::-1]:
            raise Wrong("the max and the min are swapped: return (max, min, argmax, argmin)")
        if got[2:] == [want[0], want[1]]:
            raise Wrong("argmax and argmin should be positions, not values: x.argmax() gives where the max is")
        if got != want:
            wrong = [name for name, g, w in zip(("max", "min", "argmax", "argmin"), got, want) if g != w]
            raise Wrong(f"{', '.join(wrong)} not right for an input of shape {shape} (an index counts along the "
                        "flattened array)")
    return "the max, min and their flat indices, right on arrays of two shapes you had not seen"


@exercise("01.5", "squeeze_all(x): x without its axes of size 1, so (1, 1, 1, 10) becomes (10,)",
          function="def squeeze_all(x): ...")
def squeeze_all(answer) -> str:
    rng = np.random.default_rng(29)
    for shape, want in (((1, 1, 1, 10), (10,)), ((1, 4, 1, 3), (4, 3)), ((2, 1, 5), (2, 5))):
        x = rng.normal(size=shape).astype(np.float32)
        got = as_array(call(answer, x, what="squeeze_all(x)"), "squeeze_all(x)")
        if got.shape != want:
            raise Wrong(f"for an input of shape {shape} it gave {got.shape} where {want} was meant: remove every "
                        "axis of size 1 wherever it is, rather than reshaping to a fixed shape or indexing")
        expect_close(got, x.reshape(want), f"squeeze_all(x) for shape {shape}")
    return "every axis of size 1 removed, for shapes you had not seen"
