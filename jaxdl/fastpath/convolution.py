"""Faster ways to compute :func:`jaxdl.conv.conv2d`, each with the same values and gradients.

* :func:`conv2d_im2col` -- the lesson's im2col + matmul, whose strided input gradient is
  gathered phase by phase instead of through interior-padded pads;
* :func:`conv2d_chunked_kernel_grad` -- ``lax``, with the kernel gradient summed over
  batch chunks that stay in cache;
* :func:`conv2d_packed` -- ``lax`` on images with neighbouring pixels packed into the
  channels, for convolutions of few channels;
* :func:`conv2d_planes` -- a sum of shifted image planes, for convolutions to one or two
  channels.

:func:`faster_conv2d` is what :class:`jaxdl.layers.Conv2D` asks: the one the policy in
force picks for a layer's shapes (:meth:`jaxdl.fastpath.Policy.conv`), or ``None`` for the
plain path. Why each exists, and the measurements behind the policy, are in
``docs/performance.md``; ``tests/test_fastpath.py`` holds each against ``conv.conv2d``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdl import conv
from jaxdl.fastpath.policy import ConvKernel, active
from jaxdl.errors import ArgumentError


def faster_conv2d(images_shape, kernels_shape, stride=1, dilation=1, dtype=jnp.float32) -> Callable | None:
    """``f(images, kernels, stride, padding, dilation)`` computing :func:`jaxdl.conv.conv2d`
    faster for these shapes on the platform being compiled for, or ``None`` where the
    plain ``lax`` convolution is the policy's choice."""
    if len(images_shape) != 4 or len(kernels_shape) != 4:
        return None  # let the plain path report the bad shape
    _, policy = active()
    choice = policy.conv(images_shape, kernels_shape, conv.pair(stride, "stride"), conv.pair(dilation, "dilation"),
                         dtype)
    if choice.kernel is ConvKernel.IM2COL:
        return conv2d_im2col
    if choice.kernel is ConvKernel.CHUNKED:
        return functools.partial(conv2d_chunked_kernel_grad, chunks=choice.chunks)
    if choice.kernel is ConvKernel.PACKED:
        return lambda x, w, stride, padding, dilation: conv2d_packed(x, w, padding, choice.pack)
    if choice.kernel is ConvKernel.PLANES:
        return lambda x, w, stride, padding, dilation: conv2d_planes(x, w, padding)
    return None


# --- im2col with a phase-by-phase strided gradient ----------------------------------------


def conv2d_im2col(images, kernels, stride=1, padding: conv.Padding = 0, dilation=1) -> jax.Array:
    """:func:`jaxdl.conv.conv2d_im2col`, whose patches of a strided convolution come
    from :func:`_strided_patches` (same values, a faster gradient)."""
    images, kernels = jnp.asarray(images), jnp.asarray(kernels)
    strides, dilations, pads, out_hw = conv.prepare(images, kernels, stride, padding, dilation)
    kh, kw, cin, cout = kernels.shape
    if dilations != (1, 1) or strides == (1, 1):
        return conv.conv2d_im2col(images, kernels, stride, padding, dilation)
    x = lax.pad(images, jnp.zeros((), images.dtype), ((0, 0, 0), (*pads[0], 0), (*pads[1], 0), (0, 0, 0)))
    return _strided_patches(x, (kh, kw), strides, out_hw) @ kernels.reshape(kh * kw * cin, cout)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _strided_patches(x, kernel_hw, strides, out_hw) -> jax.Array:
    """:func:`jaxdl.conv.patches` at stride > 1 (no dilation), its gradient gathered phase by phase.

    JAX's transpose of a strided slice is a pad with interior padding, and the input
    gradient is the sum of one such pad per kernel tap, which XLA:CPU's fused loop tests
    at every pixel. Split the padded image into its ``stride x stride`` phases instead
    (pixels ``(s*y + a, s*x + b)`` for each ``(a, b)``): tap ``(i, j)`` only lands in
    phase ``(i mod s, j mod s)``, shifted by ``(i // s, j // s)``, so each phase is a sum
    of plain shifted pads, without interior padding.
    """
    return conv.patches(x, kernel_hw, strides, (1, 1), out_hw)


def _strided_patches_fwd(x, kernel_hw, strides, out_hw):
    return conv.patches(x, kernel_hw, strides, (1, 1), out_hw), x.shape


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


# --- lax, with the kernel gradient over batch chunks ---------------------------------------


def conv2d_chunked_kernel_grad(images, kernels, stride=1, padding: conv.Padding = 0, dilation=1,
                               chunks: int = 2) -> jax.Array:
    """:func:`jaxdl.conv.conv2d`, whose kernel gradient is summed over ``chunks`` slices of
    the batch (as equal as the batch allows); values and input gradient are ``lax``'s.

    XLA:CPU's kernel gradient reads the layer's input transposed to ``(C, H, W, N)``, a
    copy that gathers every value from another cache line and, where the input comes
    out of a fusion (a BatchNorm and a ReLU), recomputes it there. Over the whole batch
    that copy streams the input from memory once per channel; a slice of a few MiB stays
    in cache.
    """
    images, kernels = jnp.asarray(images), jnp.asarray(kernels)
    strides, dilations, pads, _ = conv.prepare(images, kernels, stride, padding, dilation)
    if isinstance(chunks, bool) or not isinstance(chunks, (int, np.integer)) or not 1 <= chunks <= images.shape[0]:
        raise ArgumentError(f"chunks must be an int from 1 to the batch size {images.shape[0]}, got {chunks!r}")
    return _conv_chunked_kernel_grad(images, kernels, strides, pads, dilations, int(chunks))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _conv_chunked_kernel_grad(images, kernels, strides, pads, dilation, chunks):
    return conv.conv2d(images, kernels, strides, pads, dilation)


def _conv_chunked_kernel_grad_fwd(images, kernels, strides, pads, dilation, chunks):
    return conv.conv2d(images, kernels, strides, pads, dilation), (images, kernels)


def _conv_chunked_kernel_grad_bwd(strides, pads, dilation, chunks, residuals, grad_out):
    images, kernels = residuals
    _, images_vjp = jax.vjp(lambda x: conv.conv2d(x, kernels, strides, pads, dilation), images)
    bounds = np.linspace(0, images.shape[0], chunks + 1).round().astype(int)
    kernel_grad = 0
    for start, stop in zip(bounds[:-1], bounds[1:]):
        _, chunk_vjp = jax.vjp(lambda k: conv.conv2d(images[start:stop], k, strides, pads, dilation), kernels)
        kernel_grad = kernel_grad + chunk_vjp(grad_out[start:stop])[0]
    return images_vjp(grad_out)[0], kernel_grad


_conv_chunked_kernel_grad.defvjp(_conv_chunked_kernel_grad_fwd, _conv_chunked_kernel_grad_bwd)


# --- a sum of shifted planes, for one or two output channels ----------------------------------


def conv2d_planes(images, kernels, padding: conv.Padding = 0) -> jax.Array:
    """A stride-1 convolution to very few channels, as a sum of shifted image planes
    times kernel taps: ``kh * kw * C_in * C_out`` multiply-adds per output pixel, each an
    element-wise operation over whole ``(N, H, W)`` planes that XLA fuses into one loop.

    To one or two channels both other ways waste their work on a CPU: im2col's matmul is a
    matrix-vector product behind a 9x copy of the input, and XLA's convolution kernel
    vectorises along the (tiny) channel axis, where here the width is the inner axis.
    The gradients (:func:`_planes_vjp`) are written the same way.
    """
    images, kernels = jnp.asarray(images), jnp.asarray(kernels)
    _, _, pads, _ = conv.prepare(images, kernels, 1, padding, 1)
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
    # tap, which XLA:CPU runs as slowly as the convolution it replaces. The input gradient
    # is the output gradient correlated with the flipped kernel.
    planes, kernels = residuals
    kh, kw, cin, cout = kernels.shape
    oh, ow = grad_out.shape[2:]
    full = jnp.pad(grad_out, ((0, 0), (0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1)))
    grad_planes = _shifted_plane_sum(full, jnp.flip(kernels, (0, 1)).transpose(0, 1, 3, 2), planes.shape[2:])
    # One reduction with an output per tap, so that XLA reads the planes once in one fused
    # loop; tap by tap, each sum is a reduction XLA:CPU hands to YNNPACK after copying
    # both slices out.
    products = tuple(planes[:, c, i:i + oh, j:j + ow] * grad_out[:, o]
                     for i in range(kh) for j in range(kw) for c in range(cin) for o in range(cout))
    zero = jnp.zeros((), grad_out.dtype)
    sums = lax.reduce(products, (zero,) * len(products),
                      lambda totals, values: tuple(t + v for t, v in zip(totals, values)), (0, 1, 2))
    return grad_planes, jnp.stack(sums).reshape(kernels.shape)


_correlate_planes.defvjp(_planes_fwd, _planes_vjp)


# --- lax on images with pixels packed into channels ------------------------------------------


def packed_kernels(kernels, pack: int) -> jax.Array:
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


PLAIN_KERNEL_GRAD_MAX_PATCH = 64
"""A packed convolution whose patch (``kh * kw * C_in``) is at most this large -- a first
layer -- takes the unpacked convolution's kernel gradient (:func:`_packed_plain_kernel_grad`)."""


def conv2d_packed(images, kernels, padding: conv.Padding = 0, pack: int = 2) -> jax.Array:
    """A stride-1 convolution with ``pack`` neighbouring pixels of each row packed into
    the channels: ``(N, H, W, C)`` is read as ``(N, H, W / pack, pack * C)`` (the same
    memory, NHWC) and convolved by ``lax`` with :func:`packed_kernels`, a
    ``kh x blocks`` kernel from ``pack * C`` to ``pack * O`` channels whose zeros keep
    each output pixel reading only its own window; the result is read back as
    ``(N, H, W, O)``.

    XLA:CPU's convolution vectorises along the channels, and ten of them fill a vector
    register badly; twice as many, from half as many pixels, do better, though the zeros
    cost ``blocks * pack / kw`` times the multiply-adds (4/3 for 3x3 and ``pack=2``).
    Gradients are ``lax``'s through the reshapes, but for a small patch the kernel
    gradient is that of the unpacked convolution. Any width: an output row that does not
    divide by ``pack`` is computed a little wider and cut.
    """
    images, kernels = jnp.asarray(images), jnp.asarray(kernels)
    if isinstance(pack, bool) or not isinstance(pack, (int, np.integer)) or pack < 1:
        raise ArgumentError(f"pack must be a positive int, got {pack!r}")
    pads = conv.prepare(images, kernels, 1, padding, 1)[2]  # pairs of ints: hashable, for the custom VJP
    kh, kw, cin, _ = kernels.shape
    if kh * kw * cin <= PLAIN_KERNEL_GRAD_MAX_PATCH:
        return _packed_plain_kernel_grad(images, kernels, pads, int(pack))
    return _packed(images, kernels, pads, int(pack))


def _packed(images, kernels, pads, pack: int) -> jax.Array:
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
def _packed_plain_kernel_grad(images, kernels, pads, pack: int) -> jax.Array:
    """:func:`_packed`, whose kernel gradient is that of the unpacked convolution.

    XLA:CPU's kernel gradient reads the output gradient in ``(H, W, N, C)`` order: for the
    packed convolution, the gradient *packed* through a reshape, and where the gradient
    comes out of a fusion (a BatchNorm's backward pass) XLA recomputes it inside that
    slow copy. With few input channels the unpacked kernel gradient is cheap, since its
    other operand, the image transposed to ``(C, H, W, N)``, is small.
    """
    return _packed(images, kernels, pads, pack)


def _packed_plain_kernel_grad_fwd(images, kernels, pads, pack):
    return _packed(images, kernels, pads, pack), (images, kernels)


def _packed_plain_kernel_grad_bwd(pads, pack, residuals, grad_out):
    images, kernels = residuals
    _, images_vjp = jax.vjp(lambda x: _packed(x, kernels, pads, pack), images)
    _, kernels_vjp = jax.vjp(lambda k: conv.conv2d(images, k, 1, pads), kernels)
    return images_vjp(grad_out)[0], kernels_vjp(grad_out)[0]


_packed_plain_kernel_grad.defvjp(_packed_plain_kernel_grad_fwd, _packed_plain_kernel_grad_bwd)
