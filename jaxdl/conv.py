"""Convolution three ways, and the size arithmetic behind them.

From the course's CNN chapter and fast.ai Lesson 15 ("Convolutions from scratch"):
the lesson slides a 3x3 kernel over an MNIST digit with Python loops
(``apply_kernel``), then unrolls every window into a row of a matrix so that the
whole convolution is a single matrix multiply (im2col), then calls the library's
convolution. The three functions here take the same arguments and agree to float
tolerance, so the notebooks can compare them side by side:

* :func:`conv2d_loops`  -- one output position at a time (slow, obvious);
* :func:`conv2d_im2col` -- extract the patches, then one ``matmul``;
* :func:`conv2d`        -- ``jax.lax.conv_general_dilated``.

:class:`jaxdl.layers.Conv2D` runs :func:`conv2d`. (Where the policy of
:mod:`jaxdl.fastpath` finds a faster equivalent for a layer's shape on the backend at hand,
that runs instead, with the same values: ``docs/performance.md``.)

Layout: images are NHWC (batch, height, width, channels) and kernels HWIO
(height, width, in channels, out channels), the layouts XLA prefers on GPU and TPU.
Like PyTorch's ``F.conv2d`` these compute a cross-correlation: the kernel is not
flipped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Union

import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdl.errors import ArgumentError, ShapeError

Padding = Union[int, str, Sequence[int], Sequence[Sequence[int]]]
"""``3``, ``(1, 2)``, ``((top, bottom), (left, right))``, ``'SAME'`` or ``'VALID'``."""

# The course's edge detectors (Lesson 15), as 3x3 float32 kernels.
TOP_EDGE = np.array([[-1, -1, -1], [0, 0, 0], [1, 1, 1]], np.float32)
LEFT_EDGE = np.array([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]], np.float32)
DIAG1_EDGE = np.array([[0, -1, 1], [-1, 1, 0], [1, 0, 0]], np.float32)
DIAG2_EDGE = np.array([[1, -1, 0], [0, 1, -1], [0, 0, 1]], np.float32)


def edge_kernels() -> np.ndarray:
    """The four edge kernels as one HWIO bank of shape ``(3, 3, 1, 4)``.

    Order: top, left, diagonal 1, diagonal 2 -- the lesson's "batch of kernels".
    """
    return np.stack([TOP_EDGE, LEFT_EDGE, DIAG1_EDGE, DIAG2_EDGE], axis=-1)[:, :, None, :]


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def pair(value: int | Sequence[int], name: str, minimum: int | None = None) -> tuple[int, int]:
    """``3 -> (3, 3)``; ``(2, 1) -> (2, 1)``; anything else -- or, with ``minimum``, a
    number below it (a stride of 0) -- is an error naming ``name``."""
    if _is_int(value):
        values = (value, value)
    else:
        try:
            values = tuple(value)
        except TypeError:
            values = ()
        if len(values) != 2 or not all(_is_int(v) for v in values):
            raise ArgumentError(f"{name} must be an int or a pair of ints, got {value!r}")
    if minimum is not None and min(values) < minimum:
        raise ArgumentError(f"{name} must be at least {minimum}, got {value!r}")
    return int(values[0]), int(values[1])


def conv_output_size(n: int, k: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution along one axis: ``floor((n + 2p - d(k-1) - 1) / s) + 1``.

    With dilation 1 this is the course's ``floor((n + 2p - k) / s) + 1``:
    ``conv_output_size(28, 3, stride=1, padding=1) == 28`` and
    ``conv_output_size(64, 3) == 62``.
    """
    effective_k = dilation * (k - 1) + 1
    if n + 2 * padding < effective_k:
        raise ShapeError(
            f"kernel of size {k} (dilation {dilation}) does not fit an input of size {n} "
            f"with padding {padding}"
        )
    return (n + 2 * padding - effective_k) // stride + 1


def resolve_padding(
    padding: Padding,
    in_hw: tuple[int, int],
    kernel_hw: tuple[int, int],
    strides: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Turn any accepted ``padding`` into explicit ``((top, bottom), (left, right))``.

    ``'SAME'`` pads so that the output is ``ceil(n / stride)`` long, putting the odd
    pixel at the bottom/right as XLA and TensorFlow do.
    """
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "VALID":
            return (0, 0), (0, 0)
        if mode != "SAME":
            raise ArgumentError(f"padding must be 'SAME', 'VALID', an int or pairs, got {padding!r}")
        pads = []
        for n, k, s, d in zip(in_hw, kernel_hw, strides, dilation):
            effective_k = d * (k - 1) + 1
            total = max((math.ceil(n / s) - 1) * s + effective_k - n, 0)
            pads.append((total // 2, total - total // 2))
        return pads[0], pads[1]
    if _is_int(padding):
        ph, pw = pair(padding, "padding", 0)
        return (ph, ph), (pw, pw)
    padding = tuple(padding)
    if len(padding) == 2 and all(_is_int(p) for p in padding):
        ph, pw = pair(padding, "padding", 0)
        return (ph, ph), (pw, pw)
    if len(padding) == 2:
        return pair(padding[0], "padding[0]", 0), pair(padding[1], "padding[1]", 0)
    raise ArgumentError(f"padding must be 'SAME', 'VALID', an int or pairs, got {padding!r}")


def _check_conv_inputs(images, kernels) -> None:
    if images.ndim != 4:
        raise ShapeError(
            f"images must be NHWC (batch, height, width, channels), got shape {tuple(images.shape)}"
        )
    if kernels.ndim != 4:
        raise ShapeError(
            "kernels must be HWIO (height, width, in_channels, out_channels), "
            f"got shape {tuple(kernels.shape)}"
        )
    if images.shape[-1] != kernels.shape[2]:
        raise ShapeError(
            f"images have {images.shape[-1]} channels (shape {tuple(images.shape)}) but kernels "
            f"expect {kernels.shape[2]} (shape {tuple(kernels.shape)})"
        )


def prepare(images, kernels, stride, padding, dilation):
    """The shared front half of the convolutions: checks, then ``(strides, dilation,
    pads, out_hw)`` -- pairs of ints, explicit ``((top, bottom), (left, right))`` padding,
    and the output's height and width."""
    _check_conv_inputs(images, kernels)
    strides, dilation = pair(stride, "stride", 1), pair(dilation, "dilation", 1)
    kh, kw = kernels.shape[:2]
    pads = resolve_padding(padding, images.shape[1:3], (kh, kw), strides, dilation)
    out_hw = tuple(
        conv_output_size(n + lo + hi, k, s, 0, d)
        for n, (lo, hi), k, s, d in zip(images.shape[1:3], pads, (kh, kw), strides, dilation)
    )
    return strides, dilation, pads, out_hw


def apply_kernel(image: np.ndarray, row: int, col: int, kernel: np.ndarray) -> float:
    """The lesson's ``apply_kernel``: one output pixel, the 3x3 window centred on
    ``(row, col)`` of a 2-D ``image`` multiplied element-wise by ``kernel`` and summed."""
    kh, kw = kernel.shape
    window = image[row - kh // 2 : row - kh // 2 + kh, col - kw // 2 : col - kw // 2 + kw]
    return float((window * kernel).sum())


def conv2d_loops(images, kernels, stride=1, padding: Padding = 0, dilation=1) -> jnp.ndarray:
    """Convolution as the lesson first writes it: a Python loop over output positions.

    At each position the window under the kernel is multiplied by every kernel and
    summed -- ``apply_kernel`` vectorised only over the batch and the channels, so the
    loop is exactly the lesson's loop over rows and columns. Runs in NumPy on the
    host: it is here to be read and timed, not to train with.
    """
    images = np.asarray(images, np.float32)
    kernels = np.asarray(kernels, np.float32)
    (sh, sw), (dh, dw), pads, (oh, ow) = prepare(images, kernels, stride, padding, dilation)
    padded = np.pad(images, ((0, 0), pads[0], pads[1], (0, 0)))
    kh, kw = kernels.shape[:2]
    out = np.zeros((images.shape[0], oh, ow, kernels.shape[3]), np.float32)
    for row in range(oh):
        for col in range(ow):
            top, left = row * sh, col * sw
            window = padded[:, top : top + dh * (kh - 1) + 1 : dh, left : left + dw * (kw - 1) + 1 : dw, :]
            # (N, kh, kw, C) x (kh, kw, C, O) -> (N, O)
            out[:, row, col, :] = np.tensordot(window, kernels, axes=3)
    return jnp.asarray(out)


def im2col(images, kernel_hw, stride=1, padding: Padding = 0, dilation=1) -> jnp.ndarray:
    """Unroll every kernel-sized window of ``images`` into one row.

    Returns ``(N, H_out, W_out, kh * kw * C)``: the patch under each output pixel,
    flattened in the same (kh, kw, C) order as an HWIO kernel reshaped to
    ``(kh * kw * C, O)``, so the convolution becomes a single matrix multiply.
    """
    kh, kw = pair(kernel_hw, "kernel_hw", 1)
    fake_kernel = np.empty((kh, kw, images.shape[-1], 1), np.float32)
    strides, dilation, pads, out_hw = prepare(images, fake_kernel, stride, padding, dilation)
    x = lax.pad(jnp.asarray(images), jnp.zeros((), images.dtype), ((0, 0, 0), (*pads[0], 0), (*pads[1], 0), (0, 0, 0)))
    return patches(x, (kh, kw), strides, dilation, out_hw)


def patches(x, kernel_hw, strides, dilation, out_hw) -> jnp.ndarray:
    """:func:`im2col` of the already padded ``x``: one strided slice per kernel tap, stacked."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel_hw, strides, dilation, out_hw
    columns = [
        x[:, i * dh : i * dh + sh * (oh - 1) + 1 : sh, j * dw : j * dw + sw * (ow - 1) + 1 : sw, :]
        for i in range(kh)
        for j in range(kw)
    ]
    stacked = jnp.stack(columns, axis=3)  # (N, oh, ow, kh*kw, C)
    return stacked.reshape(*stacked.shape[:3], kh * kw * x.shape[-1])


def conv2d_im2col(images, kernels, stride=1, padding: Padding = 0, dilation=1) -> jnp.ndarray:
    """Convolution as im2col + one matrix multiply (the lesson's fast version)."""
    images, kernels = jnp.asarray(images), jnp.asarray(kernels)
    _check_conv_inputs(images, kernels)
    kh, kw, cin, cout = kernels.shape
    patches = im2col(images, (kh, kw), stride, padding, dilation)
    return patches @ kernels.reshape(kh * kw * cin, cout)


def conv2d(images, kernels, stride=1, padding: Padding = 0, dilation=1) -> jnp.ndarray:
    """Convolution by ``jax.lax.conv_general_dilated``: what :class:`jaxdl.layers.Conv2D`
    runs (XLA picks the algorithm for the device)."""
    images, kernels = jnp.asarray(images), jnp.asarray(kernels)
    strides, dilation, pads, _ = prepare(images, kernels, stride, padding, dilation)
    return lax.conv_general_dilated(
        images,
        kernels,
        window_strides=strides,
        padding=pads,
        rhs_dilation=dilation,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
