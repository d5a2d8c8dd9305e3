"""Mixed precision (jaxdl.precision): bfloat16 steps keep float32 weights and train every
course model as float32 does; float16's loss scale skips overflowing steps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import data, layers, learner, precision
from jaxdl import train as T
from jaxdl.models import COURSE_MODELS, BlobModel, MNISTBatchNormCNN

from conftest import SHARED_DATA


def course_task(name: str):
    """(train (x, y), test (x, y), loss, target) for a short run of course model ``name``:
    the course's own data (the toys' synthetic sets, MNIST), MNIST digits resized to
    64x64 RGB for TinyVGG."""
    if name.startswith("LinearRegression"):
        x_train, y_train, x_test, y_test = data.make_linear()
        return (x_train, y_train), (x_test, y_test), "l1", "y"
    if name.startswith(("CircleModel", "BlobModel")):
        make = data.make_circles if name.startswith("Circle") else data.make_blobs
        x, y = make(jax.random.key(0))
        loss = "bce_with_logits" if name.startswith("Circle") else "cross_entropy"
        return (x[:800], y[:800]), (x[800:], y[800:]), loss, "y"
    mnist = data.load_dataset("mnist", SHARED_DATA)
    train, test = mnist.train.take(2048), mnist.test.take(512)
    x_train, x_test = jnp.asarray(train.images), jnp.asarray(test.images)
    if name == "TinyVGG":
        def rgb64(images):
            return jnp.repeat(jax.image.resize(images, (len(images), 64, 64, 1), "linear"), 3, axis=-1)

        x_train, x_test = rgb64(x_train), rgb64(x_test)
    if name == "ConvAutoencoder":
        return (x_train, x_train), (x_test, x_test), "mse", "x"
    classes = 3 if name == "TinyVGG" else 10  # the course's pizza, steak, sushi: digits 0-2 stand in
    keep_train, keep_test = train.labels < classes, test.labels < classes
    return ((x_train[keep_train], jnp.asarray(train.labels[keep_train])),
            (x_test[keep_test], jnp.asarray(test.labels[keep_test])), "cross_entropy", "y")


def short_run(name: str, compute: str):
    model, _ = COURSE_MODELS[name]
    (x, y), (x_test, y_test), loss, target = course_task(name)
    toy = name.startswith(("LinearRegression", "CircleModel", "BlobModel"))
    tx = T.make_optimizer("sgd", 0.1) if toy else T.make_optimizer("adam", 1e-3)
    if name == "ConvAutoencoder":  # what gets it off its start in two epochs
        tx = T.make_optimizer("sgd", 0.05, momentum=0.9)
    epochs = 100 if toy else 2
    state = T.create_train_state(model, jax.random.key(0), x[:1], tx, loss, target, precision=compute)
    state, history = learner.fit(state, data.make_batches((x, y), len(x) if toy else 64, key=jax.random.key(1)),
                                 data.make_batches((x_test, y_test), 256), epochs=epochs)
    return state, history


@pytest.mark.data
@pytest.mark.parametrize("name", sorted(COURSE_MODELS))
def test_every_course_model_trains_in_bfloat16_as_in_float32(name):
    full, full_history = short_run(name, "float32")
    mixed, mixed_history = short_run(name, "bfloat16")
    assert mixed.precision is precision.BFLOAT16
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves((mixed.params, mixed.batch_stats)))
    assert np.isfinite(mixed_history["train_loss"]).all() and np.isfinite(mixed_history["test_loss"]).all()
    if np.isnan(full_history["test_acc"][-1]):  # regression and the autoencoder: the test loss
        # no worse than float32's (an L1 fit at a fixed rate circles its optimum, so either may end lower)
        assert mixed_history["test_loss"][-1] <= 1.15 * full_history["test_loss"][-1] + 0.01
        if name.startswith("Linear"):  # a hundred epochs: it learnt
            assert mixed_history["train_loss"][-1] < 0.2 * mixed_history["train_loss"][0]
    else:
        assert abs(mixed_history["test_acc"][-1] - full_history["test_acc"][-1]) <= 5.0
        assert full_history["test_acc"][-1] > 40  # the run is long enough to learn something


def test_bfloat16_computes_in_bfloat16_and_keeps_statistics_in_float32():
    x = jax.random.uniform(jax.random.key(0), (8, 28, 28, 1))
    state = T.create_train_state(MNISTBatchNormCNN(), jax.random.key(1), x[:1], T.make_optimizer("sgd", 0.1),
                                 precision="bfloat16")
    dtypes = []

    def spy(next_fun, args, kwargs, context):
        if context.method_name == "__call__" and isinstance(context.module, (layers.Conv2D, layers.BatchNorm)):
            dtypes.append((type(context.module).__name__, args[0].dtype))
        return next_fun(*args, **kwargs)

    import flax.linen as nn

    with nn.intercept_methods(spy):
        outputs, _ = T._apply(state, state.params, x, train=True)
    assert outputs.dtype == jnp.float32  # the loss is taken in float32
    assert dtypes and all(dtype == jnp.bfloat16 for _, dtype in dtypes), dtypes
    batch = {"x": x, "y": jnp.arange(8) % 10, "mask": jnp.ones(8)}
    new, metrics = T.train_step(state, batch)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves((new.params, new.opt_state, new.batch_stats)))
    assert metrics["loss_sum"].dtype == jnp.float32 and np.isfinite(metrics["loss_sum"])


def test_precision_names_and_the_state_switch():
    assert precision.as_precision(None) is precision.FLOAT32
    assert precision.as_precision("bfloat16") is precision.BFLOAT16
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        precision.as_precision("fp8")
    state = T.create_train_state(BlobModel(2, 4), jax.random.key(0), jnp.zeros((1, 2)), T.make_optimizer("sgd", 0.1))
    assert state.precision is precision.FLOAT32 and state.loss_scale is None
    half = T.with_precision(state, "float16")
    assert half.loss_scale["scale"] == 2.0**15 and T.with_precision(half, "float16") is half
    assert T.with_precision(half, "bfloat16").loss_scale is None


def test_the_loss_scale_halves_on_overflow_and_grows_after_good_steps():
    p = precision.Precision("float16", jnp.float16, loss_scaling=True, growth_interval=3)
    scale = p.initial_loss_scale()
    scale = precision.next_loss_scale(p, scale, jnp.asarray(False))
    assert float(scale["scale"]) == 2.0**14 and int(scale["good_steps"]) == 0
    for expected in (2.0**14, 2.0**14, 2.0**15):
        scale = precision.next_loss_scale(p, scale, jnp.asarray(True))
        assert float(scale["scale"]) == expected
    assert int(scale["good_steps"]) == 0
    low = {"scale": jnp.asarray(1.0), "good_steps": jnp.asarray(0, jnp.int32)}
    assert float(precision.next_loss_scale(p, low, jnp.asarray(False))["scale"]) == 1.0  # never below 1


def test_float16_skips_a_step_whose_scaled_gradients_overflow():
    x = jax.random.normal(jax.random.key(0), (16, 2))
    batch = {"x": x, "y": jnp.arange(16) % 4, "mask": jnp.ones(16)}
    huge = precision.Precision("float16", jnp.float16, loss_scaling=True, initial_scale=2.0**40)
    state = T.create_train_state(BlobModel(2, 4), jax.random.key(1), x[:1], T.make_optimizer("sgd", 0.1),
                                 precision=huge)
    before = jax.device_get(state.params)
    state, metrics = T.train_step(state, batch)
    assert np.isfinite(metrics["loss_sum"])  # the loss itself is fine: only the scaled gradients overflow
    assert all(np.array_equal(u, v) for u, v in zip(jax.tree.leaves(before), jax.tree.leaves(state.params)))
    assert float(state.loss_scale["scale"]) == 2.0**39 and int(state.step) == 1
    state = T.with_precision(state.replace(loss_scale=None), "float16")  # a sane scale: 2**15
    state, _ = T.train_step(state, batch)
    assert not all(np.array_equal(u, v) for u, v in zip(jax.tree.leaves(before), jax.tree.leaves(state.params)))
    assert float(state.loss_scale["scale"]) == 2.0**15 and int(state.loss_scale["good_steps"]) == 1
