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

Shuffling takes a key: epoch ``e``'s order is a function of the key and ``e``
(:mod:`jaxdl.data.order`), the same for both loaders.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp

from jaxdl.data.loader import Batch, Gather, Transform
from jaxdl.data.order import checked_arguments, epoch_order, num_batches
from jaxdl.errors import ArgumentTypeError, ShapeError


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
