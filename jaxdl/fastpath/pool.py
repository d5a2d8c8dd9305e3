"""Pools whose windows tile the image (stride equal to the window, the course's
``MaxPool2d(2)``), as a reshape instead of ``lax.reduce_window``.

The image is cut into ``(out, window)`` pairs of axes by a reshape and reduced over the
window axes: the values of ``reduce_window``, but the max-pool's backward pass is an
element-wise mask (:func:`_tile_max`) instead of XLA's ``select_and_scatter``, which
XLA:CPU runs several times slower. :func:`faster_pool` is what
:class:`jaxdl.layers.MaxPool2D` and :class:`~jaxdl.layers.AvgPool2D` ask; why, in
``docs/performance.md``; ``tests/test_fastpath.py`` holds it against ``reduce_window``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from jaxdl.fastpath.policy import active


def faster_pool(window: tuple[int, int], strides: tuple[int, int]) -> Callable | None:
    """``f(x, init, op, window, pads)`` pooling like ``lax.reduce_window`` (with ``op``
    ``lax.max`` or ``lax.add``), where the policy in force takes tiled pools and the
    windows tile the image; else ``None``."""
    _, policy = active()
    return tiled_pool if policy.tiled_pools and tuple(strides) == tuple(window) else None


def tiled_pool(x: jax.Array, init, op, window, pads) -> jax.Array:
    """A pool with stride == window over ``x`` padded by ``pads`` with ``init``; a partial
    last window is dropped, as ``reduce_window`` drops it."""
    (wh, ww), ((pt, pb), (pl, pr)) = window, pads
    x = lax.pad(x, jnp.asarray(init, x.dtype), ((0, 0, 0), (pt, pb, 0), (pl, pr, 0), (0, 0, 0)))
    n, h, w, c = x.shape
    oh, ow = (h - wh) // wh + 1, (w - ww) // ww + 1
    tiles = x[:, : oh * wh, : ow * ww].reshape(n, oh, wh, ow, ww, c)
    if op is lax.max:
        return _tile_max(tiles)
    return jnp.sum(tiles, axis=(2, 4))


@jax.custom_vjp
def _tile_max(tiles: jax.Array) -> jax.Array:
    """``(n, oh, wh, ow, ww, c)`` tiles -> ``(n, oh, ow, c)`` maxima; the gradient goes to the
    first maximum of each window in row-major order, as PyTorch's ``MaxPool2d`` sends it.

    Where nothing is differentiated (evaluation, prediction) this is an element-wise
    maximum over the window's positions, not a reduction: XLA:CPU hands a reduction to
    YNNPACK together with everything that produced it, in a forward pass the whole
    network. Training takes :func:`_tile_max_fwd`, the same values by a reduction, which
    is faster there.
    """
    wh, ww = tiles.shape[2], tiles.shape[4]
    maxima = tiles[:, :, 0, :, 0]
    for i in range(wh):
        for j in range(ww):
            if i or j:
                maxima = jnp.maximum(maxima, tiles[:, :, i, :, j])
    return maxima


def _tile_max_fwd(tiles):
    maxima = jnp.max(tiles, axis=(2, 4))
    return maxima, (tiles, maxima)


def _tile_max_bwd(residuals, grad):
    # Element-wise, window position by window position. JAX's own rule for a max shares
    # the gradient between tied maxima, which needs a count per window: a reduction that
    # XLA:CPU hands to YNNPACK together with the convolution that produced the gradient.
    tiles, maxima = residuals
    wh, ww = tiles.shape[2], tiles.shape[4]
    taken = jnp.zeros(maxima.shape, bool)
    rows = []
    for i in range(wh):
        row = []
        for j in range(ww):
            first = (tiles[:, :, i, :, j] == maxima) & ~taken
            taken = taken | first
            row.append(jnp.where(first, grad, 0))
        rows.append(jnp.stack(row, axis=3))
    return (jnp.stack(rows, axis=2),)


_tile_max.defvjp(_tile_max_fwd, _tile_max_bwd)
