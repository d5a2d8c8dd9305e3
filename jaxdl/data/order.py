"""Which examples each batch of an epoch holds: the order both loaders share.

Shuffling takes a key: epoch ``e`` uses ``jax.random.fold_in(key, e)``, so the same
key gives the same order, a resumed run sees the order an uninterrupted one would, and
:class:`~jaxdl.data.DeviceBatches` and :class:`~jaxdl.data.HostBatches` give the same
order for the same key. An epoch that is one batch (the course's full-batch toys) keeps
the order 0, 1, 2, ...: shuffling it changes nothing. A partial last batch is padded
with example 0, masked out.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.data.loader import Transform
from jaxdl.errors import ArgumentError, ArgumentTypeError


def num_batches(num_examples: int, batch_size: int, drop_last: bool) -> int:
    """Batches in one epoch: the partial last batch counts unless ``drop_last``."""
    return num_examples // batch_size if drop_last else math.ceil(num_examples / batch_size)


def epoch_order(num_examples: int, batch_size: int, key: jax.Array | None, epoch: int,
                drop_last: bool) -> tuple[jax.Array, jax.Array]:
    """Indices ``(num_batches, batch_size)`` and mask of the same shape for one epoch, on
    the device: padding slots hold index 0 with mask 0.

    Without a key the order is 0, 1, 2, ... (the course's ``shuffle=False`` test loader).
    """
    return _epoch_order(key, epoch, num_examples=num_examples, batch_size=batch_size, drop_last=drop_last)


@functools.partial(jax.jit, static_argnames=("num_examples", "batch_size", "drop_last"))
def _epoch_order(key, epoch, *, num_examples: int, batch_size: int, drop_last: bool):
    # One compiled call: op by op, the permutation, the padding and a trip through NumPy
    # cost more than a whole full-batch step of the course's toy models.
    batches = num_batches(num_examples, batch_size, drop_last)
    total = batches * batch_size
    if key is None or (batches == 1 and total >= num_examples):
        # A batch that holds every example holds them whatever the order, and a mean over it
        # does not depend on it: skip the permutation (an XLA sort).
        order = jnp.arange(num_examples, dtype=jnp.int32)
    else:
        order = jax.random.permutation(jax.random.fold_in(key, epoch), num_examples).astype(jnp.int32)
    if total <= num_examples:
        indices = order[:total]
    else:  # the partial last batch is padded with example 0
        indices = jnp.concatenate([order, jnp.zeros(total - num_examples, jnp.int32)])
    mask = (jnp.arange(total) < num_examples).astype(jnp.float32)
    return indices.reshape(batches, batch_size), mask.reshape(batches, batch_size)


def checked_arguments(batch_size: int, num_examples: int, drop_last: bool, sharding: Any,
                      transform: Transform | None, transform_key: jax.Array | None) -> int:
    """The batch size to use, after checking the arguments both loaders share: ``batch_size``,
    or ``num_examples`` when one batch holds the whole set and nothing splits it over
    devices -- that batch is then the set itself, as PyTorch's DataLoader yields it, not
    padded and masked."""
    if transform is not None and transform_key is None:
        raise ArgumentError("a transform draws random numbers: pass transform_key")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise ArgumentTypeError(f"batch_size must be an int, got {batch_size!r}")
    if batch_size < 1:
        raise ArgumentError(f"batch_size must be >= 1, got {batch_size}")
    if num_examples == 0:
        raise ArgumentError("cannot batch an empty dataset")
    if drop_last and batch_size > num_examples:
        raise ArgumentError(f"batch_size {batch_size} > {num_examples} examples with drop_last=True "
                         "leaves no batch at all")
    if batch_size > num_examples and sharding is None:
        return num_examples
    return batch_size
