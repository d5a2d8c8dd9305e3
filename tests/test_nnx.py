"""The Flax NNX twins of the course models and jaxdl's training of NNX models: every twin
computes its Linen model's function (logits, and one optimizer step with BatchNorm's
statistics), ``fit`` with checkpoints, resume, mixed precision and ``lr_find`` take an NNX
model, and the mix-ups between the two APIs are refused in one line."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxdl import checkpoint as K
from jaxdl import models as M
from jaxdl import model_summary
from jaxdl import nnx_models as X
from jaxdl import nnx_train
from jaxdl import train as T
from jaxdl.data import make_batches
from jaxdl.errors import ArgumentError, ArgumentTypeError, ShapeError
from jaxdl.learner import fit
from jaxdl.lr_find import lr_find

# the step parity needs the same dropout masks or none: these models train without dropout
NO_DROPOUT = {"FashionCNN": {"dropout": 0.0}}
REGRESSION = {"LinearRegressionModel", "LinearRegressionModelV2", "ConvAutoencoder"}


def _linen(name, **kwargs):
    model, shape = M.COURSE_MODELS[name]
    return (model.clone(**kwargs) if kwargs else model), shape


def _twins(name, **kwargs):
    """A Linen course model with fresh variables, and its NNX twin holding the same ones."""
    linen, shape = _linen(name, **kwargs)
    variables = linen.init({"params": jax.random.key(1), "dropout": jax.random.key(2)}, jnp.zeros((2, *shape)))
    twin = X.from_linen(X.NNX_MODELS[name](rngs=nnx.Rngs(0), **kwargs), variables)
    return linen, twin, variables, shape


def _batch(name, linen, variables, shape, n=8):
    x = jax.random.uniform(jax.random.key(3), (n, *shape))
    if name in REGRESSION:
        return x, (x if name == "ConvAutoencoder" else 2 * x + 1)
    classes = linen.apply(variables, x[:1]).shape[-1]
    if classes == 1:  # binary: one 0 or 1 per example
        return x, jax.random.randint(jax.random.key(4), (n,), 0, 2)
    return x, jax.random.randint(jax.random.key(4), (n,), 0, classes)


def _loss(name):
    if name in REGRESSION:
        return "mse"
    return "bce_with_logits" if name.startswith("Circle") else "cross_entropy"


def _same(a, b, atol=0.0):
    flat_a, flat_b = jax.tree_util.tree_flatten_with_path(a)[0], jax.tree_util.tree_flatten_with_path(b)[0]
    assert [p for p, _ in flat_a] == [p for p, _ in flat_b]
    for (path, u), (_, v) in zip(flat_a, flat_b):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=0, atol=atol, err_msg=jax.tree_util.keystr(path))


def test_every_course_model_has_an_nnx_twin_with_its_parameter_count():
    assert set(X.NNX_MODELS) == set(M.COURSE_MODELS)
    for name, make in X.NNX_MODELS.items():
        linen, shape = M.COURSE_MODELS[name]
        expected = M.count_params(linen.init({"params": jax.random.key(0), "dropout": jax.random.key(0)},
                                             jnp.zeros((1, *shape))))
        assert X.count_params(make(rngs=nnx.Rngs(0))) == expected, name
    assert X.count_params(X.TinyVGG(rngs=nnx.Rngs(0))) == 8083  # the course's "just over 8,000"
    assert X.count_params(X.MNISTBatchNormCNN(padding=1, rngs=nnx.Rngs(0))) == 143_114


@pytest.mark.parametrize("name", sorted(M.COURSE_MODELS))
def test_the_nnx_twin_computes_the_linen_model(name):
    """Same variables -> the same logits in evaluation; one SGD-with-momentum step, taken
    by jaxdl's step on both and by NNX's own loop (nnx.Optimizer) on the twin, -> the same
    parameters and BatchNorm statistics; and the variables go back to Linen unchanged."""
    kwargs = NO_DROPOUT.get(name, {})
    linen, twin, variables, shape = _twins(name, **kwargs)
    x, y = _batch(name, linen, variables, shape)
    twin.eval()
    _same(twin(x), linen.apply(variables, x, train=False), atol=1e-6)
    _same(X.to_linen(twin), dict(variables))

    tx = optax.sgd(0.05, momentum=0.9)
    loss = _loss(name)
    batch = {"x": x, "y": y, "mask": jnp.ones(len(x))}
    linen_state = T.create_train_state(linen, jax.random.key(5), x[:1], tx, loss=loss)
    start = jax.tree.map(jnp.copy, dict(variables))  # the step donates its state's buffers
    linen_state = linen_state.replace(params=start["params"], opt_state=tx.init(start["params"]),
                                      batch_stats=start.get("batch_stats", {}))
    linen_after, linen_metrics = T.train_step(linen_state, batch)
    nnx_state = T.create_train_state(twin, jax.random.key(5), x[:1], tx, loss=loss)
    nnx_after, nnx_metrics = T.train_step(nnx_state, batch)
    stepped = nnx_train.update_model(X.NNX_MODELS[name](rngs=nnx.Rngs(9), **kwargs), nnx_after)
    _same(X.to_linen(stepped), linen_after.variables, atol=1e-6)
    _same(nnx_metrics, linen_metrics, atol=1e-5)

    # NNX's own training loop, as the Flax documentation writes it
    twin.train()
    optimizer = nnx.Optimizer(twin, tx, wrt=nnx.Param)

    @nnx.jit
    def nnx_step(model, optimizer, x, y):
        def loss_fn(model):
            return jnp.mean(linen_state.loss(model(x), y))

        grads = nnx.grad(loss_fn)(model)
        optimizer.update(model, grads)

    nnx_step(twin, optimizer, x, y)
    _same(X.to_linen(twin), linen_after.variables, atol=1e-6)


def _fashion_like(n=96, key=0):
    """Noise images, those of class 1 brighter in their top half."""
    y = jax.random.randint(jax.random.key(key + 1), (n,), 0, 2)
    x = 0.5 * jax.random.uniform(jax.random.key(key), (n, 28, 28, 1))
    return x.at[:, :14].add(0.5 * y[:, None, None, None]), y


def _nnx_state(model=None, lr=0.05):
    model = model or X.FashionCNN(num_classes=2, rngs=nnx.Rngs(0))
    return model, T.create_train_state(model, jax.random.key(1), jnp.zeros((1, 28, 28, 1)),
                                       T.make_optimizer("sgd", lr, momentum=0.9))


def test_fit_trains_an_nnx_model_and_update_model_hands_it_back():
    x, y = _fashion_like()
    model, state = _nnx_state()
    model.eval()
    before = model(x[:4])
    state, history = fit(state, make_batches((x, y), 16, key=jax.random.key(2)), make_batches((x, y), 32),
                         epochs=3)
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert nnx_train.update_model(model, state) is model
    model.eval()
    after = model(x[:4])
    assert not np.allclose(before, after)
    np.testing.assert_allclose(jax.nn.softmax(after), T.make_predictions(state, x[:4]), atol=1e-6)


def test_dropout_draws_a_new_mask_each_step_and_the_same_one_again_in_a_second_run():
    x, y = _fashion_like(32)
    runs = []
    for _ in range(2):
        _, state = _nnx_state()
        state, _ = fit(state, make_batches((x, y), 16, key=jax.random.key(2)), epochs=2, scan=False)
        runs.append(state.params)
    _same(runs[0], runs[1])
    model = X.FashionCNN(num_classes=2, rngs=nnx.Rngs(0))
    _, apply = nnx_train.split_model(model)
    variables = nnx_train.split_model(model)[0]
    masks = [apply(variables, x[:2], train=True, rngs={"dropout": jax.random.key(k)}) for k in (0, 0, 1)]
    np.testing.assert_array_equal(masks[0], masks[1])
    assert not np.allclose(masks[0], masks[2])


def test_a_resumed_nnx_run_ends_bit_identical_to_an_uninterrupted_one(tmp_path):
    x, y = _fashion_like()
    train = functools.partial(make_batches, (x, y), 16, key=jax.random.key(2))

    def run(directory, epochs):
        # BatchNorm's statistics and dropout's keys must both come back
        model, state = _nnx_state(X.CompactVGG((8, 16), 16, num_classes=2, rngs=nnx.Rngs(0)))
        saver = K.Checkpoint(directory, every_n_steps=4)
        state, _ = fit(state, train(), epochs=epochs, callbacks=[saver], scan=False)
        return model, state

    _, whole = run(tmp_path / "whole", 3)
    run(tmp_path / "cut", 1)  # stopped after one epoch ...
    model, resumed = run(tmp_path / "cut", 3)  # ... and started again with the same command
    _same(resumed.params, whole.params)
    _same(resumed.batch_stats, whole.batch_stats)
    assert int(resumed.step) == int(whole.step) == 18
    nnx_train.update_model(model, resumed)  # the restored arrays go back into the model


def test_save_model_and_load_model_take_an_nnx_model(tmp_path):
    model = X.MNISTBatchNormCNN(num_classes=2, padding=1, rngs=nnx.Rngs(0))
    x, y = _fashion_like(32)
    _, state = _nnx_state(model)
    state, _ = fit(state, make_batches((x, y), 16, key=jax.random.key(2)), epochs=1)
    K.save_model(tmp_path / "state.msgpack", state)
    nnx_train.update_model(model, state)
    K.save_model(tmp_path / "model.msgpack", model)  # the same file from the model itself
    assert (tmp_path / "state.msgpack").read_bytes() == (tmp_path / "model.msgpack").read_bytes()
    fresh = X.MNISTBatchNormCNN(num_classes=2, padding=1, rngs=nnx.Rngs(7))
    assert K.load_model(tmp_path / "model.msgpack", fresh) is fresh
    _same(nnx_train.variables_of(fresh), state.variables)
    with pytest.raises(K.CheckpointMismatchError):
        K.load_model(tmp_path / "model.msgpack", X.MNISTBatchNormCNN(num_classes=3, padding=1, rngs=nnx.Rngs(0)))


def test_mixed_precision_and_lr_find_take_an_nnx_model():
    x, y = _fashion_like()
    _, state = _nnx_state(X.FashionMNISTModelV2(1, 8, 2, rngs=nnx.Rngs(0)), lr=0.1)
    trained, history = fit(state, make_batches((x, y), 16, key=jax.random.key(2)), epochs=2, precision="bfloat16")
    assert np.isfinite(history["train_loss"]).all()
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(trained.params))
    # the learning-rate finder's losses are those of the Linen twin with the same weights
    model, state = _nnx_state(X.FashionMNISTModelV2(1, 8, 2, rngs=nnx.Rngs(0)))
    linen = T.create_train_state(M.FashionMNISTModelV2(1, 8, 2), jax.random.key(1), x[:1], state.tx)
    linen = linen.replace(params=X.to_linen(model)["params"])
    found = [lr_find(s, make_batches((x, y), 16, key=jax.random.key(2)), num_steps=12, end=1.0)
             for s in (state, linen)]
    assert len(found[0].losses) == 12 and np.isfinite(found[0].losses).all()
    np.testing.assert_allclose(found[0].losses, found[1].losses, rtol=1e-5)


class Counter(nnx.Variable):
    pass


class WithCounter(nnx.Module):
    def __init__(self, rngs):
        self.linear = nnx.Linear(2, 2, rngs=rngs)
        self.calls = Counter(jnp.zeros((), jnp.int32))

    def __call__(self, x):
        return self.linear(x)


class DropoutWithoutRngs(nnx.Module):
    def __init__(self, rngs):
        self.linear = nnx.Linear(2, 2, rngs=rngs)
        self.dropout = nnx.Dropout(0.5)

    def __call__(self, x):
        return self.dropout(self.linear(x))


def _one_line(excinfo, *words):
    message = str(excinfo.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_mix_ups_between_linen_and_nnx_are_refused_in_one_line():
    tx = optax.sgd(0.1)
    x = jnp.zeros((1, 2))
    with pytest.raises(ArgumentTypeError) as err:
        T.create_train_state(WithCounter(nnx.Rngs(0)), jax.random.key(0), x, tx)
    _one_line(err, "Counter", "'calls'", "nnx.Param")
    with pytest.raises(ArgumentError) as err:
        T.create_train_state(DropoutWithoutRngs(nnx.Rngs(0)), jax.random.key(0), x, tx)
    _one_line(err, "nnx.Dropout", "'dropout'", "rngs=rngs")
    with pytest.raises(ArgumentTypeError) as err:
        T.create_train_state(X.BlobModel, jax.random.key(0), x, tx)
    _one_line(err, "class BlobModel", "rngs=nnx.Rngs(0)")
    with pytest.raises(ArgumentTypeError) as err:
        T.create_train_state(object(), jax.random.key(0), x, tx)
    _one_line(err, "Linen module", "NNX", "object")

    linen_state = T.create_train_state(M.BlobModel(2, 4), jax.random.key(0), x, tx)
    nnx_model = X.BlobModel(2, 4, rngs=nnx.Rngs(0))
    with pytest.raises(ArgumentTypeError) as err:
        nnx_train.update_model(nnx_model, linen_state)
    _one_line(err, "Linen module BlobModel", "state.variables")
    with pytest.raises(ArgumentTypeError) as err:
        nnx_train.update_model(M.BlobModel(2, 4), T.create_train_state(nnx_model, jax.random.key(0), x, tx))
    _one_line(err, "NNX model", "BlobModel")
    with pytest.raises(ShapeError) as err:
        nnx_train.update_model(X.BlobModel(2, 3, rngs=nnx.Rngs(0)),
                               T.create_train_state(nnx_model, jax.random.key(0), x, tx))
    _one_line(err, "another model")
    with pytest.raises(ArgumentTypeError) as err:
        X.from_linen(M.BlobModel(2, 4), linen_state.variables)
    _one_line(err, "Linen module BlobModel", "jaxdl.nnx_models")
    with pytest.raises(ShapeError) as err:
        X.from_linen(X.BlobModel(2, 3, rngs=nnx.Rngs(0)), linen_state.variables)
    _one_line(err, "params/Dense_2/kernel", "(8, 4)", "(8, 3)")
    with pytest.raises(ArgumentTypeError) as err:
        model_summary.summary(nnx_model, (2,))
    _one_line(err, "Linen", "NNX", "nnx.tabulate")
    with pytest.raises(ShapeError) as err:  # the example input is checked, as Linen's init checks it
        T.create_train_state(X.FashionMNISTModelV2(1, 8, 10, rngs=nnx.Rngs(0)), jax.random.key(0),
                             jnp.zeros((1, 32, 32, 1)), tx)
    _one_line(err, "Linear", "392")


def test_nnx_layers_keep_pytorch_defaults():
    rngs = nnx.Rngs(0)
    conv = X.Conv(3, 4, 5, rngs=rngs)
    assert conv.kernel.shape == (5, 5, 3, 4)  # an int kernel_size is square, as in PyTorch
    assert conv(jnp.zeros((1, 9, 9, 3))).shape == (1, 5, 5, 4)  # padding 0 by default
    bound = 1 / np.sqrt(5 * 5 * 3)
    assert np.abs(np.asarray(conv.kernel[...])).max() <= bound and np.abs(np.asarray(conv.bias[...])).max() <= bound
    assert np.abs(np.asarray(conv.bias[...])).max() > 0  # PyTorch's biases do not start at zero
    norm = X.BatchNorm(2, rngs=rngs)
    x = jnp.arange(8.0).reshape(4, 2)
    norm(x)  # training mode: running = 0.9 * running + 0.1 * batch, with the unbiased variance
    np.testing.assert_allclose(norm.mean[...], 0.1 * np.mean(np.asarray(x), 0), rtol=1e-6)
    np.testing.assert_allclose(norm.var[...], 0.9 + 0.1 * np.var(np.asarray(x), 0, ddof=1), rtol=1e-6)
    with pytest.raises(ShapeError):
        X.Linear(3, 2, rngs=rngs)(jnp.zeros((1, 4)))
    with pytest.raises(ArgumentError):
        X.Conv(3, 4, 0, rngs=rngs)
