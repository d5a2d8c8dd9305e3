"""Checkers of notebook 03 (classification; the course's chapter 02 exercises)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.exercises.checking import Wrong, apply_model, as_array, call, exercise, expect_close, \
    expect_shape

ACCURACY_ASKED = 90.0


@exercise("03.1", "tanh(x) written with jnp.exp: (e^x - e^-x) / (e^x + e^-x)",
          function="def tanh(x): ...")
def tanh(answer) -> str:
    x = np.random.default_rng(31).uniform(-4, 4, size=(3, 5)).astype(np.float32)
    try:
        program = str(jax.make_jaxpr(answer)(jnp.asarray(x)))
    except Exception:  # noqa: BLE001 -- a NumPy-only function cannot be traced; its values are still checked
        program = ""
    if " tanh " in program or "tanh[" in program:
        raise Wrong("it calls tanh itself (jnp.tanh): write it with jnp.exp as (e^x - e^-x) / (e^x + e^-x)")
    got = expect_shape(call(answer, jnp.asarray(x), what="tanh(x)"), x.shape, "tanh(x)",
                       advice="compute it element by element")
    if np.allclose(got, 1 / (1 + np.exp(-x)), atol=1e-4):
        raise Wrong("that is the sigmoid, between 0 and 1; tanh runs from -1 to 1")
    expect_close(got, np.tanh(x), "tanh(x)", atol=1e-5, advice="(e^x - e^-x) / (e^x + e^-x)")
    return "equal to jnp.tanh on 15 points you had not seen, built from jnp.exp"


def fresh_spirals():
    """Spirals drawn with a key the notebook never uses."""
    from jaxdl.data import make_spirals

    x, y = make_spirals(jax.random.key(8128))
    return np.asarray(x), np.asarray(y)


@exercise("03.2", "a state trained on the spirals (3 classes) to above 90% accuracy")
def spirals(answer) -> str:
    x, y = fresh_spirals()
    outputs = apply_model(answer, x)
    if outputs.ndim != 2 or outputs.shape[1] != 3:
        raise Wrong(f"the model gives outputs of shape {outputs.shape} for {len(x)} points: 3 classes need 3 logits "
                    "a point, (N, 3), as BlobModel(2, 3, ...) gives")
    accuracy = 100 * float((outputs.argmax(axis=1) == y).mean())
    if accuracy < 60:
        raise Wrong(f"{accuracy:.0f}% on 300 spiral points it had not seen, near chance: is it trained? A model "
                    "without a non-linearity draws straight boundaries, which cannot follow the arms: use ReLUs "
                    "between layers (BlobModel) and Adam")
    if accuracy < ACCURACY_ASKED:
        raise Wrong(f"{accuracy:.1f}% on 300 spiral points it had not seen, where above {ACCURACY_ASKED:.0f}% was "
                    "asked: train longer, with more hidden units or a higher rate")
    return f"{accuracy:.1f}% on 300 spiral points drawn with a key the notebook never used"


@exercise("03.3", "as_one_linear_map(params): (W, b) with CircleModelV1's output equal to x @ W + b",
          function="def as_one_linear_map(params): ...")
def one_linear_map(answer) -> str:
    from jaxdl.models import CircleModelV1

    model = CircleModelV1()
    x = np.random.default_rng(37).normal(size=(6, 2)).astype(np.float32)
    params = model.init(jax.random.key(4099), x[:1])["params"]
    result = call(answer, params, what="as_one_linear_map(params)")
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise Wrong("as_one_linear_map should return two arrays, (W, b)")
    W = expect_shape(result[0], (2, 1), "W", advice="the model maps 2 inputs to 1 output")
    b = as_array(result[1], "b").reshape(-1)
    if b.shape != (1,):
        raise Wrong(f"b has {b.size} numbers where the model has 1 output")
    expect_close(x @ W + b, np.asarray(model.apply({"params": params}, x)), "x @ W + b", atol=1e-4,
                 advice="compared with the model's output on new points: multiply the kernels in order, and carry "
                        "each bias through the layers after it")
    return "x @ W + b equals CircleModelV1 with weights you had not seen: three linear layers are one linear map"
