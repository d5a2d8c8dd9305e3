"""Checkers of notebook 09 (the course's models in Flax NNX)."""

from __future__ import annotations

import threading
import time

import jax
import numpy as np

from jaxdl.exercises.checking import Wrong, as_array, call, exercise, expect_close, expect_shape, \
    first_line


@exercise("09.1", "MyCircleModelV2: the course's CircleModelV2 in NNX by hand (layer_1..3, ReLU between, 151 params)")
def circle_model(answer) -> str:
    from flax import nnx

    from jaxdl import nnx_models

    if not isinstance(answer, type):
        raise Wrong(f"give the class itself (MyCircleModelV2, not an instance); got a {type(answer).__name__}")
    try:
        mine = answer(rngs=nnx.Rngs(5))
    except Exception as err:  # noqa: BLE001
        raise Wrong(f"MyCircleModelV2(rngs=nnx.Rngs(5)) raised {first_line(err)}: its __init__ should take "
                    "rngs as a keyword") from err
    count = nnx_models.count_params(mine)
    if count != 151:
        raise Wrong(f"the model has {count} parameters where the course's CircleModelV2 has 151 (2 -> 10 -> 10 -> 1)")
    theirs = nnx_models.CircleModelV2(rngs=nnx.Rngs(6))
    names = [sorted(jax.tree_util.keystr(path) for path, _ in
                    jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param))) for model in (mine, theirs)]
    if names[0] != names[1]:
        raise Wrong("its parameters are not where CircleModelV2 keeps them, so they cannot be copied in: name the "
                    "layers layer_1, layer_2 and layer_3, as the course does")
    try:
        nnx.update(mine, nnx.state(theirs, nnx.Param))
    except Exception as err:  # noqa: BLE001
        raise Wrong(f"copying CircleModelV2's parameters in failed ({first_line(err)}): name the layers layer_1, "
                    "layer_2 and layer_3, as the course does") from err
    points = jax.random.normal(jax.random.key(977), (8, 2))
    got = expect_shape(call(mine, points, what="the model"), (8, 1), "the model's output",
                       advice="one logit a point")
    expect_close(got, np.asarray(theirs(points)), "the output with CircleModelV2's weights", atol=1e-5,
                 advice="a ReLU between each pair of layers, none after the last")
    return "151 parameters and, with CircleModelV2's weights, the same outputs on points you had not seen"


@exercise("09.2", "a FashionMNISTModelV2 with nnx.Dropout(0.25) before the classifier's Linear")
def with_dropout(answer) -> str:
    from flax import nnx

    if not isinstance(answer, nnx.Module):
        raise Wrong(f"give the model (an instance, like WithDropout(1, 10, 10, rngs=nnx.Rngs(0))); got a "
                    f"{type(answer).__name__}")
    rates = [node.rate for _, node in nnx.iter_graph(answer) if isinstance(node, nnx.Dropout)]
    if not rates:
        raise Wrong("the model holds no nnx.Dropout: add nnx.Dropout(0.25, rngs=rngs) before the classifier's Linear")
    if 0.25 not in rates:
        raise Wrong(f"its Dropout drops {rates[0]} of the activations where 0.25 was asked")
    images = jax.random.uniform(jax.random.key(2039), (4, 28, 28, 1))
    try:
        answer.eval()
        first = expect_shape(call(answer, images, what="the model in eval()"), (4, 10), "the logits")
        second = as_array(answer(images), "the logits")
        if not np.array_equal(first, second):
            raise Wrong("in model.eval() two calls on the same images gave different logits: the Dropout should be "
                        "off in eval mode (let model.eval() switch it, do not fix deterministic=False)")
        answer.train()
        first, second = (as_array(call(answer, images, what="the model in train()"), "the logits") for _ in range(2))
        if np.array_equal(first, second):
            raise Wrong("in model.train() two calls on the same images gave the same logits: is the Dropout on the "
                        "path the images take, and built with rngs so that each call draws a new mask?")
    finally:
        answer.eval()
    return "the same logits twice in eval(), different ones in train(), with nnx.Dropout(0.25)"


class Pending:
    """What ``run()`` returns in the 09.3 check: a result whose work goes on after the
    call returns, as a JAX array's does on a GPU or a TPU (and on a CPU unless
    ``jaxdl.run.runtime.setup`` made dispatch synchronous). ``jax.block_until_ready``
    and ``.block_until_ready()`` wait for it, as they wait for an array."""

    def __init__(self, seconds: float):
        self._work = threading.Thread(target=time.sleep, args=(seconds,), daemon=True)
        self._work.start()

    def block_until_ready(self):
        self._work.join()
        return self


WORK_SECONDS = 0.25


@exercise("09.3", "seconds(run): how long one call of run() takes, including the device work it starts",
          function="def seconds(run): ...")
def seconds(answer) -> str:
    calls = []

    def run():
        calls.append(1)
        return Pending(WORK_SECONDS)

    measured = call(answer, run, what="seconds(run)")
    try:
        measured = float(measured)
    except (TypeError, ValueError) as err:
        raise Wrong(f"seconds(run) gave a {type(measured).__name__} where a number of seconds was asked") from err
    if not calls:
        raise Wrong("seconds(run) never called run(): time a call of it")
    if measured < 0.8 * WORK_SECONDS:
        raise Wrong(f"it measured {measured:.4f} s for work that takes {WORK_SECONDS} s: a JAX call returns before "
                    "the device has finished (asynchronous dispatch); wait with jax.block_until_ready(result) "
                    "before reading the clock")
    if measured > len(calls) * WORK_SECONDS + 2:
        raise Wrong(f"it measured {measured:.2f} s for work that takes {WORK_SECONDS} s: time one call of run()")
    return f"{measured:.3f} s for work that takes {WORK_SECONDS} s: it waits for the device before reading the clock"
