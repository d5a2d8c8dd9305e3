"""What a loader is to the training loop: the interface every loader declares.

The course's ``DataLoader`` is something you iterate over, batch by batch. jaxdl's
training code needs a little more of it, and asks for it by name, never by probing:

* :class:`Loader` -- what ``fit``, the steps and the callbacks use of any loader:
  ``len(loader)`` batches an epoch, ``loader.epoch(e, start)`` iterating over them (from
  batch ``start``, to resume mid-epoch), the ``batch_size``, the ``num_examples`` and
  whether a partial last batch is dropped (``drop_last``), and ``on_device``: whether
  its data lives on the device.
* :class:`DeviceLoader` -- a loader whose data lives on the device (``on_device`` is
  true): its ``arrays``, each epoch's order as arrays (``epoch_indices``) and a
  :class:`Gather` that takes batch ``step`` out of them inside a compiled loop. That is
  what lets an epoch run on the device as one program (a *scanned* epoch).

:class:`jaxdl.data.DeviceBatches` is a :class:`DeviceLoader`; :class:`jaxdl.data.HostBatches`
a :class:`Loader` whose batches are read on the host, one step at a time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp

from jaxdl.errors import ArgumentError, ArgumentTypeError

Batch = dict[str, jax.Array]
Transform = Callable[[jax.Array, jax.Array], jax.Array]
"""``transform(key, images) -> images``: a batched augmentation run on the device."""


@runtime_checkable
class Loader(Protocol):
    """Batches of one dataset, epoch by epoch, each ``{"x", "y", "mask"}`` of ``batch_size``
    examples (a padded partial last batch has ``mask`` 0 for its padding)."""

    batch_size: int
    num_examples: int
    drop_last: bool
    on_device: bool
    """True for a :class:`DeviceLoader`, whose epochs can run on the device as one program."""

    def __len__(self) -> int:
        """Batches in one epoch."""
        ...

    def epoch(self, epoch: int = 0, start: int = 0) -> Iterator[Batch]:
        """The batches of epoch ``epoch``, from batch ``start`` on."""
        ...


def augment_key(transform_key: jax.Array, epoch, step) -> jax.Array:
    """The key that augments batch ``step`` of epoch ``epoch``, on the device or the host:
    a function of the run's ``transform_key`` and the batch's place alone, so a resumed
    run augments what an uninterrupted one would."""
    return jax.random.fold_in(jax.random.fold_in(transform_key, epoch), step)


@dataclasses.dataclass(frozen=True)
class Gather:
    """Batch ``step`` of an epoch, taken out of arrays on the device: a pure function,
    also run inside a compiled loop over the epoch
    (:func:`jaxdl.train.train_steps_scanned`), so a scanned epoch sees exactly the
    batches, and the augmentation, of the per-batch loop.

    ``arrays`` holds ``"x"`` and ``"y"`` and, where there is a ``transform``, its
    ``"transform_key"``: batch ``step`` of epoch ``epoch`` is augmented with key
    ``fold_in(fold_in(transform_key, epoch), step)``. A frozen dataclass, so that it
    can be a static argument of ``jax.jit``: equal gathers share one compiled program.
    """

    transform: Transform | None = None

    def __call__(self, arrays: dict[str, jax.Array], indices: jax.Array, mask: jax.Array,
                 step, epoch) -> Batch:
        row, weights = indices[step], mask[step]
        x = jnp.take(arrays["x"], row, axis=0)
        if self.transform is not None:
            x = self.transform(augment_key(arrays["transform_key"], epoch, step), x)
        return {"x": x, "y": jnp.take(arrays["y"], row, axis=0), "mask": weights}


@runtime_checkable
class DeviceLoader(Loader, Protocol):
    """A :class:`Loader` whose examples live on the device, so that an epoch can be one
    compiled loop: ``gather(arrays, *epoch_indices(e), step, e)`` is batch ``step`` of
    epoch ``e``, placed by ``sharding`` (``None``: where the arrays are)."""

    arrays: dict[str, jax.Array]
    gather: Gather
    sharding: Any

    def epoch_indices(self, epoch: int) -> tuple[jax.Array, jax.Array]:
        """Epoch ``epoch``'s ``(indices, mask)``, each ``(len(self), batch_size)``."""
        ...


def check_on_device(loader: Loader, what: str) -> DeviceLoader:
    """``loader`` if its data lives on the device; otherwise a ``ValueError`` that says
    ``what`` (a scanned epoch, ``scan=True``, ...) needs it."""
    if not loader.on_device:
        raise ArgumentError(f"{what} needs batches that live on the device (DeviceBatches); "
                         f"{type(loader).__name__} reads them on the host, one step at a time")
    return loader


def check_loader(data: Any, name: str) -> Loader:
    """``data`` if it is a :class:`Loader`; otherwise a ``TypeError`` that says what
    ``name`` (an argument of ``fit`` or a step) should have been."""
    if not isinstance(data, Loader):
        raise ArgumentTypeError(f"{name} must be a loader (jaxdl.data.make_batches(dataset, batch_size)), "
                        f"got {type(data).__name__}")
    return data
