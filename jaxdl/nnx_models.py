"""Every model of the course in Flax NNX, by its course name: the twins of :mod:`jaxdl.models`.

For a learner who starts with Flax NNX (what Flax's own documentation teaches first),
each course model is written here as NNX code reads -- an ``nnx.Module`` whose
``__init__`` takes the course's constructor arguments and ``rngs``, its layers the
attributes the course's PyTorch class names them (``block_1``, ``conv_block_1``,
``classifier``, ``layer_stack``), ``nnx.Sequential`` where the course writes
``nn.Sequential``::

    model = FashionMNISTModelV2(input_shape=1, hidden_units=10, output_shape=10, rngs=nnx.Rngs(0))
    logits = model(images)          # model.train() / model.eval() as in PyTorch

The layers are :mod:`jaxdl.nnx_layers` (``nnx.Linear``, ``nnx.Conv``, ``nnx.BatchNorm``
set up as PyTorch's) and ``nnx.Dropout``; the parameter-free steps are
:mod:`jaxdl.layers`' functions. Each twin has its Linen model's parameter count and
computes the same function: :func:`from_linen` copies a Linen model's variables into
it (and :func:`to_linen` back), and ``tests/test_nnx.py`` checks, for every model, the
same logits and the same parameters and BatchNorm statistics after an optimizer step.

Where the Linen model infers a layer's input size from the first batch, an NNX layer is
built with its size: the twins that flatten images take ``image_size`` (the course's
28 or 64) and compute what the course writes out by hand (``hidden_units * 7 * 7``).

Each class's ``linen_names`` says which Linen layer each of its layers is: the one
declared link between the two APIs, used by :func:`from_linen` and :func:`to_linen`. A
model whose ``Linear`` takes a flattened image map says so in ``flattened``: ``(layer
path, (height, width, channels))`` pairs, what :mod:`jaxdl.interop` needs to reorder
PyTorch's NCHW flattening.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar

import flax.linen as nn
import jax
from flax import nnx

from jaxdl import models
from jaxdl.conv import conv_output_size
from jaxdl.errors import ArgumentError, ArgumentTypeError, ShapeError
from jaxdl.layers import (
    check_input,
    flatten,
    max_pool2d,
    pad2d,
    relu,
    sigmoid,
    upsample_nearest,
)
from jaxdl.nnx_layers import BatchNorm, Conv, Linear

Array = jax.Array


def _pooled(size: int, convs: int, padding: int, pools: int = 1) -> int:
    """The side of an image after ``pools`` times (``convs`` 3x3 convolutions, a 2x2 max-pool)."""
    for _ in range(pools):
        for _ in range(convs):
            size = conv_output_size(size, 3, 1, padding)
        size //= 2
    return size


NOT_FLATTENED: tuple = ()
"""``flattened`` of a twin with no ``Linear`` after a flattened image map."""


def flattened_layers(model: nnx.Module) -> dict[str, tuple[int, int, int]]:
    """``{layer path: (height, width, channels)}`` of the ``Linear`` layers of ``model`` that
    take a flattened image map (its ``flattened``; none if it declares none)."""
    return dict(getattr(model, "flattened", NOT_FLATTENED))


def _at(prefix: str, indices: dict[int, str]) -> dict[str, str]:
    """``{f"{prefix}/layers/{i}": linen_name}``: the layers of an ``nnx.Sequential``."""
    return {f"{prefix}/layers/{i}": name for i, name in indices.items()}


class _LayoutNames:
    """``linen_names`` for a twin whose layers depend on its arguments: kept as pairs
    (Flax NNX keeps a module's plain attributes in its hashable graph definition)."""

    _linen_names: tuple[tuple[str, str], ...]

    @property
    def linen_names(self) -> dict[str, str]:
        return dict(self._linen_names)


# --- 01: PyTorch workflow -----------------------------------------------------------


class LinearRegressionModel(nnx.Module):
    """``weights * x + bias``, two ``nnx.Param`` scalars drawn from N(0, 1): the course's
    ``nn.Parameter(torch.randn(1))`` pair (chapter 01). Twin of
    :class:`jaxdl.models.LinearRegressionModel`."""

    linen_names: ClassVar[dict[str, str]] = {"weights": "weight", "bias": "bias"}

    def __init__(self, *, rngs: nnx.Rngs):
        self.weights = nnx.Param(jax.random.normal(rngs.params(), (1,)))
        self.bias = nnx.Param(jax.random.normal(rngs.params(), (1,)))

    def __call__(self, x: Array) -> Array:
        check_input(x, "LinearRegressionModel", min_ndim=1)
        return self.weights[...] * x + self.bias[...]


class LinearRegressionModelV2(nnx.Module):
    """``nn.Linear(in_features=1, out_features=1)`` as ``linear_layer`` (chapter 01)."""

    linen_names: ClassVar[dict[str, str]] = {"linear_layer": "Dense_0"}

    def __init__(self, *, rngs: nnx.Rngs):
        self.linear_layer = Linear(1, 1, rngs=rngs)

    def __call__(self, x: Array) -> Array:
        return self.linear_layer(x)


# --- 02: classification -------------------------------------------------------------


class CircleModelV0(nnx.Module):
    """``layer_1: Linear(2, 5) -> layer_2: Linear(5, 1)``, no activation (chapter 02)."""

    linen_names: ClassVar[dict[str, str]] = {"layer_1": "Dense_0", "layer_2": "Dense_1"}

    def __init__(self, *, rngs: nnx.Rngs):
        self.layer_1 = Linear(2, 5, rngs=rngs)
        self.layer_2 = Linear(5, 1, rngs=rngs)

    def __call__(self, x: Array) -> Array:
        return self.layer_2(self.layer_1(x))


class CircleModelV1(nnx.Module):
    """``layer_1 -> layer_2 -> layer_3``: ``Linear(2, 10, 10, 1)``, no activation (chapter 02)."""

    linen_names: ClassVar[dict[str, str]] = {"layer_1": "Dense_0", "layer_2": "Dense_1", "layer_3": "Dense_2"}

    def __init__(self, *, rngs: nnx.Rngs):
        self.layer_1 = Linear(2, 10, rngs=rngs)
        self.layer_2 = Linear(10, 10, rngs=rngs)
        self.layer_3 = Linear(10, 1, rngs=rngs)

    def __call__(self, x: Array) -> Array:
        return self.layer_3(self.layer_2(self.layer_1(x)))


class CircleModelV2(CircleModelV1):
    """``CircleModelV1`` with a ReLU between the layers (chapter 02, "non-linearity")."""

    def __call__(self, x: Array) -> Array:
        return self.layer_3(relu(self.layer_2(relu(self.layer_1(x)))))


class BlobModel(nnx.Module):
    """``linear_layer_stack``: ``Linear -> ReLU -> Linear -> ReLU -> Linear`` (chapter 02)."""

    linen_names: ClassVar[dict[str, str]] = _at("linear_layer_stack", {0: "Dense_0", 2: "Dense_1", 4: "Dense_2"})

    def __init__(self, input_features: int, output_features: int, hidden_units: int = 8, *, rngs: nnx.Rngs):
        self.linear_layer_stack = nnx.Sequential(
            Linear(input_features, hidden_units, rngs=rngs), relu,
            Linear(hidden_units, hidden_units, rngs=rngs), relu,
            Linear(hidden_units, output_features, rngs=rngs),
        )

    def __call__(self, x: Array) -> Array:
        return self.linear_layer_stack(x)


# --- 03: computer vision ------------------------------------------------------------


class FashionMNISTModelV0(nnx.Module):
    """``layer_stack``: ``Flatten -> Linear(input_shape, hidden) -> Linear(hidden, out)``
    (chapter 03's baseline). ``input_shape`` is the number of flattened features (784)."""

    linen_names: ClassVar[dict[str, str]] = _at("layer_stack", {1: "Dense_0", 2: "Dense_1"})

    def __init__(self, input_shape: int, hidden_units: int, output_shape: int, *, rngs: nnx.Rngs):
        self.layer_stack = nnx.Sequential(
            flatten,
            Linear(input_shape, hidden_units, rngs=rngs),
            Linear(hidden_units, output_shape, rngs=rngs),
        )

    def __call__(self, x: Array) -> Array:
        return self.layer_stack(x)


class FashionMNISTModelV1(nnx.Module):
    """``layer_stack``: ``Flatten -> Linear -> ReLU -> Linear -> ReLU`` (chapter 03; it ends
    in a ReLU, as the course's does)."""

    linen_names: ClassVar[dict[str, str]] = _at("layer_stack", {1: "Dense_0", 3: "Dense_1"})

    def __init__(self, input_shape: int, hidden_units: int, output_shape: int, *, rngs: nnx.Rngs):
        self.layer_stack = nnx.Sequential(
            flatten,
            Linear(input_shape, hidden_units, rngs=rngs), relu,
            Linear(hidden_units, output_shape, rngs=rngs), relu,
        )

    def __call__(self, x: Array) -> Array:
        return self.layer_stack(x)


def vgg_block(in_channels: int, hidden_units: int, padding: int, *, rngs: nnx.Rngs) -> nnx.Sequential:
    """``Conv3x3 -> ReLU -> Conv3x3 -> ReLU -> MaxPool2d(2)``: the course's
    ``conv_block_1`` / ``block_1``, an ``nnx.Sequential`` as its is an ``nn.Sequential``."""
    return nnx.Sequential(
        Conv(in_channels, hidden_units, 3, padding=padding, rngs=rngs), relu,
        Conv(hidden_units, hidden_units, 3, padding=padding, rngs=rngs), relu,
        functools.partial(max_pool2d, window=2),
    )


def _vgg_names(block: str, linen_block: str) -> dict[str, str]:
    return _at(block, {0: f"{linen_block}/Conv2D_0", 2: f"{linen_block}/Conv2D_1"})


class FashionMNISTModelV2(nnx.Module):
    """TinyVGG for 28x28 images (chapter 03): ``block_1``, ``block_2`` (padding 1,
    28 -> 14 -> 7), ``classifier: Flatten -> Linear(hidden * 7 * 7, out)``.
    ``input_shape`` is the number of input channels."""

    linen_names: ClassVar[dict[str, str]] = {**_vgg_names("block_1", "VGGBlock_0"),
                                             **_vgg_names("block_2", "VGGBlock_1"),
                                             **_at("classifier", {1: "Dense_0"})}

    def __init__(self, input_shape: int, hidden_units: int, output_shape: int, *, image_size: int = 28,
                 rngs: nnx.Rngs):
        self.block_1 = vgg_block(input_shape, hidden_units, 1, rngs=rngs)
        self.block_2 = vgg_block(hidden_units, hidden_units, 1, rngs=rngs)
        side = _pooled(image_size, 2, 1, pools=2)
        self.classifier = nnx.Sequential(flatten, Linear(hidden_units * side * side, output_shape, rngs=rngs))
        self.flattened = (("classifier/layers/1", (side, side, hidden_units)),)

    def __call__(self, x: Array) -> Array:
        return self.classifier(self.block_2(self.block_1(x)))


class TinyVGG(nnx.Module):
    """TinyVGG of chapter 04: ``conv_block_1``, ``conv_block_2`` (padding 0,
    64 -> 62 -> 60 -> 30 -> 28 -> 26 -> 13), ``classifier: Flatten -> Linear(hidden * 13 * 13,
    out)``; 8,083 parameters with the course's arguments."""

    linen_names: ClassVar[dict[str, str]] = {**_vgg_names("conv_block_1", "VGGBlock_0"),
                                             **_vgg_names("conv_block_2", "VGGBlock_1"),
                                             **_at("classifier", {1: "Dense_0"})}

    def __init__(self, input_shape: int = 3, hidden_units: int = 10, output_shape: int = 3, *,
                 image_size: int = 64, rngs: nnx.Rngs):
        self.conv_block_1 = vgg_block(input_shape, hidden_units, 0, rngs=rngs)
        self.conv_block_2 = vgg_block(hidden_units, hidden_units, 0, rngs=rngs)
        side = _pooled(image_size, 2, 0, pools=2)
        self.classifier = nnx.Sequential(flatten, Linear(hidden_units * side * side, output_shape, rngs=rngs))
        self.flattened = (("classifier/layers/1", (side, side, hidden_units)),)

    def __call__(self, x: Array) -> Array:
        return self.classifier(self.conv_block_2(self.conv_block_1(x)))


class FashionCNN(nnx.Module):
    """``features``: three 3x3 stride-2 convolutions with ReLU (28 -> 13 -> 6 -> 2), then
    ``classifier: Dropout -> Linear(512) -> ReLU -> Dropout -> Linear(num_classes)``."""

    linen_names: ClassVar[dict[str, str]] = {
        **_at("features", {0: "Conv2D_0", 2: "Conv2D_1", 4: "Conv2D_2"}),
        **_at("classifier", {1: "Dense_0", 4: "Dense_1"})}

    def __init__(self, num_classes: int = 10, in_channels: int = 1, dropout: float = 0.2, *,
                 image_size: int = 28, rngs: nnx.Rngs):
        self.features = nnx.Sequential(
            Conv(in_channels, 32, 3, 2, rngs=rngs), relu,
            Conv(32, 64, 3, 2, rngs=rngs), relu,
            Conv(64, 128, 3, 2, rngs=rngs), relu,
            flatten,
        )
        side = image_size
        for _ in range(3):
            side = conv_output_size(side, 3, 2)
        self.classifier = nnx.Sequential(
            nnx.Dropout(dropout, rngs=rngs), Linear(128 * side * side, 512, rngs=rngs), relu,
            nnx.Dropout(dropout, rngs=rngs), Linear(512, num_classes, rngs=rngs),
        )
        self.flattened = (("classifier/layers/1", (side, side, 128)),)

    def __call__(self, x: Array) -> Array:
        return self.classifier(self.features(x))


class MNISTBatchNormCNN(nnx.Module):
    """``features``: six ``[Conv3x3 -> BatchNorm -> ReLU]`` (32, 32, 32, 64, 64, 64
    channels) with a 2x2 max-pool after the third and the sixth, then ``classifier:
    Linear(10)``; padding 0 as the lesson writes it (114,314 parameters), or 1."""

    linen_names: ClassVar[dict[str, str]]  # set below the class, from its layout

    WIDTHS = (32, 32, 32, 64, 64, 64)

    def __init__(self, num_classes: int = 10, in_channels: int = 1, padding: int = 0, *,
                 image_size: int = 28, rngs: nnx.Rngs):
        layers: list[Any] = []
        channels = in_channels
        for i, width in enumerate(self.WIDTHS):
            layers += [Conv(channels, width, 3, padding=padding, rngs=rngs), BatchNorm(width, rngs=rngs), relu]
            channels = width
            if i in (2, 5):
                layers.append(functools.partial(max_pool2d, window=2))
        self.features = nnx.Sequential(*layers, flatten)
        side = _pooled(image_size, 3, padding, pools=2)
        self.classifier = Linear(channels * side * side, num_classes, rngs=rngs)
        self.flattened = (("classifier", (side, side, channels)),)

    def __call__(self, x: Array) -> Array:
        return self.classifier(self.features(x))


def _batchnorm_cnn_names() -> dict[str, str]:
    names, index = {}, 0
    for i in range(len(MNISTBatchNormCNN.WIDTHS)):
        names.update(_at("features", {index: f"Conv2D_{i}", index + 1: f"BatchNorm_{i}"}))
        index += 3 + (i in (2, 5))
    return {**names, "classifier": "Dense_0"}


MNISTBatchNormCNN.linen_names = _batchnorm_cnn_names()


def mlp_head(in_features: int, hidden_units: int, num_classes: int, use_relu: bool = True, *,
             rngs: nnx.Rngs) -> tuple[nnx.Sequential, dict[int, str]]:
    """``Flatten -> Linear(hidden) -> [ReLU] -> Linear(hidden) -> [ReLU] -> Linear(classes)``,
    and which of its layers is which ``Dense`` of Linen's ``MLPHead``."""
    act = (relu,) if use_relu else ()
    head = nnx.Sequential(
        flatten,
        Linear(in_features, hidden_units, rngs=rngs), *act,
        Linear(hidden_units, hidden_units, rngs=rngs), *act,
        Linear(hidden_units, num_classes, rngs=rngs),
    )
    step = 2 if use_relu else 1
    return head, {1: "MLPHead_0/Dense_0", 1 + step: "MLPHead_0/Dense_1", 1 + 2 * step: "MLPHead_0/Dense_2"}


class MNISTMLP(_LayoutNames, nnx.Module):
    """The MNIST multi-layer perceptron 784 -> 600 -> 600 -> 10 (837,610 parameters),
    without (``relu=False``) or with ReLU between the layers, as ``mlp``."""

    def __init__(self, relu: bool = True, hidden_units: int = 600, num_classes: int = 10, *,
                 image_size: int = 28, in_channels: int = 1, rngs: nnx.Rngs):
        self.mlp, layers = mlp_head(image_size * image_size * in_channels, hidden_units, num_classes, relu, rngs=rngs)
        self._linen_names = tuple(_at("mlp", layers).items())
        self.flattened = (("mlp/layers/1", (image_size, image_size, in_channels)),)

    def __call__(self, x: Array) -> Array:
        check_input(x, "MNISTMLP", ndim=4, layout="(batch, height, width, channels)")
        return self.mlp(x)


class MNISTOneConv(_LayoutNames, nnx.Module):
    """``conv``: one 7x7 convolution to 10 channels (28 -> 22), then ``head``, the MLP;
    no ReLU after the convolution unless ``conv_relu=True`` (as the lesson speaks it).
    ``second_conv=True`` adds ``conv_2``, a 2x2 convolution to 55 channels (22 -> 21)."""

    def __init__(self, hidden_units: int = 600, num_classes: int = 10, in_channels: int = 1,
                 second_conv: bool = False, conv_relu: bool = False, *, image_size: int = 28, rngs: nnx.Rngs):
        self.conv_relu = conv_relu
        self.conv = Conv(in_channels, 10, 7, rngs=rngs)
        side, channels = conv_output_size(image_size, 7), 10
        self.conv_2 = Conv(10, 55, 2, rngs=rngs) if second_conv else None
        if second_conv:
            side, channels = conv_output_size(side, 2), 55
        self.head, layers = mlp_head(channels * side * side, hidden_units, num_classes, rngs=rngs)
        self.flattened = (("head/layers/1", (side, side, channels)),)
        self._linen_names = (("conv", "Conv2D_0"), *((("conv_2", "Conv2D_1"),) if second_conv else ()),
                             *_at("head", layers).items())

    def __call__(self, x: Array) -> Array:
        act = relu if self.conv_relu else (lambda h: h)
        x = act(self.conv(x))
        if self.conv_2 is not None:
            x = act(self.conv_2(x))
        return self.head(x)


class MNISTTwoConv(MNISTOneConv):
    """``MNISTOneConv`` with its second convolution (``conv_2``, 10 -> 55 channels, 2x2)."""

    def __init__(self, hidden_units: int = 600, num_classes: int = 10, in_channels: int = 1,
                 second_conv: bool = True, conv_relu: bool = False, *, image_size: int = 28, rngs: nnx.Rngs):
        super().__init__(hidden_units, num_classes, in_channels, second_conv, conv_relu, image_size=image_size,
                         rngs=rngs)


# --- Lesson 15: convolutions and the autoencoder -------------------------------------


class SimpleCNN(nnx.Module):
    """Lesson 15's ``simple_cnn`` as ``convs``: five 3x3 stride-2 convolutions with padding 1,
    1 -> 4 -> 8 -> 16 -> 16 -> 10 channels, ReLU after all but the last, then Flatten
    (5,274 parameters)."""

    linen_names: ClassVar[dict[str, str]] = _at("convs", {2 * i: f"Conv2D_{i}" for i in range(5)})

    def __init__(self, in_channels: int = 1, num_classes: int = 10, *, rngs: nnx.Rngs):
        widths = (in_channels, 4, 8, 16, 16, num_classes)
        layers: list[Any] = []
        for i in range(5):
            layers.append(Conv(widths[i], widths[i + 1], 3, 2, padding=1, rngs=rngs))
            layers.append(relu if i < 4 else flatten)
        self.convs = nnx.Sequential(*layers)

    def __call__(self, x: Array) -> Array:
        return self.convs(x)


class ConvAutoencoder(_LayoutNames, nnx.Module):
    """Lesson 15's convolutional autoencoder: ``encoder`` (pad 28 -> 32, three 3x3 stride-2
    convolutions with ReLU, 1 -> 2 -> 4 -> 8 channels: a 4x4x8 code) and ``decoder`` (three
    nearest-upsample + 3x3 convolution steps back to 32, crop to 28, sigmoid)."""

    def __init__(self, in_channels: int = 1, channels: tuple[int, ...] = (2, 4, 8), *, rngs: nnx.Rngs):
        encoder: list[Any] = [functools.partial(pad2d, padding=2)]
        for c_in, c_out in zip((in_channels, *channels[:-1]), channels):
            encoder += [Conv(c_in, c_out, 3, 2, padding=1, rngs=rngs), relu]
        decoder: list[Any] = []
        widths = (*channels[::-1], in_channels)
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):
            decoder += [functools.partial(upsample_nearest, scale=2), Conv(c_in, c_out, 3, padding=1, rngs=rngs)]
            if i < len(widths) - 2:
                decoder.append(relu)
        self.encoder = nnx.Sequential(*encoder)
        self.decoder = nnx.Sequential(*decoder, functools.partial(pad2d, padding=-2), sigmoid)
        self._linen_names = (
            *_at("encoder", {1 + 2 * i: f"encoder_convs_{i}" for i in range(len(channels))}).items(),
            *_at("decoder", {1 + 3 * i: f"decoder_convs_{i}" for i in range(len(channels))}).items())

    def encode(self, x: Array) -> Array:
        """Images ``(N, 28, 28, C)`` -> codes ``(N, 4, 4, 8)``."""
        return self.encoder(x)

    def decode(self, code: Array) -> Array:
        """Codes ``(N, 4, 4, 8)`` -> images ``(N, 28, 28, C)`` in [0, 1]."""
        return self.decoder(code)

    def __call__(self, x: Array) -> Array:
        return self.decode(self.encode(x))


# --- beyond the course ------------------------------------------------------------


class CompactVGG(_LayoutNames, nnx.Module):
    """jaxdl's "best" model for 28x28 images (:class:`jaxdl.models.CompactVGG`) in NNX:
    ``features`` (stages of ``[Conv3x3 -> BatchNorm -> ReLU] x 2 -> MaxPool 2``) and
    ``classifier`` (``Dropout -> Linear(hidden) -> ReLU -> Dropout -> Linear(classes)``)."""

    def __init__(self, widths: tuple[int, ...] = (32, 64), hidden: int = 128, num_classes: int = 10,
                 dropout: float = 0.3, *, in_channels: int = 1, image_size: int = 28, rngs: nnx.Rngs):
        layers: list[Any] = []
        names: dict[int, str] = {}
        channels = in_channels
        for width in widths:
            for _ in range(2):
                n = len(names) // 2
                names.update({len(layers): f"Conv2D_{n}", len(layers) + 1: f"BatchNorm_{n}"})
                layers += [Conv(channels, width, 3, padding=1, use_bias=False, rngs=rngs),
                           BatchNorm(width, rngs=rngs), relu]
                channels = width
            layers.append(functools.partial(max_pool2d, window=2))
        self.features = nnx.Sequential(*layers, flatten)
        side = image_size // 2 ** len(widths)
        self.classifier = nnx.Sequential(
            nnx.Dropout(dropout, rngs=rngs), Linear(channels * side * side, hidden, rngs=rngs), relu,
            nnx.Dropout(dropout, rngs=rngs), Linear(hidden, num_classes, rngs=rngs),
        )
        self.flattened = (("classifier/layers/1", (side, side, channels)),)
        self._linen_names = (*_at("features", names).items(),
                             *_at("classifier", {1: "Dense_0", 4: "Dense_1"}).items())

    def __call__(self, x: Array) -> Array:
        check_input(x, "CompactVGG", ndim=4, layout="(batch, height, width, channels)")
        return self.classifier(self.features(x))


NNX_MODELS: dict[str, Callable[..., nnx.Module]] = {
    "LinearRegressionModel": LinearRegressionModel,
    "LinearRegressionModelV2": LinearRegressionModelV2,
    "CircleModelV0": CircleModelV0,
    "CircleModelV1": CircleModelV1,
    "CircleModelV2": CircleModelV2,
    "BlobModel": functools.partial(BlobModel, 2, 4),
    "FashionMNISTModelV0": functools.partial(FashionMNISTModelV0, 784, 10, 10),
    "FashionMNISTModelV1": functools.partial(FashionMNISTModelV1, 784, 10, 10),
    "FashionMNISTModelV2": functools.partial(FashionMNISTModelV2, 1, 10, 10),
    "TinyVGG": functools.partial(TinyVGG, 3, 10, 3),
    "FashionCNN": FashionCNN,
    "MNISTBatchNormCNN": MNISTBatchNormCNN,
    "MNISTMLP": MNISTMLP,
    "MNISTOneConv": MNISTOneConv,
    "MNISTTwoConv": MNISTTwoConv,
    "SimpleCNN": SimpleCNN,
    "ConvAutoencoder": ConvAutoencoder,
}
"""Every course model's NNX twin, built with the course's arguments as
:data:`jaxdl.models.COURSE_MODELS` builds the Linen one: ``NNX_MODELS[name](rngs=rngs)``."""


# --- between the twins --------------------------------------------------------------

_COLLECTIONS = (("params", nnx.Param), ("batch_stats", nnx.BatchStat))


def _check_twin(model) -> None:
    if isinstance(model, nn.Module):
        raise ArgumentTypeError(f"expected a Flax NNX model (an nnx.Module) here, got the Linen module "
                                f"{type(model).__name__}; build its NNX twin from jaxdl.nnx_models")
    if not isinstance(model, nnx.Module) or not isinstance(getattr(model, "linen_names", None), dict):
        raise ArgumentTypeError(f"expected one of jaxdl.nnx_models' course models (whose linen_names name "
                                f"its Linen twin's layers), got {type(model).__name__}")


def _path(keys) -> tuple[str, ...]:
    return tuple(str(k) for k in keys)


def _linen_path(model, path: tuple[str, ...]) -> tuple[str, ...]:
    """The Linen name of the NNX variable at ``path``, by the longest prefix ``linen_names`` maps."""
    for cut in range(len(path), 0, -1):
        linen = model.linen_names.get("/".join(path[:cut]))
        if linen is not None:
            return (*linen.split("/"), *path[cut:])
    raise ArgumentError(f"{type(model).__name__}.linen_names does not name the layer of {'/'.join(path)}")


def _flat(tree, prefix=()) -> dict[tuple[str, ...], Any]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flat(value, (*prefix, str(key))))
        else:
            flat[(*prefix, str(key))] = value
    return flat


def to_linen(model: nnx.Module) -> dict[str, Any]:
    """The variables of ``model``'s Linen twin (``{"params": ..., "batch_stats": ...}``), taken
    from ``model``: ``LinenTwin().apply(to_linen(model), x)`` computes ``model(x)``."""
    _check_twin(model)
    variables: dict[str, Any] = {}
    for collection, kind in _COLLECTIONS:
        flat = jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(nnx.state(model, kind)))[0]
        for keys, value in flat:
            node = variables.setdefault(collection, {})
            *parents, leaf = _linen_path(model, _path(k.key for k in keys))
            for name in parents:
                node = node.setdefault(name, {})
            node[leaf] = value
    return variables


def from_linen(model: nnx.Module, variables) -> nnx.Module:
    """Copy a Linen twin's ``variables`` (what ``LinenTwin().init`` or a jaxdl train state
    holds) into ``model``, in place, and return it. Every variable must fit: one the
    Linen twin lacks, has in excess or shapes otherwise is refused, and nothing is copied."""
    _check_twin(model)
    have = {(collection, *path): value for collection in ("params", "batch_stats")
            for path, value in _flat(dict(variables.get(collection, {}))).items()}
    wanted, updates = set(), []
    problems = []
    for collection, kind in _COLLECTIONS:
        state = nnx.state(model, kind)
        flat = jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(state))[0]
        pure: dict = nnx.to_pure_dict(state)
        for keys, value in flat:
            nnx_path = tuple(k.key for k in keys)
            name = (collection, *_linen_path(model, _path(nnx_path)))
            wanted.add(name)
            if name not in have:
                problems.append(f"missing {'/'.join(name)}")
                continue
            if tuple(have[name].shape) != tuple(value.shape):
                problems.append(f"{'/'.join(name)} has shape {tuple(have[name].shape)}, "
                                f"{type(model).__name__} needs {tuple(value.shape)}")
                continue
            node = pure
            for key in nnx_path[:-1]:
                node = node[key]
            node[nnx_path[-1]] = jax.numpy.array(have[name], value.dtype)  # a copy: training donates its buffers
        updates.append((state, pure))
    problems += [f"unexpected {'/'.join(name)}" for name in sorted(set(have) - wanted)]
    if problems:
        raise ShapeError(f"these variables do not fit {type(model).__name__}: " + "; ".join(problems))
    for state, pure in updates:
        nnx.replace_by_pure_dict(state, pure)
        nnx.update(model, state)
    return model


def count_params(model: nnx.Module) -> int:
    """Number of trainable parameters (``nnx.Param``) of an NNX model, as PyTorch's
    ``sum(p.numel() for p in model.parameters())`` counts them."""
    return models.count_params(nnx.to_pure_dict(nnx.state(model, nnx.Param)))


__all__ = [
    "BlobModel", "CircleModelV0", "CircleModelV1", "CircleModelV2", "CompactVGG", "ConvAutoencoder", "FashionCNN",
    "FashionMNISTModelV0", "FashionMNISTModelV1", "FashionMNISTModelV2", "LinearRegressionModel",
    "LinearRegressionModelV2", "MNISTBatchNormCNN", "MNISTMLP", "MNISTOneConv", "MNISTTwoConv", "NNX_MODELS",
    "SimpleCNN", "TinyVGG", "count_params", "flattened_layers", "from_linen", "mlp_head", "to_linen",
    "vgg_block",
]
