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

:func:`conv2d_auto`, what :class:`jaxdl.layers.Conv2D` runs, picks between the last
two: im2col + matmul where it trains faster (on CPU: strided convolutions and small
patches; on a GPU: small convolutions, whose patch matrix is small), ``lax`` everywhere
else; and on CPU two ways of its own for stride 1: a convolution of few channels (the
course's 10-channel layers, first layers on 1- or 3-channel images) runs by ``lax`` with
neighbouring pixels packed into the channels (:func:`conv2d_packed`), one to one or two
channels as a sum of shifted planes (:func:`conv2d_planes`); and the big ones by ``lax``
with the kernel gradient summed over batch chunks (:func:`conv2d_chunked_kernel_grad`).

Layout: images are NHWC (batch, height, width, channels) and kernels HWIO
(height, width, in channels, out channels), the layouts XLA prefers on GPU and TPU.
Like PyTorch's ``F.conv2d`` these compute a cross-correlation: the kernel is not
flipped.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Union

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

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
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    if minimum is not None and min(values) < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    return int(values[0]), int(values[1])


def conv_output_size(n: int, k: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution along one axis: ``floor((n + 2p - d(k-1) - 1) / s) + 1``.

    With dilation 1 this is the course's ``floor((n + 2p - k) / s) + 1``:
    ``conv_output_size(28, 3, stride=1, padding=1) == 28`` and
    ``conv_output_size(64, 3) == 62``.
    """
    effective_k = dilation * (k - 1) + 1
    if n + 2 * padding < effective_k:
        raise ValueError(
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
            raise ValueError(f"padding must be 'SAME', 'VALID', an int or pairs, got {padding!r}")
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
    raise ValueError(f"padding must be 'SAME', 'VALID', an int or pairs, got {padding!r}")


def _check_conv_inputs(images, kernels) -> None:
    if images.ndim != 4:
        raise ValueError(
            f"images must be NHWC (batch, height, width, channels), got shape {tuple(images.shape)}"
        )
    if kernels.ndim != 4:
        raise ValueError(
            "kernels must be HWIO (height, width, in_channels, out_channels), "
            f"got shape {tuple(kernels.shape)}"
        )
    if images.shape[-1] != kernels.shape[2]:
        raise ValueError(
            f"images have {images.shape[-1]} channels (shape {tuple(images.shape)}) but kernels "
            f"expect {kernels.shape[2]} (shape {tuple(kernels.shape)})"
        )


def _prepare(images, kernels, stride, padding, dilation):
    """Shared front half of the three convolutions: checks, pads, output size."""
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
    (sh, sw), (dh, dw), pads, (oh, ow) = _prepare(images, kernels, stride, padding, dilation)
    padded = _pad_or_crop_np(images, pads)
    kh, kw = kernels.shape[:2]
    out = np.zeros((images.shape[0], oh, ow, kernels.shape[3]), np.float32)
    for row in range(oh):
        for col in range(ow):
            top, left = row * sh, col * sw
            window = padded[:, top : top + dh * (kh - 1) + 1 : dh, left : left + dw * (kw - 1) + 1 : dw, :]
            # (N, kh, kw, C) x (kh, kw, C, O) -> (N, O)
            out[:, row, col, :] = np.tensordot(window, kernels, axes=3)
    return jnp.asarray(out)


def _pad_or_crop_np(images: np.ndarray, pads) -> np.ndarray:
    (top, bottom), (left, right) = pads
    images = np.pad(images, ((0, 0), (max(top, 0), max(bottom, 0)), (max(left, 0), max(right, 0)), (0, 0)))
    h, w = images.shape[1:3]
    return images[:, max(-top, 0) : h - max(-bottom, 0), max(-left, 0) : w - max(-right, 0), :]


def im2col(images, kernel_hw, stride=1, padding: Padding = 0, dilation=1) -> jnp.ndarray:
    """Unroll every kernel-sized window of ``images`` into one row.

    Returns ``(N, H_out, W_out, kh * kw * C)``: the patch under each output pixel,
    flattened in the same (kh, kw, C) order as an HWIO kernel reshaped to
    ``(kh * kw * C, O)``, so the convolution becomes a single matrix multiply.
    """
    kh, kw = pair(kernel_hw, "kernel_hw")
    fake_kernel = np.empty((kh, kw, images.shape[-1], 1), np.float32)
    strides, dilation, pads, out_hw = _prepare(images, fake_kernel, stride, padding, dilation)
    x = lax.pad(jnp.asarray(images), jnp.zeros((), images.dtype), ((0, 0, 0), (*pads[0], 0), (*pads[1], 0), (0, 0, 0)))
    if dilation == (1, 1) and strides != (1, 1):
        return _strided_patches(x, (kh, kw), strides, out_hw)
    return _patches(x, (kh, kw), strides, dilation, out_hw)


def _patches(x, kernel_hw, strides, dilation, out_hw) -> jnp.ndarray:
    """:func:`im2col` of the already padded ``x``: one strided slice per kernel tap, stacked."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel_hw, strides, dilation, out_hw
    columns = [
        x[:, i * dh : i * dh + sh * (oh - 1) + 1 : sh, j * dw : j * dw + sw * (ow - 1) + 1 : sw, :]
        for i in range(kh)
        for j in range(kw)
    ]
    patches = jnp.stack(columns, axis=3)  # (N, oh, ow, kh*kw, C)
    return patches.reshape(*patches.shape[:3], kh * kw * x.shape[-1])


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _strided_patches(x, kernel_hw, strides, out_hw) -> jnp.ndarray:
    """:func:`_patches` with stride > 1 (no dilation), whose gradient is gathered phase by phase.

    JAX's transpose of a strided slice is a pad with interior padding, and the input
    gradient is the sum of one such pad per kernel tap: XLA:CPU's fused loop tests every
    tap's pad at every pixel (nine for 3x3). Split the padded image into its
    ``stride x stride`` phases instead (pixels ``(s*y + a, s*x + b)`` for each ``(a, b)``):
    tap ``(i, j)`` only ever lands in phase ``(i mod s, j mod s)``, shifted by
    ``(i // s, j // s)``, so each phase is a sum of plain shifted pads -- four terms a pixel
    for 3x3 at stride 2, no interior padding. SimpleCNN's train step (five strided 3x3
    layers) 0.90-0.93 of its time in four comparisons, FashionCNN's and the autoencoder's
    0.98-0.99 (two cores, the library against the old code in one process, alternating).
    """
    return _patches(x, kernel_hw, strides, (1, 1), out_hw)


def _strided_patches_fwd(x, kernel_hw, strides, out_hw):
    return _patches(x, kernel_hw, strides, (1, 1), out_hw), x.shape


def _strided_patches_bwd(kernel_hw, strides, out_hw, x_shape, grad):
    (kh, kw), (sh, sw), (oh, ow) = kernel_hw, strides, out_hw
    n, height, width, c = x_shape
    grad = grad.reshape(n, oh, ow, kh * kw, c)
    ph, pw = -(-height // sh), -(-width // sw)  # the phase grid: the image rounded up to whole strides
    zero = jnp.zeros((), grad.dtype)
    phase_rows = []
    for a in range(sh):
        phases = []
        for b in range(sw):
            phase = jnp.zeros((n, ph, pw, c), grad.dtype)
            for i in range(a, kh, sh):
                for j in range(b, kw, sw):
                    di, dj = i // sh, j // sw
                    phase = phase + lax.pad(grad[:, :, :, i * kw + j], zero,
                                            ((0, 0, 0), (di, ph - oh - di, 0), (dj, pw - ow - dj, 0), (0, 0, 0)))
            phases.append(phase)
        phase_rows.append(jnp.stack(phases, axis=3))  # (n, ph, pw, sw, c)
    interleaved = jnp.stack(phase_rows, axis=2).reshape(n, ph * sh, pw * sw, c)  # pixel (s*y + a, s*x + b)
    return (interleaved[:, :height, :width],)


_strided_patches.defvjp(_strided_patches_fwd, _strided_patches_bwd)


def conv2d_im2col(images, kernels, stride=1, padding: Padding = 0, dilation=1) -> jnp.ndarray:
    """Convolution as im2col + one matrix multiply (the lesson's fast version)."""
    images, kernels = jnp.asarray(images), jnp.asarray(kernels)
    _check_conv_inputs(images, kernels)
    kh, kw, cin, cout = kernels.shape
    patches = im2col(images, (kh, kw), stride, padding, dilation)
    return patches @ kernels.reshape(kh * kw * cin, cout)


def conv2d(images, kernels, stride=1, padding: Padding = 0, dilation=1) -> jnp.ndarray:
    """Convolution by ``jax.lax.conv_general_dilated``: what :class:`jaxdl.layers.Conv2D` runs."""
    images, kernels = jnp.asarray(images), jnp.asarray(kernels)
    strides, dilation, pads, _ = _prepare(images, kernels, stride, padding, dilation)
    return lax.conv_general_dilated(
        images,
        kernels,
        window_strides=strides,
        padding=pads,
        rhs_dilation=dilation,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )


def conv2d_chunked_kernel_grad(images, kernels, stride=1, padding: Padding = 0, dilation=1,
                               chunks: int = 2) -> jnp.ndarray:
    """:func:`conv2d`, whose kernel gradient is summed over ``chunks`` slices of the batch
    (as equal as the batch allows); values and input gradient are :func:`conv2d`'s.

    XLA:CPU's kernel gradient reads the layer's input transposed to ``(C, H, W, N)``, a
    copy that gathers every value from a different cache line and, where the input comes
    out of a fusion (a BatchNorm and a ReLU), recomputes it there. Over the whole batch
    that copy streams the input from memory once per channel; a slice of a few MiB stays
    in cache. MNISTBatchNormCNN's train step, chunked by :func:`kernel_grad_chunks` against
    whole (two cores, in one process alternating): 0.94-0.95 of the time at batch 120
    (three chunks of its 28x28x32 inputs), 0.89 at 256; one chunk through the same code 1.01.
    """
    images, kernels = jnp.asarray(images), jnp.asarray(kernels)
    strides, dilation, pads, _ = _prepare(images, kernels, stride, padding, dilation)
    if not isinstance(chunks, (int, np.integer)) or not 1 <= chunks <= images.shape[0]:
        raise ValueError(f"chunks must be an int from 1 to the batch size {images.shape[0]}, got {chunks!r}")
    return _conv_chunked_kernel_grad(images, kernels, strides, pads, dilation, int(chunks))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _conv_chunked_kernel_grad(images, kernels, strides, pads, dilation, chunks):
    return conv2d(images, kernels, strides, pads, dilation)


def _conv_chunked_kernel_grad_fwd(images, kernels, strides, pads, dilation, chunks):
    return conv2d(images, kernels, strides, pads, dilation), (images, kernels)


def _conv_chunked_kernel_grad_bwd(strides, pads, dilation, chunks, residuals, grad_out):
    images, kernels = residuals
    _, images_vjp = jax.vjp(lambda x: conv2d(x, kernels, strides, pads, dilation), images)
    bounds = np.linspace(0, images.shape[0], chunks + 1).round().astype(int)
    kernel_grad = 0
    for start, stop in zip(bounds[:-1], bounds[1:]):
        _, chunk_vjp = jax.vjp(lambda k: conv2d(images[start:stop], k, strides, pads, dilation), kernels)
        kernel_grad = kernel_grad + chunk_vjp(grad_out[start:stop])[0]
    return images_vjp(grad_out)[0], kernel_grad


_conv_chunked_kernel_grad.defvjp(_conv_chunked_kernel_grad_fwd, _conv_chunked_kernel_grad_bwd)


def conv2d_planes(images, kernels, padding: Padding = 0) -> jnp.ndarray:
    """A stride-1 convolution to very few channels, as a sum of shifted image planes
    times kernel taps -- ``kh * kw * C_in * C_out`` multiply-adds per output pixel, each
    an element-wise operation over whole ``(N, H, W)`` planes that XLA fuses into one loop.

    For a convolution to one or two channels both other ways waste their work on CPU:
    im2col's matmul is a matrix-vector product behind a 9x copy of the input, and XLA's
    Eigen kernel vectorises along the (tiny) channel axis. Here the width is the inner
    axis. Gradients (:func:`_planes_vjp`) are written the same way: the input gradient is
    the output gradient correlated with the flipped kernel, the kernel gradient one sum
    per tap, all taps in one reduction. The autoencoder's last 2 -> 1 layer at batch 256,
    forward + backward: im2col 19.1 ms, ``lax`` 17.0 ms, this 5.6 ms; its whole train step
    30.5 -> 25.9 ms (2-core CPU), and 25 -> 12 ms once the kernel gradient's per-tap sums
    became one reduction.
    Stride 1 only (``conv2d_auto`` sends strided convolutions elsewhere).
    """
    images, kernels = jnp.asarray(images), jnp.asarray(kernels)
    _check_conv_inputs(images, kernels)
    _, _, pads, _ = _prepare(images, kernels, 1, padding, 1)
    planes = lax.pad(images.transpose(0, 3, 1, 2), jnp.zeros((), images.dtype),
                     ((0, 0, 0), (0, 0, 0), (*pads[0], 0), (*pads[1], 0)))
    return _correlate_planes(planes, kernels).transpose(0, 2, 3, 1)


def _shifted_plane_sum(planes, kernels, out_hw):
    """``(N, C, H, W)`` planes, ``(kh, kw, C, O)`` kernels -> ``(N, O, oh, ow)``."""
    kh, kw, cin, cout = kernels.shape
    oh, ow = out_hw
    return jnp.stack([sum(planes[:, c, i:i + oh, j:j + ow] * kernels[i, j, c, o]
                          for i in range(kh) for j in range(kw) for c in range(cin))
                      for o in range(cout)], axis=1)


@jax.custom_vjp
def _correlate_planes(planes, kernels):
    kh, kw = kernels.shape[:2]
    return _shifted_plane_sum(planes, kernels, (planes.shape[2] - kh + 1, planes.shape[3] - kw + 1))


def _planes_fwd(planes, kernels):
    return _correlate_planes(planes, kernels), (planes, kernels)


def _planes_vjp(residuals, grad_out):
    # Written out because JAX's own transpose of the shifted slices is a scatter-add per
    # tap, which XLA:CPU runs as slowly as the convolution it replaces.
    planes, kernels = residuals
    kh, kw, cin, cout = kernels.shape
    oh, ow = grad_out.shape[2:]
    full = jnp.pad(grad_out, ((0, 0), (0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1)))
    grad_planes = _shifted_plane_sum(full, jnp.flip(kernels, (0, 1)).transpose(0, 1, 3, 2), planes.shape[2:])
    # One reduction with an output per tap, so that XLA reads the planes once in one fused
    # loop. Tap by tap, ``(slice * grad).sum()`` is a reduction XLA:CPU hands to YNNPACK,
    # which needs both slices copied out first: 2 x 90 copies of up to 256x32x32 values
    # for the autoencoder, half of its train step (25 -> 12 ms with this).
    products = tuple(planes[:, c, i:i + oh, j:j + ow] * grad_out[:, o]
                     for i in range(kh) for j in range(kw) for c in range(cin) for o in range(cout))
    zero = jnp.zeros((), grad_out.dtype)
    sums = lax.reduce(products, (zero,) * len(products),
                      lambda totals, values: tuple(t + v for t, v in zip(totals, values)), (0, 1, 2))
    return grad_planes, jnp.stack(sums).reshape(kernels.shape)


_correlate_planes.defvjp(_planes_fwd, _planes_vjp)


def packed_kernels(kernels, pack: int) -> jnp.ndarray:
    """An HWIO kernel for :func:`conv2d_packed`: ``(kh, kw, C, O)`` ->
    ``(kh, blocks, pack * C, pack * O)``, where ``blocks`` is how many packed input columns
    one packed output column reads. Packed output column ``b``, pixel ``p`` reads packed
    input column ``b + q``, pixel ``r`` through the tap ``j = q * pack + r - p`` of the
    original kernel, and nothing where ``j`` falls outside it."""
    kh, kw, cin, cout = kernels.shape
    blocks = -(-(pack - 1 + kw) // pack)
    q, r, p = np.meshgrid(np.arange(blocks), np.arange(pack), np.arange(pack), indexing="ij")
    tap = q * pack + r - p
    inside = (tap >= 0) & (tap < kw)
    picked = jnp.asarray(kernels)[:, np.where(inside, tap, 0)]  # (kh, blocks, r, p, C, O)
    picked = jnp.where(inside[None, :, :, :, None, None], picked, 0)
    return picked.transpose(0, 1, 2, 4, 3, 5).reshape(kh, blocks, pack * cin, pack * cout)


def conv2d_packed(images, kernels, padding: Padding = 0, pack: int = 2) -> jnp.ndarray:
    """A stride-1 convolution with ``pack`` neighbouring pixels of each row packed into
    the channels: ``(N, H, W, C)`` is read as ``(N, H, W / pack, pack * C)`` (the same
    memory, NHWC) and convolved by ``lax`` with :func:`packed_kernels`, a
    ``kh x blocks`` kernel from ``pack * C`` to ``pack * O`` channels whose zeros keep
    each output pixel reading only its own window; the result is read back as
    ``(N, H, W, O)``.

    For few channels this is what makes XLA:CPU's convolution fast: its kernel vectorises
    along the channels, and ten of them fill a vector register badly; twice as many, from
    half as many pixels, do better, though the zeros cost ``blocks * pack / kw`` times the
    multiply-adds (4/3 for 3x3 and ``pack=2``). Forward + backward on a 2-core CPU
    (``benchmarks/conv_speed_cpu.md``): V2's 10 -> 10 layer on 32x28x28 3.60 -> 2.30 ms,
    TinyVGG's on 32x62x62 16.6 -> 9.7 ms; a first layer (kernel gradient only) 1 -> 10 on
    32x28x28 with ``pack=4`` 0.89 (``lax``) / 0.76 (im2col) -> 0.44 ms. Whole train steps:
    TinyVGG b32 42.7 -> 20.6 ms, V2 b32 6.8 -> 5.3. From 16 channels on it gains nothing
    (16 -> 16 alone: 3.72 -> 3.61 ms), and MNISTBatchNormCNN's 32- and 64-channel layers
    take 1.4-1.6x longer, hence :func:`packing`'s bounds.
    Gradients are ``lax``'s through the reshapes, but for a small patch
    (``kh * kw * C_in <= IM2COL_MAX_PATCH``: first layers) the kernel gradient is ``lax``'s of
    the unpacked convolution (:func:`_packed_plain_kernel_grad`). Any width: an output row
    that does not divide by ``pack`` is computed a little wider and cut.
    """
    images, kernels = jnp.asarray(images), jnp.asarray(kernels)
    _check_conv_inputs(images, kernels)
    if not isinstance(pack, (int, np.integer)) or pack < 1:
        raise ValueError(f"pack must be a positive int, got {pack!r}")
    pads = _prepare(images, kernels, 1, padding, 1)[2]  # pairs of ints: hashable, for the custom VJP
    kh, kw, cin, _ = kernels.shape
    if kh * kw * cin <= IM2COL_MAX_PATCH:
        return _packed_plain_kernel_grad(images, kernels, pads, pack)
    return _packed(images, kernels, pads, pack)


def _packed(images, kernels, pads, pack: int) -> jnp.ndarray:
    """:func:`conv2d_packed` with explicit ``((top, bottom), (left, right))`` padding."""
    ((top, bottom), (left, right)) = pads
    n, h, w, cin = images.shape
    kh, kw = kernels.shape[:2]
    oh, ow = h + top + bottom - kh + 1, w + left + right - kw + 1
    kernel = packed_kernels(kernels, pack)
    blocks = kernel.shape[1]  # packed input columns one packed output column reads
    out_columns = -(-ow // pack)
    width = (out_columns + blocks - 1) * pack  # input pixels a row of packed windows spans
    padded = lax.pad(images, jnp.zeros((), images.dtype),
                     ((0, 0, 0), (top, bottom, 0), (left, width - w - left, 0), (0, 0, 0)))
    packed = padded.reshape(n, h + top + bottom, width // pack, pack * cin)
    out = lax.conv_general_dilated(packed, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    out = out.reshape(n, oh, out_columns * pack, kernels.shape[3])
    return out if out_columns * pack == ow else out[:, :, :ow]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _packed_plain_kernel_grad(images, kernels, pads, pack: int) -> jnp.ndarray:
    """:func:`_packed`, whose kernel gradient is that of the unpacked convolution.

    XLA:CPU's kernel gradient reads the output gradient in ``(H, W, N, C)`` order. For the
    packed convolution that is the gradient *packed* -- ``(H, W / pack, N, pack * O)``,
    a reshape -- and where the gradient comes out of a fusion (a BatchNorm's backward pass
    after MNISTBatchNormCNN's first layer) XLA recomputes it inside that copy, whose loop
    through the reshape ran 5.4 ms against 1.0 ms for the same copy unpacked (one core,
    120x28x28x32). With few input channels the unpacked kernel gradient is cheap, since its
    other operand, the image transposed to ``(C, H, W, N)``, is small: MNISTBatchNormCNN's
    first layer 6.5 -> 2.0 ms a step on one core, the whole step 1.01-1.13x faster in five
    comparisons, median 1.08x (two cores, in one process alternating); the other packed
    first layers (a ReLU after them) unchanged.
    """
    return _packed(images, kernels, pads, pack)


def _packed_plain_kernel_grad_fwd(images, kernels, pads, pack):
    return _packed(images, kernels, pads, pack), (images, kernels)


def _packed_plain_kernel_grad_bwd(pads, pack, residuals, grad_out):
    images, kernels = residuals
    _, images_vjp = jax.vjp(lambda x: _packed(x, kernels, pads, pack), images)
    _, kernels_vjp = jax.vjp(lambda k: conv2d(images, k, 1, pads), kernels)
    return images_vjp(grad_out)[0], kernels_vjp(grad_out)[0]


_packed_plain_kernel_grad.defvjp(_packed_plain_kernel_grad_fwd, _packed_plain_kernel_grad_bwd)


PLANES_MAX_OUT_CHANNELS = 2
"""On CPU, :func:`conv2d_auto` runs a stride-1 convolution to at most this many channels
(and at most :data:`PLANES_MAX_TERMS` multiply-adds a pixel) by :func:`conv2d_planes`."""

PLANES_MAX_TERMS = 72
"""Past this many multiply-adds per output pixel, :func:`conv2d_planes`'s one fused loop
loses to a matmul (the 8 -> 4 layer, 288 terms: 4.7 ms against im2col's 1.8)."""


def uses_planes(kernels_shape, stride=1, dilation=1, backend: str | None = None) -> bool:
    """Whether :func:`conv2d_auto` takes :func:`conv2d_planes` (CPU only: on a GPU the
    course's small convolutions go to im2col, whose matmul there is no bottleneck)."""
    kh, kw, cin, cout = kernels_shape
    return ((backend or jax.default_backend()) == "cpu" and pair(stride, "stride") == (1, 1)
            and pair(dilation, "dilation") == (1, 1) and cout <= PLANES_MAX_OUT_CHANNELS
            and kh * kw * cin * cout <= PLANES_MAX_TERMS)


PACK_MAX_IN_CHANNELS = 32
PACK_MAX_OUT_CHANNELS = 64
"""On CPU, :func:`conv2d_auto` packs a stride-1 convolution's rows by the largest of 4 and
2 that keeps the packed channels within these bounds (:func:`packing`): 10 -> 10 packs
by 2 (20 -> 20), 1 -> 10 by 4, 1 -> 32 by 2 (``benchmarks/conv_speed_cpu.md``)."""


def packing(kernels_shape, stride=1, dilation=1, backend: str | None = None) -> int:
    """By how many pixels :func:`conv2d_auto` packs this convolution's rows
    (:func:`conv2d_packed`); 1: it does not. CPU only, where it was measured: on a GPU
    the course's small convolutions already go to im2col (:func:`uses_im2col`), and a
    TPU's convolution units pad channels their own way (reasoned, not measured: the
    packed path was not timed on either)."""
    _, _, cin, cout = kernels_shape
    if ((backend or jax.default_backend()) != "cpu" or pair(stride, "stride") != (1, 1)
            or pair(dilation, "dilation") != (1, 1)):
        return 1
    return next((p for p in (4, 2) if p * cin <= PACK_MAX_IN_CHANNELS and p * cout <= PACK_MAX_OUT_CHANNELS), 1)


IM2COL_MAX_PATCH = 64
"""On CPU, :func:`conv2d_auto` uses im2col + matmul for a stride-1 convolution whose
patch (``kh * kw * C_in`` values) is at most this large: 3x3 over up to 7 channels,
7x7 over one. ``benchmarks/conv_speed.py`` times both ways on every course conv layer."""

IM2COL_MAX_ELEMENTS_GPU = 2**23
"""On a GPU, :func:`conv2d_auto` uses im2col + matmul for a convolution whose patch
matrix (output positions x ``kh * kw * C_in``; 32 MiB of float32 here) is at most this
large, any stride: every course layer up to 6.8M values trained faster so, every one from
10.4M up slower (``benchmarks/conv_speed_gpu.md``)."""


def uses_im2col(kernels_shape, stride=1, backend: str | None = None, images_shape=None) -> bool:
    """Whether :func:`conv2d_auto` takes the im2col path (default backend: JAX's), if
    neither :func:`uses_planes` nor :func:`packing` took the layer first (on CPU packing
    takes the stride-1 small patches this rule was made for, at 0.50-0.79 of ``lax``'s time
    where im2col takes 0.86-1.14: ``conv_speed_cpu.md``). On a GPU the answer depends on the size of the input
    (``images_shape``, NHWC); without it, no.

    On CPU XLA runs a convolution on Eigen's kernels (jaxdl compiles with YNNPACK's
    convolutions off, :mod:`jaxdl.compiler`), which are fast forward but leave two
    backward cases slow: the weight gradient of a small patch (a few long, thin dots),
    and the input gradient of a strided convolution (a convolution with input dilation,
    which Eigen lacks, so XLA falls back to plain loops). im2col turns both into one
    matmul and a few strided slices. Measured on the course's layers (fwd + bwd,
    ``conv_speed_cpu.md``): FashionCNN's 6x6x64 -> 128 stride-2 layer 8.6 ms -> 1.7 ms,
    SimpleCNN's first 1.7 -> 0.9 ms; while a 3x3 32 -> 32 layer on 28x28 is 2.4-3.1x
    faster by ``lax``, since its patch matrix is large. A bound on the patch matrix
    instead of the patch (im2col for V2's and TinyVGG's 10-channel layers, which it wins
    one by one at 0.82-0.92) made TinyVGG's whole train step slower (42 -> 60 ms) and
    V2's no faster, so the rule stays the patch's size (those layers are packed now).

    On a GPU (an H100, jax 0.11.2) the course's small convolutions run faster as im2col +
    one cuBLAS matmul than through cuDNN, whose fixed costs dominate at these sizes: layer
    by layer (fwd + bwd, ``conv_speed_gpu.md``) im2col takes 0.33-0.82 of cuDNN's time on
    every layer whose patch matrix holds up to 6.8M values, and 1.1-2.3x on the three from
    10.4M up (MNISTBatchNormCNN's 32- and 64-channel layers on 28x28 / 14x14, TinyVGG's
    second layer). Whole models trained with every layer forced to im2col (scanned epochs):
    FashionMNISTModelV2 at batch 32 122,751 -> 232,850 images/s and SimpleCNN at 256
    879,256 -> 2,461,924 (all their layers are under the bound), MNISTBatchNormCNN at 120
    127,295 -> 74,450 (three layers over it). Hence :data:`IM2COL_MAX_ELEMENTS_GPU`, which
    also keeps the copy's memory small. TPU always takes ``lax`` (its convolution units
    have neither weak spot; reasoned, not measured: no TPU here).
    """
    kh, kw, cin, _ = kernels_shape
    backend = backend or jax.default_backend()
    if backend == "cpu":
        return pair(stride, "stride") != (1, 1) or kh * kw * cin <= IM2COL_MAX_PATCH
    if backend in ("gpu", "cuda", "rocm") and images_shape is not None:
        n, h, w, _ = images_shape
        sh, sw = pair(stride, "stride")
        positions = n * -(-h // sh) * -(-w // sw)  # output positions, 'same'-padded (an upper bound for 'valid')
        return positions * kh * kw * cin <= IM2COL_MAX_ELEMENTS_GPU
    return False


KERNEL_GRAD_CHUNK_BYTES = 4 * 2**20
"""On CPU, :func:`conv2d_auto` sums the kernel gradient of a convolution it runs by ``lax``
over batch chunks of at most this many bytes of input (:func:`kernel_grad_chunks`):
MNISTBatchNormCNN's train step at batch 256 took 0.89 of its time in chunks of 32 images
(3.2 MiB of 28x28x32), 0.93 in chunks of 64."""


def kernel_grad_chunks(images_shape, dtype=jnp.float32, backend: str | None = None) -> int:
    """Over how many batch chunks :func:`conv2d_auto` sums a ``lax`` convolution's kernel
    gradient (:func:`conv2d_chunked_kernel_grad`): enough that each holds at most
    :data:`KERNEL_GRAD_CHUNK_BYTES` of input, on CPU, where it was measured; 1 elsewhere
    (a GPU's and a TPU's convolutions do not make that transposed copy through the host
    caches: reasoned, not measured)."""
    if (backend or jax.default_backend()) != "cpu":
        return 1
    image_bytes = math.prod(images_shape[1:]) * np.dtype(dtype).itemsize
    per_chunk = max(1, KERNEL_GRAD_CHUNK_BYTES // max(image_bytes, 1))
    return max(1, -(-images_shape[0] // per_chunk))


def conv_algorithm(images_shape, kernels_shape, stride=1, dilation=1) -> str:
    """Which way :func:`conv2d_auto` convolves here: ``"planes"`` where :func:`uses_planes`
    says so, ``"packed4"`` / ``"packed2"`` where :func:`packing` packs rows by 4 or 2,
    ``"im2col"`` where :func:`uses_im2col` says it is faster, else ``"lax"``."""
    if uses_planes(kernels_shape, stride, dilation):
        return "planes"
    pack = packing(kernels_shape, stride, dilation)
    if pack > 1:
        return f"packed{pack}"
    if uses_im2col(kernels_shape, stride, images_shape=images_shape):
        return "im2col"
    return "lax"


def conv2d_auto(images, kernels, stride=1, padding: Padding = 0, dilation=1) -> jnp.ndarray:
    """The convolution :class:`jaxdl.layers.Conv2D` runs: :func:`conv2d_planes`,
    :func:`conv2d_packed`, :func:`conv2d_im2col` or :func:`conv2d`, as :func:`conv_algorithm`
    picks, the last with its kernel gradient summed over batch chunks on CPU
    (:func:`kernel_grad_chunks`). All give the same result to float tolerance, so the
    choice only changes the speed."""
    images, kernels = jnp.asarray(images), jnp.asarray(kernels)
    algorithm = conv_algorithm(images.shape, kernels.shape, stride, dilation) if images.ndim == kernels.ndim == 4 else "lax"
    if algorithm == "planes":
        return conv2d_planes(images, kernels, padding)
    if algorithm.startswith("packed"):
        return conv2d_packed(images, kernels, padding, int(algorithm[len("packed"):]))
    if algorithm == "im2col":
        return conv2d_im2col(images, kernels, stride, padding, dilation)
    chunks = kernel_grad_chunks(images.shape, images.dtype) if images.ndim == 4 else 1
    if chunks > 1:
        return conv2d_chunked_kernel_grad(images, kernels, stride, padding, dilation, chunks)
    return conv2d(images, kernels, stride, padding, dilation)
