"""Layers on jax.lax: the same under jit and without, PyTorch's initialisation and
BatchNorm arithmetic, train/eval behaviour, and clear errors."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import conv as C
from jaxdl import layers as L


class LayerVariantsTest(chex.TestCase):
    """Every layer gives the same answer jitted and not (chex.variants)."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_layers_under_jit_and_without(self):
        key = jax.random.key(0)
        x = jax.random.normal(key, (2, 8, 8, 3))
        for layer in [L.Conv2D(4, 3, padding=1), L.Conv2D(4, (2, 3), strides=2, padding="SAME"),
                      L.MaxPool2D(2), L.AvgPool2D(2), L.Flatten(), L.Upsample2D(2), L.Pad2D(-2),
                      L.Dense(5), L.BatchNorm()]:
            variables = layer.init(key, x)
            expected = layer.apply(variables, x)
            got = self.variant(layer.apply)(variables, x)
            chex.assert_trees_all_close(got, expected, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_activations(self):
        x = jnp.linspace(-5, 5, 11)
        chex.assert_trees_all_close(self.variant(L.relu)(x), jax.nn.relu(x))
        chex.assert_trees_all_close(self.variant(L.sigmoid)(x), jax.nn.sigmoid(x), atol=1e-6)
        logits = jnp.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, 0.0]])
        probs = self.variant(L.softmax)(logits)
        chex.assert_trees_all_close(probs, jax.nn.softmax(logits), atol=1e-6)
        chex.assert_trees_all_close(probs.sum(-1), jnp.ones(2), atol=1e-6)


def test_sigmoid_is_finite_with_a_finite_gradient_far_out():
    x = jnp.array([-1000.0, -90.0, 0.0, 90.0, 1000.0])
    np.testing.assert_allclose(L.sigmoid(x), [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-30)
    grads = jax.vmap(jax.grad(L.sigmoid))(x)
    assert np.isfinite(grads).all() and float(grads[2]) == pytest.approx(0.25)


@pytest.mark.parametrize("layer,x_shape,fan_in", [
    (L.Dense(50), (1, 200), 200),
    (L.Conv2D(64, 3), (1, 8, 8, 16), 3 * 3 * 16),
])
def test_default_init_is_pytorchs(layer, x_shape, fan_in):
    params = layer.init(jax.random.key(1), jnp.zeros(x_shape))["params"]
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) and the bias bound
    for name in ("kernel", "bias"):
        w = np.asarray(params[name])
        assert np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.9 * bound  # fills the interval, not a smaller one
        assert abs(w.std() - bound / math.sqrt(3)) < 0.1 * bound  # std of U(-b, b)


def test_batchnorm_matches_pytorchs_arithmetic():
    x = jax.random.normal(jax.random.key(2), (4, 3, 3, 2)) * 3 + 1
    bn = L.BatchNorm()
    variables = bn.init(jax.random.key(0), x)
    y, updates = bn.apply(variables, x, train=True, mutable=["batch_stats"])
    flat = np.asarray(x).reshape(-1, 2)
    mean, var_biased, var_unbiased = flat.mean(0), flat.var(0), flat.var(0, ddof=1)
    np.testing.assert_allclose(np.asarray(y).reshape(-1, 2), (flat - mean) / np.sqrt(var_biased + 1e-5),
                               atol=1e-4)
    stats = updates["batch_stats"]
    np.testing.assert_allclose(stats["mean"], 0.9 * 0 + 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(stats["var"], 0.9 * 1 + 0.1 * var_unbiased, rtol=1e-5)
    # evaluation uses the running statistics, not the batch's
    y_eval = bn.apply({**variables, "batch_stats": stats}, x)
    expected = (flat - stats["mean"]) / np.sqrt(stats["var"] + 1e-5)
    np.testing.assert_allclose(np.asarray(y_eval).reshape(-1, 2), expected, atol=1e-4)


def test_batchnorm_init_leaves_statistics_untouched():
    variables = L.BatchNorm().init(jax.random.key(0), jnp.ones((4, 2)) * 5, train=True)
    np.testing.assert_array_equal(variables["batch_stats"]["mean"], 0.0)
    np.testing.assert_array_equal(variables["batch_stats"]["var"], 1.0)


def test_dropout_zeroes_and_rescales_in_training_only():
    x = jnp.ones((1000,))
    drop = L.Dropout(0.2)
    assert jnp.array_equal(drop.apply({}, x), x)
    y = drop.apply({}, x, train=True, rngs={"dropout": jax.random.key(3)})
    kept = np.asarray(y) != 0
    assert 0.7 < kept.mean() < 0.9
    np.testing.assert_allclose(np.asarray(y)[kept], 1 / 0.8)
    y_again = drop.apply({}, x, train=True, rngs={"dropout": jax.random.key(3)})
    assert jnp.array_equal(y, y_again)  # same key, same mask
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        L.Dropout(1.0).apply({}, x, train=True, rngs={"dropout": jax.random.key(3)})


def test_pools():
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(L.MaxPool2D(2).apply({}, x)[0, :, :, 0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(L.AvgPool2D(2).apply({}, x)[0, :, :, 0], [[2.5, 4.5], [10.5, 12.5]])
    assert L.MaxPool2D(3, strides=1).apply({}, x).shape == (1, 2, 2, 1)


def test_pad_and_crop_like_zeropad2d():
    x = jnp.ones((1, 28, 28, 1))
    padded = L.Pad2D(2).apply({}, x)
    assert padded.shape == (1, 32, 32, 1) and padded[0, 0, 0, 0] == 0 and padded.sum() == 28 * 28
    assert jnp.array_equal(L.Pad2D(-2).apply({}, padded), x)
    assert L.Pad2D((1, 0, 0, 3)).apply({}, x).shape == (1, 31, 29, 1)  # (left, right, top, bottom)
    with pytest.raises(ValueError, match="crops away"):
        L.Pad2D(-14).apply({}, x)


def test_upsample_repeats_each_pixel():
    x = jnp.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(L.Upsample2D(2).apply({}, x)[0, :, :, 0],
                                  [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])


@pytest.mark.parametrize("layer,x,error,message", [
    (L.Conv2D(4, 3), jnp.zeros((28, 28, 1)), ValueError, r"rank-4 .*got shape \(28, 28, 1\)"),
    (L.Conv2D(4, 3, in_channels=3), jnp.zeros((1, 8, 8, 1)), ValueError,
     r"expects 3 .*\(1, 8, 8, 3\), got shape \(1, 8, 8, 1\)"),
    (L.Dense(4, in_features=10), jnp.zeros((2, 5)), ValueError, r"\(2, 10\), got shape \(2, 5\)"),
    (L.Dense(4), jnp.zeros((2, 5), jnp.int32), TypeError, "floating-point"),
    (L.MaxPool2D(2), jnp.zeros((4, 4)), ValueError, r"got shape \(4, 4\)"),
    (L.MaxPool2D(3), jnp.zeros((1, 2, 2, 1)), ValueError, r"a 3x3 window does not fit an input of 2x2"),
    (L.AvgPool2D((1, 5), padding=1), jnp.zeros((1, 4, 2, 1)), ValueError, r"a 1x5 window does not fit .*padded to 6x4"),
    (L.Conv2D(4, 5), jnp.zeros((1, 3, 3, 1)), ValueError, r"kernel of size 5 .* does not fit an input of size 3"),
])
def test_bad_inputs_raise_naming_shapes(layer, x, error, message):
    with pytest.raises(error, match=message):
        layer.init(jax.random.key(0), x)


@pytest.mark.parametrize("make, message", [
    (lambda: L.Conv2D(8, strides=0), "Conv2D: strides must be at least 1, got 0"),
    (lambda: L.Conv2D(8, strides=(1, -2)), r"Conv2D: strides must be at least 1, got \(1, -2\)"),
    (lambda: L.Conv2D(8, dilation=0), "Conv2D: dilation must be at least 1, got 0"),
    (lambda: L.Conv2D(8, kernel_size=0), "Conv2D: kernel_size must be at least 1, got 0"),
    (lambda: L.Conv2D(0), "Conv2D: features must be a positive int, got 0"),
    (lambda: L.Conv2D(4, padding="FULL"), "Conv2D: padding must be 'SAME', 'VALID'"),
    (lambda: L.Conv2D(4, padding=-1), "Conv2D: padding must be at least 0, got -1"),
    (lambda: L.MaxPool2D(0), "MaxPool2D: window must be at least 1, got 0"),
    (lambda: L.AvgPool2D(2, strides=0), "AvgPool2D: strides must be at least 1, got 0"),
    (lambda: L.Dense(0), "Dense: features must be a positive int, got 0"),
    (lambda: L.Dense(2.5), "Dense: features must be a positive int, got 2.5"),
    (lambda: L.Dropout(1.0), r"Dropout rate must be in \[0, 1\), got 1.0"),
    (lambda: L.BatchNorm(momentum=2.0), r"BatchNorm momentum must be in \[0, 1\], got 2.0"),
    (lambda: L.Upsample2D(0), "Upsample2D: scale must be a positive int, got 0"),
])
def test_bad_layer_arguments_are_refused_when_the_layer_is_made(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_the_functions_of_the_conv_module_check_their_arguments_too():
    images, kernels = jnp.zeros((1, 8, 8, 1)), jnp.zeros((3, 3, 1, 2))
    for conv in (C.conv2d, C.conv2d_im2col, C.conv2d_loops):
        with pytest.raises(ValueError, match="stride must be at least 1, got 0"):
            conv(images, kernels, stride=0)
        with pytest.raises(ValueError, match="dilation must be at least 1, got 0"):
            conv(images, kernels, dilation=0)
