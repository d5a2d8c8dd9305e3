"""Checkers of notebook 02 (the workflow; the course's chapter 01 exercises)."""

from __future__ import annotations

import functools
import pathlib
import tempfile

import jax
import numpy as np

from jaxdl.exercises.checking import Wrong, apply_model, as_array, call, exercise, expect_close, \
    parameter_count

WEIGHT, BIAS, STEP = 0.3, 0.9, 0.01


def exercise_line():
    """The exercise's line: weight 0.3, bias 0.9, 100 points from 0 to 1, split 80/20."""
    from jaxdl.data import make_linear

    return [np.asarray(a) for a in make_linear(weight=WEIGHT, bias=BIAS, step=STEP)]


@exercise("02.1", "make_data(weight, bias): 100 points of weight * X + bias from 0 to 1, split 80/20",
          function="def make_data(weight, bias): ...")
def make_data(answer) -> str:
    from jaxdl.data import make_linear

    for weight, bias in ((WEIGHT, BIAS), (-1.7, 0.25)):
        split = call(answer, weight, bias, what=f"make_data({weight}, {bias})")
        if not isinstance(split, (tuple, list)) or len(split) != 4:
            raise Wrong("make_data should return four arrays: (X_train, y_train, X_test, y_test)")
        names = ("X_train", "y_train", "X_test", "y_test")
        got = [as_array(a, name) for a, name in zip(split, names)]
        want = [np.asarray(a) for a in make_linear(weight=weight, bias=bias, step=STEP)]
        if len(got[0]) + len(got[2]) != 100:
            raise Wrong(f"{len(got[0])} + {len(got[2])} points where 100 were asked (0 to 1 in steps of 0.01)")
        if (len(got[0]), len(got[2])) != (80, 20):
            raise Wrong(f"a {len(got[0])}/{len(got[2])} split where 80/20 was asked (the first 80 points train)")
        for g, w, name in zip(got, want, names):
            if g.shape != w.shape:
                raise Wrong(f"{name} has shape {g.shape} where {w.shape} was asked (one column: the course's "
                            "X is arange(...).unsqueeze(dim=1))")
        expect_close(got[0], want[0], "X_train", advice="the points run from 0 to 1 in steps of 0.01, not shuffled")
        for x, y, name in ((got[0], got[1], "y_train"), (got[2], got[3], "y_test")):
            if not np.allclose(y, weight * x + bias, atol=1e-5):
                raise Wrong(f"{name} is not weight * X + bias for weight={weight}, bias={bias}: use the weight and "
                            "bias the function is given")
    return "80/20 points on the line, for the exercise's weight and bias and for another pair"


@functools.cache
def reference_test_loss() -> tuple[float, float]:
    """The test L1 loss of LinearRegressionModel before training and after the solution's
    300 epochs of SGD at 0.01 (the same key as the notebook)."""
    from jaxdl import data, learner, train
    from jaxdl.models import LinearRegressionModel

    X_tr, y_tr, X_te, y_te = exercise_line()
    state = train.create_train_state(LinearRegressionModel(), jax.random.key(42), X_tr[:1],
                                     train.make_optimizer("sgd", 0.01), loss="l1")
    before = float(np.abs(np.asarray(train.make_predictions(state, X_te)) - y_te).mean())
    state, _ = learner.fit(state, data.make_batches((X_tr, y_tr), len(X_tr)), epochs=300)
    return before, float(np.abs(np.asarray(train.make_predictions(state, X_te)) - y_te).mean())


@exercise("02.2", "the state of LinearRegressionModel trained with L1 loss and SGD at 0.01 for 300 epochs")
def trained_line(answer) -> str:
    _, _, X_te, y_te = exercise_line()
    predictions = apply_model(answer, X_te)
    if parameter_count(answer) != 2:
        raise Wrong(f"the model has {parameter_count(answer)} parameters where LinearRegressionModel has 2 "
                    "(a weight and a bias)")
    if predictions.shape != y_te.shape:
        raise Wrong(f"the model's outputs have shape {predictions.shape} for X_test of shape {X_te.shape}; "
                    f"{y_te.shape} was meant")
    loss = float(np.abs(predictions - y_te).mean())
    before, after = reference_test_loss()
    if loss >= before:
        raise Wrong(f"the test L1 loss is {loss:.3f}, no lower than the untrained model's {before:.3f}: the loss did "
                    "not go down; fit the state on the exercise's line")
    if loss > max(2 * after, after + 0.01):
        raise Wrong(f"the test L1 loss is {loss:.3f}: it went down, but 300 epochs of SGD at 0.01 with L1 loss take "
                    f"it below {max(2 * after, after + 0.01):.3f}; check the epochs, the rate and loss='l1'")
    return f"test L1 loss {loss:.4f} (from {before:.3f} untrained)"


@exercise("02.3", "the trained model's predictions on X_test")
def test_predictions(answer) -> str:
    _, _, X_te, y_te = exercise_line()
    predictions = as_array(answer, "the predictions")
    if predictions.shape == (80, 1):
        raise Wrong("80 predictions: those are for X_train; predict on the 20 test points, X_test")
    if predictions.shape != y_te.shape:
        raise Wrong(f"the predictions have shape {predictions.shape} where {y_te.shape} (one per test point) was "
                    "asked")
    off = float(np.abs(predictions - y_te).mean())
    if off > 0.05:
        raise Wrong(f"the predictions are {off:.3f} away from the line on average: predict with the trained state "
                    "(train.make_predictions(state, X_test)), not a fresh one")
    return f"20 predictions, {off:.4f} from the line on average"


@exercise("02.4", "roundtrip(state, path): save the state's model to path, load it into fresh variables, return them",
          function="def roundtrip(state, path): ...")
def roundtrip(answer) -> str:
    from jaxdl import checkpoint, train
    from jaxdl.models import LinearRegressionModel

    X_tr = exercise_line()[0]
    state = train.create_train_state(LinearRegressionModel(), jax.random.key(1234), X_tr[:1],
                                     train.make_optimizer("sgd", 0.01))
    state = state.replace(params=jax.tree.map(lambda p: p + 1.25, state.params))  # weights no init gives
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "model.msgpack"
        loaded = call(answer, state, path, what="roundtrip(state, path)")
        if not path.is_file():
            raise Wrong("nothing was written at the path roundtrip was given: save there with "
                        "checkpoint.save_model(path, state)")
        fresh = LinearRegressionModel().init(jax.random.key(0), X_tr[:1])
        from_file = checkpoint.load_model(path, fresh)
    if not isinstance(loaded, dict) or "params" not in loaded:
        raise Wrong(f"roundtrip should return the loaded variables (a dict with 'params'); got a "
                    f"{type(loaded).__name__}")
    expect_close(from_file["params"]["weight"], state.params["weight"], "the saved weight",
                 advice="save the state you are given")
    returned, original = jax.tree.leaves(loaded["params"]), jax.tree.leaves(state.params)
    if any(a is b for a, b in zip(returned, original)):
        raise Wrong("roundtrip returned the state's own arrays: load them from the file into a fresh model's "
                    "variables (checkpoint.load_model(path, target))")
    for name in ("weight", "bias"):
        expect_close(loaded["params"].get(name, np.nan), state.params[name], f"the loaded {name}",
                     advice="the variables returned should be the ones read from the file")
    return "the file holds the state's weights and the variables read back equal them"
