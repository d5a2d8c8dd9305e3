"""Every model of the course, by its course name, built from :mod:`jaxdl.layers`.

Each model is a Flax Linen module: ``model.init(key, x)`` returns its variables and
``model.apply(variables, x, train=...)`` runs it, both pure functions. Every model
takes ``train`` (ignored by models without Dropout or BatchNorm) so that one
training loop can drive them all. Flattened sizes follow from the input shape,
never hard-coded, so a model works on any image size its layers allow.

Chapter by chapter:

* 01 workflow: :class:`LinearRegressionModel`, :class:`LinearRegressionModelV2`
* 02 classification: :class:`CircleModelV0`, :class:`CircleModelV1`,
  :class:`CircleModelV2`, :class:`BlobModel`
* 03 computer vision: :class:`FashionMNISTModelV0`, :class:`FashionMNISTModelV1`,
  :class:`FashionMNISTModelV2`, plus the CNNs :class:`FashionCNN`,
  :class:`MNISTBatchNormCNN`, :class:`MNISTMLP`, :class:`MNISTOneConv`,
  :class:`MNISTTwoConv`
* 04 custom datasets: :class:`TinyVGG`
* Lesson 15 (convolutions, autoencoder): :class:`SimpleCNN`, :class:`ConvAutoencoder`
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax

from jaxdl.errors import ShapeError
from jaxdl.layers import (
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPool2D,
    Pad2D,
    Upsample2D,
    check_input,
    relu,
    sigmoid,
)

Array = jax.Array


# --- 01: PyTorch workflow -----------------------------------------------------------


class LinearRegressionModel(nn.Module):
    """``weight * x + bias`` with two explicit scalar parameters drawn from N(0, 1).

    Course chapter 01 ("PyTorch workflow"): the model subclasses ``nn.Module`` and
    makes ``weight`` and ``bias`` ``nn.Parameter(torch.randn(1))``. Input: any shape,
    typically ``(N, 1)``; output: the same shape.
    """

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        check_input(x, "LinearRegressionModel", min_ndim=1)
        weight = self.param("weight", jax.random.normal, (1,))
        bias = self.param("bias", jax.random.normal, (1,))
        return weight * x + bias


class LinearRegressionModelV2(nn.Module):
    """One ``Dense(1 -> 1)`` layer, the course's ``nn.Linear(in_features=1, out_features=1)``.

    Course chapter 01. Input ``(N, 1)``, output ``(N, 1)``.
    """

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        return Dense(1, in_features=1)(x)


# --- 02: classification -------------------------------------------------------------


class CircleModelV0(nn.Module):
    """``Dense(2 -> 5) -> Dense(5 -> 1)``, no activation: a straight-line classifier.

    Course chapter 02, fit to the two circles; it cannot separate them (about 50%).
    Input ``(N, 2)`` points, output ``(N, 1)`` logits.
    """

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        x = Dense(5, in_features=2)(x)
        return Dense(1)(x)


class CircleModelV1(nn.Module):
    """``Dense(2 -> 10 -> 10 -> 1)``, no activation: bigger, still linear (still ~50%).

    Course chapter 02. Input ``(N, 2)``, output ``(N, 1)`` logits.
    """

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        x = Dense(10, in_features=2)(x)
        x = Dense(10)(x)
        return Dense(1)(x)


class CircleModelV2(nn.Module):
    """``CircleModelV1`` with ReLU between the layers: non-linear, it separates the circles.

    Course chapter 02 ("the missing piece: non-linearity"). Input ``(N, 2)``, output
    ``(N, 1)`` logits.
    """

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        x = relu(Dense(10, in_features=2)(x))
        x = relu(Dense(10)(x))
        return Dense(1)(x)


class BlobModel(nn.Module):
    """Multi-class classifier of chapter 02: ``Dense -> ReLU -> Dense -> ReLU -> Dense``.

    Input ``(N, input_features)``, output ``(N, output_features)`` logits.
    """

    input_features: int
    output_features: int
    hidden_units: int = 8

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        x = relu(Dense(self.hidden_units, in_features=self.input_features)(x))
        x = relu(Dense(self.hidden_units)(x))
        return Dense(self.output_features)(x)


# --- 03: computer vision ------------------------------------------------------------


def _check_flat_features(x: Array, features: int, model: str) -> None:
    """An MLP on images needs ``features`` values per example once flattened."""
    if x.ndim < 2 or math.prod(x.shape[1:]) != features:
        raise ShapeError(
            f"{model} expects examples of {features} values in all (e.g. shape (N, 28, 28, 1) "
            f"for 784), got shape {tuple(x.shape)}"
        )


class FashionMNISTModelV0(nn.Module):
    """Chapter 03's baseline: ``Flatten -> Dense(hidden) -> Dense(out)``, no non-linearity.

    ``input_shape`` is the number of flattened features (784 for 28x28x1).
    Input ``(N, 28, 28, 1)`` images, output ``(N, output_shape)`` logits.
    """

    input_shape: int
    hidden_units: int
    output_shape: int

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        _check_flat_features(x, self.input_shape, "FashionMNISTModelV0")
        x = Flatten()(x)
        x = Dense(self.hidden_units, in_features=self.input_shape)(x)
        return Dense(self.output_shape)(x)


class FashionMNISTModelV1(nn.Module):
    """Chapter 03: ``Flatten -> Dense -> ReLU -> Dense -> ReLU`` (ends in a ReLU, as the
    course's does, which is why it trains worse than V0).

    Input ``(N, 28, 28, 1)``, output ``(N, output_shape)`` non-negative logits.
    """

    input_shape: int
    hidden_units: int
    output_shape: int

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        _check_flat_features(x, self.input_shape, "FashionMNISTModelV1")
        x = Flatten()(x)
        x = relu(Dense(self.hidden_units, in_features=self.input_shape)(x))
        return relu(Dense(self.output_shape)(x))


class VGGBlock(nn.Module):
    """``[Conv3x3 -> ReLU] x 2 -> MaxPool 2``: the repeated block of TinyVGG."""

    features: int
    padding: int
    in_channels: int | None = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        x = relu(Conv2D(self.features, 3, padding=self.padding, in_channels=self.in_channels)(x))
        x = relu(Conv2D(self.features, 3, padding=self.padding)(x))
        return MaxPool2D(2)(x)


class FashionMNISTModelV2(nn.Module):
    """TinyVGG for 28x28 images (chapter 03): two ``VGGBlock``s with padding 1
    (28 -> 14 -> 7), then ``Flatten -> Dense(hidden * 7 * 7 -> out)``.

    ``input_shape`` is the number of input channels (1 for Fashion-MNIST).
    Input ``(N, 28, 28, 1)``, output ``(N, output_shape)`` logits.
    """

    input_shape: int
    hidden_units: int
    output_shape: int

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        x = VGGBlock(self.hidden_units, padding=1, in_channels=self.input_shape)(x)
        x = VGGBlock(self.hidden_units, padding=1)(x)
        return Dense(self.output_shape)(Flatten()(x))


class TinyVGG(nn.Module):
    """TinyVGG of chapter 04 (custom datasets), after the CNN Explainer website.

    Two ``VGGBlock``s with padding 0 (64 -> 62 -> 60 -> 30 -> 28 -> 26 -> 13), then
    ``Flatten -> Dense(hidden * 13 * 13 -> out)``. With 3 input channels, 10 hidden
    units and 3 classes it has 8,083 parameters ("just over 8,000").
    Input ``(N, 64, 64, 3)`` RGB images, output ``(N, output_shape)`` logits.
    """

    input_shape: int = 3
    hidden_units: int = 10
    output_shape: int = 3

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        x = VGGBlock(self.hidden_units, padding=0, in_channels=self.input_shape)(x)
        x = VGGBlock(self.hidden_units, padding=0)(x)
        return Dense(self.output_shape)(Flatten()(x))


class FashionCNN(nn.Module):
    """A deeper Fashion-MNIST CNN: three 3x3 stride-2 convolutions 1 -> 32 -> 64 -> 128
    with ReLU (28 -> 13 -> 6 -> 2), then ``Dropout(0.2) -> Dense(512) -> ReLU ->
    Dropout(0.2) -> Dense(num_classes)``.

    Input ``(N, 28, 28, 1)``, output ``(N, num_classes)`` logits.
    """

    num_classes: int = 10
    in_channels: int = 1
    dropout: float = 0.2

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        x = relu(Conv2D(32, 3, strides=2, in_channels=self.in_channels)(x))
        x = relu(Conv2D(64, 3, strides=2)(x))
        x = relu(Conv2D(128, 3, strides=2)(x))
        x = Dropout(self.dropout)(Flatten()(x), train)
        x = Dropout(self.dropout)(relu(Dense(512)(x)), train)
        return Dense(self.num_classes)(x)


class MNISTBatchNormCNN(nn.Module):
    """MNIST CNN with batch normalisation, as the lesson writes it: six ``[Conv3x3 ->
    BatchNorm -> ReLU]`` with 32, 32, 32, 64, 64, 64 channels, a 2x2 max-pool after the
    third and the sixth, then ``Flatten -> Dense(10)``. The lesson's ``nn.Conv2d(1, 32, 3)``
    has PyTorch's default padding 0, so each convolution takes two pixels off
    (28 -> 26 -> 24 -> 22, pool 11 -> 9 -> 7 -> 5, pool 2) and the ``Dense`` layer sees a
    2x2x64 map: 114,314 parameters. ``padding=1`` keeps the size inside a stage
    (28 -> 14 -> 7; 143,114 parameters). Input ``(N, 28, 28, 1)``, output
    ``(N, num_classes)`` logits.
    """

    num_classes: int = 10
    in_channels: int = 1
    padding: int = 0

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        channels = self.in_channels
        for i, features in enumerate((32, 32, 32, 64, 64, 64)):
            x = Conv2D(features, 3, padding=self.padding, in_channels=channels)(x)
            x = relu(BatchNorm()(x, train))
            channels = features
            if i in (2, 5):
                x = MaxPool2D(2)(x)
        return Dense(self.num_classes)(Flatten()(x))


class MLPHead(nn.Module):
    """``Dense(600) -> [ReLU] -> Dense(600) -> [ReLU] -> Dense(10)``: the MNIST MLP's layers."""

    hidden_units: int = 600
    num_classes: int = 10
    relu: bool = True

    @nn.compact
    def __call__(self, x: Array) -> Array:
        act = relu if self.relu else (lambda h: h)
        x = act(Dense(self.hidden_units)(Flatten()(x)))
        x = act(Dense(self.hidden_units)(x))
        return Dense(self.num_classes)(x)


class MNISTMLP(nn.Module):
    """The MNIST multi-layer perceptron 784 -> 600 -> 600 -> 10 (837,610 parameters),
    without (``relu=False``) or with ReLU between the layers.

    Input ``(N, 28, 28, 1)``, output ``(N, 10)`` logits.
    """

    relu: bool = True
    hidden_units: int = 600
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        check_input(x, "MNISTMLP", ndim=4, layout="(batch, height, width, channels)")
        return MLPHead(self.hidden_units, self.num_classes, self.relu)(x)


class MNISTOneConv(nn.Module):
    """One 7x7 convolution to 10 channels (28 -> 22), then the MLP head.

    As the lesson speaks the forward pass, the convolution's output goes straight into the
    MLP: it names no ReLU after the convolution. ``conv_relu=True`` puts one after each
    convolution, as most CNNs would. Input ``(N, 28, 28, 1)``, output ``(N, 10)`` logits.
    """

    hidden_units: int = 600
    num_classes: int = 10
    in_channels: int = 1
    second_conv: bool = False
    conv_relu: bool = False

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        act = relu if self.conv_relu else (lambda h: h)
        x = act(Conv2D(10, 7, in_channels=self.in_channels)(x))
        if self.second_conv:
            x = act(Conv2D(55, 2)(x))
        return MLPHead(self.hidden_units, self.num_classes)(x)


class MNISTTwoConv(MNISTOneConv):
    """``MNISTOneConv`` plus a 2x2 convolution to 55 channels (22 -> 21), then the MLP head;
    no ReLU after either convolution unless ``conv_relu=True``. Input ``(N, 28, 28, 1)``,
    output ``(N, 10)`` logits.
    """

    second_conv: bool = True


# --- Lesson 15: convolutions and the autoencoder -------------------------------------


class SimpleCNN(nn.Module):
    """Lesson 15's ``simple_cnn``: five 3x3 stride-2 convolutions with padding 1,
    1 -> 4 -> 8 -> 16 -> 16 -> 10 channels, ReLU after all but the last
    (28 -> 14 -> 7 -> 4 -> 2 -> 1), then ``Flatten``: 5,274 parameters.

    Input ``(N, 28, 28, 1)``, output ``(N, 10)`` logits.
    """

    in_channels: int = 1
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        channels = (4, 8, 16, 16, self.num_classes)
        for i, features in enumerate(channels):
            x = Conv2D(features, 3, strides=2, padding=1,
                       in_channels=self.in_channels if i == 0 else None)(x)
            if i < len(channels) - 1:
                x = relu(x)
        return Flatten()(x)


class ConvAutoencoder(nn.Module):
    """Lesson 15's convolutional autoencoder for 28x28 images.

    Encoder: pad 28 -> 32, three 3x3 stride-2 convolutions with ReLU,
    1 -> 2 -> 4 -> 8 channels (32 -> 16 -> 8 -> 4: a 4x4x8 code).
    Decoder: three "deconvolutions" (nearest upsample x2, then a 3x3 convolution),
    8 -> 4 -> 2 -> 1 channels, the last without ReLU (4 -> 8 -> 16 -> 32); crop back
    to 28; sigmoid. Input and output ``(N, 28, 28, 1)`` in [0, 1].
    ``channels`` widens the encoder (the decoder mirrors it): the lesson's is (2, 4, 8).
    """

    in_channels: int = 1
    channels: tuple[int, ...] = (2, 4, 8)

    def setup(self):
        self.pad = Pad2D(2)
        self.encoder_convs = [
            Conv2D(f, 3, strides=2, padding=1, in_channels=self.in_channels if i == 0 else None)
            for i, f in enumerate(self.channels)
        ]
        self.upsample = Upsample2D(2)
        self.decoder_convs = [Conv2D(f, 3, padding=1) for f in (*self.channels[-2::-1], self.in_channels)]
        self.crop = Pad2D(-2)

    def encode(self, x: Array) -> Array:
        """Images ``(N, 28, 28, C)`` -> codes ``(N, 4, 4, 8)``."""
        x = self.pad(x)
        for layer in self.encoder_convs:
            x = relu(layer(x))
        return x

    def decode(self, code: Array) -> Array:
        """Codes ``(N, 4, 4, 8)`` -> images ``(N, 28, 28, C)`` in [0, 1]."""
        x = code
        for i, layer in enumerate(self.decoder_convs):
            x = layer(self.upsample(x))
            if i < len(self.decoder_convs) - 1:
                x = relu(x)
        return sigmoid(self.crop(x))

    def __call__(self, x: Array, train: bool = False) -> Array:
        return self.decode(self.encode(x))


# --- beyond the course ------------------------------------------------------------


class CompactVGG(nn.Module):
    """jaxdl's "best" model for 28x28 digits and clothes, from the same parts.

    Two stages of ``[Conv3x3 -> BatchNorm -> ReLU] x 2 -> MaxPool 2`` with ``widths``
    channels (28 -> 14 -> 7), then ``Dropout -> Dense(hidden) -> ReLU -> Dropout ->
    Dense(num_classes)``: MNISTBatchNormCNN's ideas at about half its FLOPs, plus
    dropout. Input ``(N, 28, 28, C)``, output ``(N, num_classes)`` logits.
    """

    widths: tuple[int, ...] = (32, 64)
    hidden: int = 128
    num_classes: int = 10
    dropout: float = 0.3

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        check_input(x, "CompactVGG", ndim=4, layout="(batch, height, width, channels)")
        for width in self.widths:
            for _ in range(2):
                x = relu(BatchNorm()(Conv2D(width, 3, padding=1, use_bias=False)(x), train))
            x = MaxPool2D(2)(x)
        x = Dropout(self.dropout)(Flatten()(x), train)
        x = Dropout(self.dropout)(relu(Dense(self.hidden)(x)), train)
        return Dense(self.num_classes)(x)


COURSE_MODELS: dict[str, tuple[nn.Module, tuple[int, ...]]] = {
    "LinearRegressionModel": (LinearRegressionModel(), (1,)),
    "LinearRegressionModelV2": (LinearRegressionModelV2(), (1,)),
    "CircleModelV0": (CircleModelV0(), (2,)),
    "CircleModelV1": (CircleModelV1(), (2,)),
    "CircleModelV2": (CircleModelV2(), (2,)),
    "BlobModel": (BlobModel(input_features=2, output_features=4), (2,)),
    "FashionMNISTModelV0": (FashionMNISTModelV0(784, 10, 10), (28, 28, 1)),
    "FashionMNISTModelV1": (FashionMNISTModelV1(784, 10, 10), (28, 28, 1)),
    "FashionMNISTModelV2": (FashionMNISTModelV2(1, 10, 10), (28, 28, 1)),
    "TinyVGG": (TinyVGG(3, 10, 3), (64, 64, 3)),
    "FashionCNN": (FashionCNN(), (28, 28, 1)),
    "MNISTBatchNormCNN": (MNISTBatchNormCNN(), (28, 28, 1)),
    "MNISTMLP": (MNISTMLP(), (28, 28, 1)),
    "MNISTOneConv": (MNISTOneConv(), (28, 28, 1)),
    "MNISTTwoConv": (MNISTTwoConv(), (28, 28, 1)),
    "SimpleCNN": (SimpleCNN(), (28, 28, 1)),
    "ConvAutoencoder": (ConvAutoencoder(), (28, 28, 1)),
}
"""Every course model by its course name, built with the course's arguments, and the
shape of one example it takes (without the batch axis). For the command line, the
benchmarks and the tests."""


def count_params(variables) -> int:
    """Number of trainable parameters (the ``params`` collection), as PyTorch's
    ``sum(p.numel() for p in model.parameters())`` counts them."""
    params = variables["params"] if "params" in variables else variables
    return sum(math.prod(p.shape) for p in jax.tree.leaves(params))
