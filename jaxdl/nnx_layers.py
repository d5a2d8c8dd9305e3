"""The course's ``torch.nn`` layers in Flax NNX: NNX's own layers, set up as PyTorch's.

Flax NNX has ``nnx.Linear``, ``nnx.Conv``, ``nnx.BatchNorm`` and ``nnx.Dropout``; a
learner who knows ``nn.Linear(in_features, out_features)`` reads them at once. Three of
their defaults are not PyTorch's, and each class here changes one of them and nothing
else, so that an NNX model starts from and computes what the course's model does:

* **initialisation** -- NNX draws kernels from LeCun normal and starts biases at zero;
  PyTorch draws both from ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``
  (:func:`jaxdl.layers.kaiming_uniform`, :func:`jaxdl.layers.torch_bias_init`);
* **padding** -- ``nnx.Conv`` pads ``'SAME'`` unless told; ``nn.Conv2d`` pads 0. An int
  ``kernel_size`` means a square kernel here, as in PyTorch (to ``nnx.Conv`` it means a
  1-D one);
* **BatchNorm's running statistics** -- ``nnx.BatchNorm`` keeps
  ``momentum * running + (1 - momentum) * batch`` (momentum 0.99) with the biased batch
  variance; PyTorch keeps ``(1 - momentum) * running + momentum * batch`` (momentum 0.1)
  with the unbiased one.

NNX's layers hold the parameters and the settings (``kernel``, ``bias``, ``strides``,
``use_running_average``, ...); each class's ``__call__`` computes with :mod:`jaxdl.layers`'
own functions, the ones its Linen layers call (:func:`~jaxdl.layers.affine`,
:func:`~jaxdl.layers.convolution` with the fast path's kernels, BatchNorm's
:func:`~jaxdl.layers.batch_moments` / :func:`~jaxdl.layers.normalize`), so an NNX model and
its Linen twin run the same program: the same numbers, in every precision, at the same
speed. Pools, ``flatten``, the
activations and the rest have no parameters: an NNX model calls :mod:`jaxdl.layers`'
functions for them (``nnx.Sequential`` takes plain functions).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx

from jaxdl import conv as conv_lib
from jaxdl import layers
from jaxdl.errors import ArgumentError

Array = jax.Array


class Linear(nnx.Linear):
    """``nn.Linear(in_features, out_features)``: ``nnx.Linear`` with PyTorch's initialisation,
    computed as :class:`jaxdl.layers.Dense` computes (:func:`jaxdl.layers.affine`), and an
    input of the wrong width refused with the expected and received shapes."""

    def __init__(self, in_features: int, out_features: int, *, use_bias: bool = True, rngs: nnx.Rngs):
        layers.check_count(in_features, "in_features", "Linear")
        layers.check_count(out_features, "out_features", "Linear")
        super().__init__(in_features, out_features, use_bias=use_bias, kernel_init=layers.kaiming_uniform(),
                         bias_init=layers.torch_bias_init(in_features), rngs=rngs)

    def __call__(self, x: Array) -> Array:
        layers.check_input(x, "Linear", min_ndim=1, layout="(..., features)", channels=self.in_features)
        return layers.affine(x, self.kernel[...], self.bias[...] if self.use_bias else None)


class Conv(nnx.Conv):
    """``nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)`` on NHWC images:
    ``nnx.Conv`` with PyTorch's initialisation, PyTorch's default padding (0) and a square
    kernel for an int ``kernel_size``, computed as :class:`jaxdl.layers.Conv2D` computes
    (:func:`jaxdl.layers.convolution`, with the fast path's kernels, plus the bias)."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int | Sequence[int] = 3,
                 strides: int | Sequence[int] = 1, *, padding: conv_lib.Padding = 0,
                 dilation: int | Sequence[int] = 1, use_bias: bool = True, rngs: nnx.Rngs):
        layers.check_count(in_features, "in_features", "Conv")
        layers.check_count(out_features, "out_features", "Conv")
        try:
            kh, kw = conv_lib.pair(kernel_size, "kernel_size", minimum=1)
            strides = conv_lib.pair(strides, "strides", minimum=1)
            dilation = conv_lib.pair(dilation, "dilation", minimum=1)
        except ValueError as err:
            raise ArgumentError(f"Conv: {err}") from None
        layers.check_padding(padding, "Conv")
        if not isinstance(padding, str):  # an int, (h, w), or ((top, bottom), (left, right))
            padding = conv_lib.resolve_padding(padding, (1, 1), (kh, kw))
        super().__init__(in_features, out_features, (kh, kw), strides, padding=padding, kernel_dilation=dilation,
                         use_bias=use_bias, kernel_init=layers.kaiming_uniform(),
                         bias_init=layers.torch_bias_init(kh * kw * in_features), rngs=rngs)

    def __call__(self, x: Array) -> Array:
        layers.check_input(x, "Conv", ndim=4, layout="(batch, height, width, channels)", channels=self.in_features)
        y = layers.convolution(x, self.kernel[...], self.strides, self.padding, self.kernel_dilation)
        return layers.add_bias(y, self.bias[...]) if self.use_bias else y


class BatchNorm(nnx.BatchNorm):
    """``nn.BatchNorm2d(num_features, momentum=0.1, eps=1e-5)`` / ``BatchNorm1d``:
    ``nnx.BatchNorm`` keeping PyTorch's running statistics.

    ``momentum`` is PyTorch's (the weight of the new batch; NNX's ``momentum`` attribute
    holds ``1 - momentum``, its own convention), and the running variance is updated
    with the unbiased batch variance, as PyTorch's is. ``model.train()`` /
    ``model.eval()`` switch it between the batch's statistics and the running ones.
    Computed by :mod:`jaxdl.layers`' BatchNorm functions: the statistics in float32
    whatever the input's type, the output in the input's.
    """

    def __init__(self, num_features: int, *, momentum: float = 0.1, epsilon: float = 1e-5,
                 axis_name: str | None = None, rngs: nnx.Rngs):
        layers.check_count(num_features, "num_features", "BatchNorm")
        if not 0.0 <= momentum <= 1.0:
            raise ArgumentError(f"BatchNorm momentum must be in [0, 1], got {momentum}")
        if not epsilon > 0:
            raise ArgumentError(f"BatchNorm epsilon must be > 0, got {epsilon}")
        super().__init__(num_features, momentum=1.0 - momentum, epsilon=epsilon, axis_name=axis_name, rngs=rngs)
        self.torch_momentum = momentum

    def __call__(self, x: Array, use_running_average: bool | None = None) -> Array:
        layers.check_input(x, "BatchNorm", min_ndim=2, layout="(batch, ..., channels)",
                           channels=self.num_features)
        if use_running_average is None:
            use_running_average = self.use_running_average
        if use_running_average:
            mean, var = self.mean[...], self.var[...]
        else:
            moments = layers.batch_moments(x, self.axis_name)
            mean, var, _ = moments
            self.mean[...], self.var[...] = layers.running_average((self.mean[...], self.var[...]), moments,
                                                                   self.torch_momentum)
        return layers.normalize(x, mean, var, self.scale[...], self.bias[...], self.epsilon)
