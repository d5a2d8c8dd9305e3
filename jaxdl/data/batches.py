"""Batches: the course's ``DataLoader(dataset, batch_size=32, shuffle=True)``, on the device.

Two loaders with one interface (:class:`jaxdl.data.loader.Loader`: ``len(loader)``
batches an epoch, ``loader.epoch(e)`` iterating over them, ``on_device`` saying where
the data lives):

* :class:`DeviceBatches` for data that fits on the device (MNIST, Fashion-MNIST, the
  synthetic sets, a small image folder): the whole dataset lives there and each batch
  is gathered there by one jitted call, so the host does not sit in the loop;
* :class:`~jaxdl.data.stream.HostBatches` for data that does not (a big image folder,
  a large tfds dataset): a Grain pipeline reads the examples on the host, in worker
  processes, each JAX process its own share, and sends them to the device a few
  batches ahead.

Every batch is a dict ``{"x": inputs, "y": targets, "mask": weights}`` of a fixed
batch size. A partial last batch (``drop_last=False``) is padded with copies of
example 0 and ``mask`` is 0 for the padding, so every step has the same shape (one
compilation) and metrics and losses weighted by ``mask`` count each real example
exactly once.

Shuffling takes a key: epoch ``e`` uses ``jax.random.fold_in(key, e)``, so the same
key gives the same order, a resumed run sees the order an uninterrupted one would,
and both loaders give the same order for the same key. An epoch that is one batch (the
course's full-batch toys) keeps the order 0, 1, 2, ...: shuffling it changes nothing.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.data.loader import Batch, Gather, Transform, augment_key
from jaxdl.errors import ArgumentError, ArgumentTypeError, ShapeError


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


class DeviceBatches:
    """Batches of arrays that live on the device, gathered there: a
    :class:`~jaxdl.data.loader.DeviceLoader`.

    ``DeviceBatches(x, y, batch_size=32, key=key)`` shuffles each epoch;
    ``key=None`` keeps the order. ``transform`` (e.g. an augmentation from
    :mod:`jaxdl.data.augment`) runs on each batch's inputs inside the same jitted
    call, with key ``fold_in(fold_in(transform_key, epoch), step)``. ``sharding``
    places each batch (e.g. split over a ``data`` mesh axis).
    """

    on_device = True

    def __init__(self, x: jax.Array, y: jax.Array, batch_size: int, key: jax.Array | None = None,
                 drop_last: bool = False, transform: Transform | None = None,
                 transform_key: jax.Array | None = None, sharding: Any = None):
        if len(x) != len(y):
            raise ShapeError(f"x has {len(x)} examples but y has {len(y)}")
        batch_size = checked_arguments(batch_size, len(x), drop_last, sharding, transform, transform_key)
        self.arrays = {"x": jnp.asarray(x), "y": jnp.asarray(y)}
        if transform is not None:
            self.arrays["transform_key"] = transform_key
        self.batch_size, self.key, self.drop_last = batch_size, key, drop_last
        self.num_examples = len(x)
        self.gather, self.sharding = Gather(transform), sharding
        self._gather = jax.jit(self.gather, out_shardings=sharding)

    @property
    def x(self) -> jax.Array:
        """The inputs, on the device."""
        return self.arrays["x"]

    @property
    def y(self) -> jax.Array:
        """The targets, on the device."""
        return self.arrays["y"]

    def __len__(self) -> int:
        return num_batches(self.num_examples, self.batch_size, self.drop_last)

    def epoch_indices(self, epoch: int) -> tuple[jax.Array, jax.Array]:
        """This epoch's ``(indices, mask)``, each ``(num_batches, batch_size)``, on the device."""
        return epoch_order(self.num_examples, self.batch_size, self.key, epoch, self.drop_last)

    def epoch(self, epoch: int = 0, start: int = 0) -> Iterator[Batch]:
        """The batches of ``epoch``, from batch ``start`` on (to resume mid-epoch)."""
        indices, mask = self.epoch_indices(epoch)
        for step in range(start, indices.shape[0]):
            yield self._gather(self.arrays, indices, mask, step, epoch)

    def __iter__(self) -> Iterator[Batch]:
        return self.epoch(0)


def make_batches(data, batch_size: int, key: jax.Array | None = None, drop_last: bool = False,
                 **kwargs):
    """The right loader for ``data``: an in-memory dataset (anything with ``images`` and
    ``labels``, or an ``(x, y)`` pair of arrays) goes to the device whole
    (:class:`DeviceBatches`); a random-access source (``source[i] -> (x, y)``) streams
    from the host through Grain (:class:`~jaxdl.data.stream.HostBatches`, which also
    takes ``worker_count`` and ``prefetch``)."""
    if hasattr(data, "images") and hasattr(data, "labels"):
        return DeviceBatches(data.images, data.labels, batch_size, key, drop_last, **kwargs)
    if isinstance(data, tuple) and len(data) == 2:
        return DeviceBatches(data[0], data[1], batch_size, key, drop_last, **kwargs)
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        from jaxdl.data.stream import HostBatches  # Grain, imported when a loader needs it

        return HostBatches(data, batch_size, key, drop_last, **kwargs)
    raise ArgumentTypeError(f"cannot make batches from {type(data).__name__}: expected an ArrayDataset, "
                    "an (x, y) pair of arrays, or a source with __len__ and __getitem__")
