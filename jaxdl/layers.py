"""The course's layers as Flax Linen modules written on ``jax.lax``.

The course builds every model from ``torch.nn`` layers -- ``nn.Linear``,
``nn.Conv2d``, ``nn.MaxPool2d``, ``nn.Dropout``, ``nn.BatchNorm2d``, ``nn.Flatten``,
``nn.UpsamplingNearest2d``, ``nn.ZeroPad2d`` -- and "replicates" ``ReLU``,
``Sigmoid`` and ``softmax`` by hand to show there is no magic. These are the same
layers, each a few lines over a ``lax`` primitive, so a reader sees what a layer is.

Conventions:

* images are NHWC float32, kernels HWIO;
* default initialisation is PyTorch's, so a model starts from the same distribution
  as the course's: weights ``kaiming_uniform(a=sqrt(5))`` and biases uniform in
  ``+-1/sqrt(fan_in)`` -- both work out to ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``;
* a layer that changes between training and evaluation (``Dropout``,
  ``BatchNorm``) takes ``train: bool`` in its call, like ``model.train()`` /
  ``model.eval()`` in PyTorch, and a wrong input raises an error that names the
  expected and the received shape;
* ``Conv2D`` and the pools run the plain path written here unless :mod:`jaxdl.fastpath`
  has a faster equivalent for their shape on the backend at hand (same values; the one
  ``if`` in each says so). ``with jaxdl.fastpath.plain():`` runs the plain path everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxdl import conv as conv_lib
from jaxdl import fastpath
from jaxdl.errors import ArgumentError, ArgumentTypeError, ShapeError

Array = jax.Array


# --- Activations, written out as the course "replicates" them ----------------------


def relu(x: Array) -> Array:
    """``max(0, x)`` element-wise (the course's hand-written ``relu``)."""
    return jnp.maximum(0, x)


def sigmoid(x: Array) -> Array:
    """``1 / (1 + exp(-x))``: squashes logits into probabilities for binary labels.

    Written as the course writes it, with one change: for ``x < 0`` the same value is
    computed as ``exp(x) / (1 + exp(x))``. Below about -88, ``exp(-x)`` overflows float32
    to infinity, and although ``1 / (1 + inf)`` is the right 0, its gradient is
    ``inf / inf = NaN`` -- enough to kill a training run.
    """
    e = jnp.exp(-jnp.abs(x))  # never overflows: e is in (0, 1]
    return jnp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def softmax(x: Array, axis: int = -1) -> Array:
    """``exp(x) / sum(exp(x))`` along ``axis``; the max is subtracted first so that
    large logits do not overflow (the result is mathematically unchanged)."""
    e = jnp.exp(x - lax.stop_gradient(x.max(axis=axis, keepdims=True)))
    return e / e.sum(axis=axis, keepdims=True)


# --- Initialisation ---------------------------------------------------------------


def fan_in(shape: Sequence[int]) -> int:
    """Inputs feeding one output unit: every dimension but the last.

    ``(in, out)`` for a Dense kernel gives ``in``; ``(kh, kw, in, out)`` for an HWIO
    conv kernel gives ``kh * kw * in``, as PyTorch counts it.
    """
    return math.prod(shape[:-1])


def kaiming_uniform(a: float = math.sqrt(5)):
    """PyTorch's ``kaiming_uniform_(w, a)``: ``U(-b, b)`` with ``b = gain * sqrt(3 / fan_in)``
    and ``gain = sqrt(2 / (1 + a^2))``. With PyTorch's default ``a = sqrt(5)`` this is
    ``b = 1 / sqrt(fan_in)``."""

    def init(key, shape, dtype=jnp.float32):
        gain = math.sqrt(2.0 / (1 + a**2))
        bound = gain * math.sqrt(3.0 / fan_in(shape))
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def torch_bias_init(weight_fan_in: int):
    """PyTorch's default bias: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` of the weight's fan-in."""
    bound = 1 / math.sqrt(weight_fan_in) if weight_fan_in > 0 else 0.0

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


# --- Input checks -----------------------------------------------------------------


def check_input(x, layer: str, *, ndim: int | None = None, min_ndim: int | None = None,
                layout: str = "", channels: int | None = None) -> None:
    """Raise a :class:`~jaxdl.errors.ShapeError` / :class:`~jaxdl.errors.ArgumentTypeError`
    that names what ``layer`` expected and got."""
    shape = tuple(x.shape)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ArgumentTypeError(
            f"{layer} expects a floating-point input, got dtype {x.dtype} with shape {shape}; "
            "convert integer images with x.astype(jnp.float32) / 255"
        )
    if ndim is not None and x.ndim != ndim:
        raise ShapeError(f"{layer} expects a rank-{ndim} input {layout}, got shape {shape}")
    if min_ndim is not None and x.ndim < min_ndim:
        raise ShapeError(f"{layer} expects an input of rank >= {min_ndim} {layout}, got shape {shape}")
    if 0 in shape[1:]:  # e.g. no channels: there is nothing to compute, and fan-in would be 0
        raise ShapeError(f"{layer} got an input of shape {shape}, with an axis of size 0 after the batch axis; "
                         f"expected {layout or 'at least one value per example'}")
    if channels is not None and shape[-1] != channels:
        expected = shape[:-1] + (channels,)
        raise ShapeError(f"{layer} expects {channels} input features/channels, i.e. shape "
                         f"{expected}, got shape {shape}")


def check_count(value, name: str, layer: str) -> None:
    """Raise an :class:`~jaxdl.errors.ArgumentError` unless ``value`` is a positive int (a number of features)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArgumentError(f"{layer}: {name} must be a positive int, got {value!r}")


def check_padding(padding, layer: str) -> None:
    """Raise an :class:`~jaxdl.errors.ArgumentError` unless ``padding`` is one that :func:`jaxdl.conv.resolve_padding` takes."""
    try:
        conv_lib.resolve_padding(padding, (1, 1), (1, 1))
    except (ValueError, TypeError) as err:
        raise ArgumentError(f"{layer}: {err}") from None


def wide(x: Array) -> Array:
    """``x`` in float32 if it is narrower (bfloat16, float16), else as it is."""
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def add_bias(y: Array, bias: Array) -> Array:
    """``y + bias`` over the last axis, added in float32 at least. Under mixed precision
    (:mod:`jaxdl.precision`) the bias's gradient -- a sum over every example and pixel
    of tiny terms -- is then summed in float32; summed in bfloat16 it stops growing once
    each term is below its last bit. In float32 it is just ``y + bias``."""
    return (wide(y) + wide(bias)).astype(y.dtype)


# --- The layers' computations, as functions of arrays -------------------------------
# Each layer below is one of these with its parameters; jaxdl's Flax NNX layers
# (:mod:`jaxdl.nnx_layers`) call the same functions, so both APIs compute the same values.


def convolution(x: Array, kernel: Array, strides=1, padding: conv_lib.Padding = 0, dilation=1) -> Array:
    """The convolution a :class:`Conv2D` computes: NHWC ``x`` by an HWIO ``kernel``, no bias."""
    fast = fastpath.faster_conv2d(x.shape, kernel.shape, strides, dilation, x.dtype)
    if fast is not None:  # the same convolution by a faster route here (jaxdl.fastpath)
        return fast(x, kernel, strides, padding, dilation)
    return conv_lib.conv2d(x, kernel, strides, padding, dilation)  # as the course computes it


def affine(x: Array, kernel: Array, bias: Array | None = None) -> Array:
    """What a :class:`Dense` computes: ``x @ kernel (+ bias)`` over the last axis of ``x``."""
    y = lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())))
    return y if bias is None else add_bias(y, bias)


def max_pool2d(x: Array, window=2, strides=None, padding: conv_lib.Padding = 0) -> Array:
    """``nn.MaxPool2d`` as a function: the largest value in each window of NHWC ``x``."""
    _check_pool_arguments(window, strides, padding, "MaxPool2D")
    return _pool(x, -jnp.inf, lax.max, window, strides, padding, "MaxPool2D")


def avg_pool2d(x: Array, window=2, strides=None, padding: conv_lib.Padding = 0) -> Array:
    """``nn.AvgPool2d`` as a function: the mean of each window; padded zeros count."""
    _check_pool_arguments(window, strides, padding, "AvgPool2D")
    total = _pool(x, 0.0, lax.add, window, strides, padding, "AvgPool2D")
    return total / math.prod(conv_lib.pair(window, "window"))


def flatten(x: Array) -> Array:
    """``nn.Flatten`` as a function: ``(N, ...) -> (N, features)``."""
    check_input(x, "Flatten", min_ndim=2, layout="(batch, ...)")
    return x.reshape(x.shape[0], -1)


def upsample_nearest(x: Array, scale: int = 2) -> Array:
    """``nn.UpsamplingNearest2d`` as a function: each pixel repeated ``scale`` times."""
    check_input(x, "Upsample2D", ndim=4, layout="(batch, height, width, channels)")
    return jnp.repeat(jnp.repeat(x, scale, axis=1), scale, axis=2)


def pad2d(x: Array, padding: int | Sequence[int]) -> Array:
    """``nn.ZeroPad2d`` as a function: an int (all sides) or ``(left, right, top, bottom)``;
    negative amounts crop."""
    check_input(x, "Pad2D", ndim=4, layout="(batch, height, width, channels)")
    sides = (padding,) * 4 if isinstance(padding, int) else tuple(padding)
    if len(sides) != 4:
        raise ArgumentError(f"Pad2D padding must be an int or (left, right, top, bottom), got {padding!r}")
    left, right, top, bottom = sides
    if x.shape[1] + top + bottom <= 0 or x.shape[2] + left + right <= 0:
        raise ArgumentError(f"Pad2D({padding}) crops away all of an input of shape {tuple(x.shape)}")
    config = ((0, 0, 0), (top, bottom, 0), (left, right, 0), (0, 0, 0))
    return lax.pad(x, jnp.zeros((), x.dtype), config)


def batch_moments(x: Array, axis_name: str | None = None) -> tuple[Array, Array, Array]:
    """A batch's per-channel mean and biased variance, in float32 at least, and how many
    values each is over (across devices too, under ``axis_name``)."""
    axes = tuple(range(x.ndim - 1))
    xf = wide(x)
    mean = xf.mean(axes)
    mean_sq = (xf * xf).mean(axes)
    n = math.prod(x.shape[:-1])
    if axis_name is not None:
        mean, mean_sq = lax.pmean((mean, mean_sq), axis_name)
        n = n * lax.psum(1, axis_name)
    return mean, jnp.maximum(mean_sq - mean * mean, 0.0), n


def running_average(running: tuple[Array, Array], batch: tuple[Array, Array, Array],
                    momentum: float) -> tuple[Array, Array]:
    """PyTorch's update of BatchNorm's running ``(mean, var)`` from ``batch_moments``:
    ``(1 - momentum) * running + momentum * batch``, with the *unbiased* batch variance."""
    mean, var, n = batch
    unbiased = var * n / jnp.maximum(n - 1, 1)
    return ((1 - momentum) * running[0] + momentum * lax.stop_gradient(mean),
            (1 - momentum) * running[1] + momentum * lax.stop_gradient(unbiased))


def normalize(x: Array, mean: Array, var: Array, scale: Array, bias: Array, epsilon: float) -> Array:
    """BatchNorm's output: ``(x - mean) / sqrt(var + epsilon) * scale + bias`` per channel."""
    # One multiply-add per element with per-channel factors: the same value in the form
    # whose gradient XLA fuses into few passes over x (docs/performance.md, "BatchNorm").
    factor = lax.rsqrt(var + epsilon) * scale
    # in float32 at least, like add_bias: the gradients of scale and bias are sums
    return (wide(x) * factor + (bias - mean * factor)).astype(x.dtype)


# --- Layers -----------------------------------------------------------------------


class Dense(nn.Module):
    """``nn.Linear``: ``y = x @ kernel + bias`` over the last axis.

    ``in_features`` is optional (Flax infers it from the input) but, when given,
    is checked against the input so that a wrong shape fails with a clear message.
    """

    features: int
    in_features: int | None = None
    use_bias: bool = True

    def __post_init__(self):
        check_count(self.features, "features", "Dense")
        if self.in_features is not None:
            check_count(self.in_features, "in_features", "Dense")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: Array) -> Array:
        check_input(x, "Dense", min_ndim=1, layout="(..., features)", channels=self.in_features)
        n_in = x.shape[-1]
        kernel = self.param("kernel", kaiming_uniform(), (n_in, self.features))
        bias = self.param("bias", torch_bias_init(n_in), (self.features,)) if self.use_bias else None
        return affine(x, kernel, bias)


class Conv2D(nn.Module):
    """``nn.Conv2d`` on NHWC images with an HWIO kernel: ``lax.conv_general_dilated``
    (:func:`jaxdl.conv.conv2d`) plus a bias.

    ``padding`` may be an int, an ``(h, w)`` pair, explicit
    ``((top, bottom), (left, right))``, ``'SAME'`` or ``'VALID'``; PyTorch's default
    is 0, and so is this one's.
    """

    features: int
    kernel_size: int | Sequence[int] = 3
    strides: int | Sequence[int] = 1
    padding: conv_lib.Padding = 0
    dilation: int | Sequence[int] = 1
    in_channels: int | None = None
    use_bias: bool = True

    def __post_init__(self):
        check_count(self.features, "features", "Conv2D")
        if self.in_channels is not None:
            check_count(self.in_channels, "in_channels", "Conv2D")
        for name in ("kernel_size", "strides", "dilation"):
            try:
                conv_lib.pair(getattr(self, name), name, minimum=1)
            except ValueError as err:
                raise ArgumentError(f"Conv2D: {err}") from None
        check_padding(self.padding, "Conv2D")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: Array) -> Array:
        check_input(x, "Conv2D", ndim=4, layout="(batch, height, width, channels)",
                    channels=self.in_channels)
        kh, kw = conv_lib.pair(self.kernel_size, "kernel_size")
        shape = (kh, kw, x.shape[-1], self.features)
        kernel = self.param("kernel", kaiming_uniform(), shape)
        y = convolution(x, kernel, self.strides, self.padding, self.dilation)
        if self.use_bias:
            y = add_bias(y, self.param("bias", torch_bias_init(fan_in(shape)), (self.features,)))
        return y


def _check_pool_arguments(window, strides, padding, name: str) -> None:
    for arg, value in (("window", window), ("strides", strides)):
        if value is not None:
            try:
                conv_lib.pair(value, arg, minimum=1)
            except ValueError as err:
                raise ArgumentError(f"{name}: {err}") from None
    check_padding(padding, name)


def _pool(x: Array, init, op, window, strides, padding, name: str) -> Array:
    """``lax.reduce_window``: ``op`` over each window of height and width, for each image
    and channel, after padding with ``init`` (which loses every comparison or adds nothing)."""
    check_input(x, name, ndim=4, layout="(batch, height, width, channels)")
    wh, ww = conv_lib.pair(window, "window")
    sh, sw = conv_lib.pair(strides if strides is not None else window, "strides")
    (pt, pb), (pl, pr) = conv_lib.resolve_padding(padding, x.shape[1:3], (wh, ww), (sh, sw))
    h, w = x.shape[1] + pt + pb, x.shape[2] + pl + pr
    if h < wh or w < ww:
        raise ShapeError(f"{name}: a {wh}x{ww} window does not fit an input of {x.shape[1]}x{x.shape[2]} "
                         f"(padded to {h}x{w}); input shape {tuple(x.shape)}")
    fast = fastpath.faster_pool((wh, ww), (sh, sw))
    if fast is not None:  # the same pool by a faster route here (jaxdl.fastpath)
        return fast(x, init, op, (wh, ww), ((pt, pb), (pl, pr)))
    return lax.reduce_window(x, init, op, (1, wh, ww, 1), (1, sh, sw, 1), ((0, 0), (pt, pb), (pl, pr), (0, 0)))


class MaxPool2D(nn.Module):
    """``nn.MaxPool2d``: the largest value in each window (stride defaults to the window)."""

    window: int | Sequence[int] = 2
    strides: int | Sequence[int] | None = None
    padding: conv_lib.Padding = 0

    def __post_init__(self):
        _check_pool_arguments(self.window, self.strides, self.padding, "MaxPool2D")
        super().__post_init__()

    def __call__(self, x: Array) -> Array:
        return max_pool2d(x, self.window, self.strides, self.padding)


class AvgPool2D(nn.Module):
    """``nn.AvgPool2d``: the mean of each window; padded zeros count, as PyTorch's default."""

    window: int | Sequence[int] = 2
    strides: int | Sequence[int] | None = None
    padding: conv_lib.Padding = 0

    def __post_init__(self):
        _check_pool_arguments(self.window, self.strides, self.padding, "AvgPool2D")
        super().__post_init__()

    def __call__(self, x: Array) -> Array:
        return avg_pool2d(x, self.window, self.strides, self.padding)


class Dropout(nn.Module):
    """``nn.Dropout(p)``: in training, zero each element with probability ``rate`` and
    scale the rest by ``1 / (1 - rate)`` so the expected value is unchanged; in
    evaluation, the identity. Draws from the ``'dropout'`` PRNG stream, so
    ``model.apply(..., rngs={'dropout': key})`` decides the mask."""

    rate: float = 0.5

    def __post_init__(self):
        if not 0.0 <= self.rate < 1.0:
            raise ArgumentError(f"Dropout rate must be in [0, 1), got {self.rate}")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        if not train or self.rate == 0.0:
            return x
        keep = jax.random.bernoulli(self.make_rng("dropout"), 1.0 - self.rate, x.shape)
        return jnp.where(keep, x / (1.0 - self.rate), 0.0).astype(x.dtype)


class BatchNorm(nn.Module):
    """``nn.BatchNorm2d`` / ``BatchNorm1d``: normalise each channel (last axis).

    Training: normalise by the batch's mean and (biased) variance and update the
    running statistics in the ``batch_stats`` collection, PyTorch-style:
    ``running = (1 - momentum) * running + momentum * batch`` with the *unbiased*
    batch variance. Evaluation: normalise by the running statistics. Pass
    ``mutable=['batch_stats']`` to ``apply`` when training.

    ``axis_name`` averages the statistics across devices under ``jax.pmap``; under
    ``jax.jit`` with a sharded batch the mean is over the global batch already. The
    statistics are float32 whatever the input's type (mixed precision,
    :mod:`jaxdl.precision`); the output has the input's type.
    """

    momentum: float = 0.1
    epsilon: float = 1e-5
    axis_name: str | None = None

    def __post_init__(self):
        if not 0.0 <= self.momentum <= 1.0:
            raise ArgumentError(f"BatchNorm momentum must be in [0, 1], got {self.momentum}")
        if not self.epsilon > 0:
            raise ArgumentError(f"BatchNorm epsilon must be > 0, got {self.epsilon}")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        check_input(x, "BatchNorm", min_ndim=2, layout="(batch, ..., channels)")
        c = x.shape[-1]
        mean_var = self.variable("batch_stats", "mean", jnp.zeros, (c,), jnp.float32)
        var_var = self.variable("batch_stats", "var", jnp.ones, (c,), jnp.float32)
        scale = self.param("scale", nn.initializers.ones, (c,))
        bias = self.param("bias", nn.initializers.zeros, (c,))
        if train:
            moments = batch_moments(x, self.axis_name)
            mean, var, _ = moments
            if not self.is_initializing():
                mean_var.value, var_var.value = running_average((mean_var.value, var_var.value), moments,
                                                                self.momentum)
        else:
            mean, var = mean_var.value, var_var.value
        return normalize(x, mean, var, scale, bias, self.epsilon)


class Flatten(nn.Module):
    """``nn.Flatten``: keep the batch axis, flatten the rest into one feature axis.

    Note for readers of the PyTorch code: NHWC flattens in (H, W, C) order where
    PyTorch's NCHW flattens in (C, H, W) order; the number of features is the same.
    """

    def __call__(self, x: Array) -> Array:
        return flatten(x)


class Upsample2D(nn.Module):
    """``nn.UpsamplingNearest2d(scale_factor)``: repeat every pixel ``scale`` times along
    height and width (the "deconvolution" half of the course's autoencoder)."""

    scale: int = 2

    def __post_init__(self):
        check_count(self.scale, "scale", "Upsample2D")
        super().__post_init__()

    def __call__(self, x: Array) -> Array:
        return upsample_nearest(x, self.scale)


class Pad2D(nn.Module):
    """``nn.ZeroPad2d``: pad height and width with zeros; a negative amount crops.

    ``padding`` is an int (all four sides) or PyTorch's ``(left, right, top, bottom)``.
    ``Pad2D(2)`` turns 28x28 into 32x32 and ``Pad2D(-2)`` turns it back.
    """

    padding: int | Sequence[int] = 0

    def __call__(self, x: Array) -> Array:
        return pad2d(x, self.padding)
