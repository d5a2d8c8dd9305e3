"""Batches read on the host by a Grain pipeline: data that does not fit on the device.

The course's ``DataLoader(ImageFolder(...), batch_size=32, shuffle=True, num_workers=N)``
decodes images in worker processes while the model trains. :class:`HostBatches` does
that with Grain, the JAX ecosystem's data loader:

* **the order is jaxdl's**: epoch ``e``'s order is a function of the key and ``e``
  (:func:`jaxdl.data.order.epoch_order`), the same as :class:`~jaxdl.data.DeviceBatches`
  gives for the same key, whatever the number of workers or processes;
* **each process reads its share**: with several JAX processes, each global batch is
  split into one slice per process, and a process reads only its slice -- its part
  of the global array, placed with the batch's sharding;
* **worker processes** (``worker_count``; 0 reads in the training process) decode,
  resize and stack the examples of a batch, a few batches ahead (Grain's
  ``mp_prefetch``), so decoding never competes with the training loop for the GIL;
* **placed ahead**: ``prefetch`` batches are sent to the device before they are needed;
* **exact resume**: ``epoch(e, start)`` begins at batch ``start`` of epoch ``e``; since
  the order depends on nothing else, a resumed run reads what an uninterrupted one does.

A source is anything with ``__len__`` and ``__getitem__`` returning ``(image, label)``
(:class:`~jaxdl.data.ImageFolder`, :class:`~jaxdl.data.TfdsImageSource`, a list of
pairs); it must pickle, to travel to the workers. An error while reading an example is
raised in the training process with its message (an image error names the file).
"""

from __future__ import annotations

import collections
import math
import os
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.data.order import checked_arguments, epoch_order, num_batches
from jaxdl.data.loader import Batch, Transform, augment_key
from jaxdl.data.reading import ByteImageSource, ReadBatch
from jaxdl.errors import ArgumentError, JaxdlError


class WorkerError(JaxdlError, RuntimeError):
    """A data-loading worker process that ended before it delivered its batch."""


def _cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_worker_count() -> int:
    """Worker processes for a loader: one per core this process may use, less one for the
    training loop, at most 8 (beyond that, a host's input rarely speeds up)."""
    return max(1, min(8, _cores() - 1))


class HostBatches:
    """Batches read on the host from a random-access ``source`` by a Grain pipeline and
    streamed to the device: a :class:`~jaxdl.data.loader.Loader` whose epochs run step
    by step (its data is not on the device).

    ``worker_count`` worker processes read ahead (``None``: :func:`default_worker_count`;
    0 reads in this process), each with ``read_threads`` threads reading batches side by
    side (``None``: 1 in a worker, one per core up to 4 in this process; decoding an image
    releases the GIL); ``prefetch`` batches wait in each worker and on the device. ``sharding``
    places each global batch (required with several JAX processes, each of which then
    reads ``batch_size // jax.process_count()`` examples of every batch). ``transform``
    augments each batch on the device, with key ``fold_in(fold_in(transform_key,
    epoch), step)``, as :class:`~jaxdl.data.DeviceBatches` does.
    """

    on_device = False

    def __init__(self, source, batch_size: int, key: jax.Array | None = None, drop_last: bool = False,
                 transform: Transform | None = None, transform_key: jax.Array | None = None,
                 sharding: Any = None, prefetch: int = 2, worker_count: int | None = None,
                 read_threads: int | None = None):
        processes = jax.process_count()
        if processes > 1 and sharding is None:
            raise ArgumentError(f"with {processes} processes, HostBatches needs the sharding of a global batch "
                                "(jaxdl.parallel.batch_sharding(mesh)): each process reads only its part of it")
        if processes > 1 and isinstance(batch_size, int) and batch_size % processes:
            raise ArgumentError(f"batch_size {batch_size} cannot be split evenly over {processes} processes; "
                                f"use a multiple of {processes}")
        if processes > 1 and len(source) < batch_size:
            raise ArgumentError(f"the dataset has {len(source)} examples, fewer than one global batch of "
                                f"{batch_size} over {processes} processes: use a smaller batch_size")
        batch_size = checked_arguments(batch_size, len(source), drop_last, sharding, transform, transform_key)
        worker_count = default_worker_count() if worker_count is None else worker_count
        read_threads = (1 if worker_count else min(4, _cores())) if read_threads is None else read_threads
        for name, value, least in (("worker_count", worker_count, 0), ("prefetch", prefetch, 0),
                                   ("read_threads", read_threads, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ArgumentError(f"{name} must be a whole number >= {least}, got {value!r}")
        self.source, self.batch_size, self.key, self.drop_last = source, batch_size, key, drop_last
        self.num_examples = len(source)
        self.transform, self.transform_key = transform, transform_key
        self.sharding, self.prefetch = sharding, prefetch
        self.worker_count, self.read_threads = worker_count, read_threads
        self.process_index, self.process_count = jax.process_index(), processes
        self.local_batch_size = batch_size // processes
        self.uint8 = isinstance(source, ByteImageSource)  # moved as bytes, scaled on the device
        self._finish = jax.jit(self._finish_batch) if self.uint8 or transform is not None else None
        self._stream: _Stream | None = None

    def __len__(self) -> int:
        return num_batches(self.num_examples, self.batch_size, self.drop_last)

    def local_epoch_indices(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``(indices, mask)`` this process reads in ``epoch``, each
        ``(len(self), batch_size // process_count)``: its columns of the global order."""
        indices, mask = jax.device_get(
            epoch_order(self.num_examples, self.batch_size, self.key, epoch, self.drop_last))
        first = self.process_index * self.local_batch_size
        columns = slice(first, first + self.local_batch_size)
        return np.asarray(indices[:, columns]), np.asarray(mask[:, columns])

    def epoch(self, epoch: int = 0, start: int = 0) -> Iterator[Batch]:
        """The batches of ``epoch``, from batch ``start`` on (to resume mid-epoch).

        Consecutive epochs are read by one pipeline, whose workers read on into the next
        epoch while this one trains; asking for any other epoch or step starts anew."""
        stream = self._stream
        if stream is None or stream.position != (epoch, start):
            self.close()
            stream = self._stream = _Stream(self, epoch, start)
        finished = False
        try:
            for step in range(start, len(self)):
                batch = next(stream.batches)
                yield self._finish(batch, step, epoch) if self._finish is not None else batch
            finished = True
        finally:
            if finished and stream.last_epoch > epoch:
                stream.position = (epoch + 1, 0)
            else:  # the stream's last epoch, or left part-way: its read-ahead is of no use
                self.close()

    def __iter__(self) -> Iterator[Batch]:
        return self.epoch(0)

    def close(self) -> None:
        """Stop the worker processes (a new epoch starts them again)."""
        stream, self._stream = getattr(self, "_stream", None), None  # None too if __init__ refused its arguments
        if stream is not None:
            stream.close()

    def __del__(self) -> None:
        self.close()

    def _place(self, batch: dict[str, np.ndarray]) -> Batch:
        """This process's part of a global batch, on the device(s): with one process a
        ``device_put``; with several, its slice of the global array."""
        if self.process_count == 1:
            return jax.device_put(batch, self.sharding) if self.sharding is not None else jax.device_put(batch)
        return {name: jax.make_array_from_process_local_data(
                    self.sharding, value, (self.batch_size, *value.shape[1:]))
                for name, value in batch.items()}

    def _finish_batch(self, batch, step, epoch):
        """On the device: uint8 images scaled to [0, 1], then the augmentation."""
        x = batch["x"].astype(jnp.float32) / 255.0 if self.uint8 else batch["x"]
        if self.transform is not None:
            x = self.transform(augment_key(self.transform_key, epoch, step), x)
        return {**batch, "x": x}


STREAM_STEPS = 256
"""A pipeline reads at least this many steps (as many whole epochs as that takes, up to
64) before its workers are started again: short epochs would otherwise spend more time
starting processes than reading."""


class _Stream:
    """One Grain pipeline through consecutive epochs of a :class:`HostBatches`, from step
    ``start`` of ``epoch``; ``batches`` yields them placed on the device, and
    ``position`` is the ``(epoch, step)`` of the next one."""

    def __init__(self, loader: HostBatches, epoch: int, start: int):
        import grain

        _absl_flags_parsed()
        steps = len(loader)
        epochs = max(1, min(64, math.ceil(STREAM_STEPS / steps)))
        orders = [loader.local_epoch_indices(e) for e in range(epoch, epoch + epochs)]
        indices, mask = np.stack([o[0] for o in orders]), np.stack([o[1] for o in orders])
        read = ReadBatch(loader.source, indices, mask, start, loader.uint8)
        options = grain.ReadOptions(num_threads=loader.read_threads,
                                    prefetch_buffer_size=max(loader.prefetch, loader.read_threads, 1))
        pipeline = grain.MapDataset.range(epochs * steps - start).map(read).to_iter_dataset(options)
        if loader.worker_count:
            # Batches come back pickled through a pipe rather than in shared-memory blocks:
            # a block still in flight when the workers stop outlives them until exit (where
            # Python warns of "leaked shared_memory objects"), and uint8 batches are small.
            pipeline = grain.experimental.WithOptionsIterDataset(
                pipeline, grain.experimental.DatasetOptions(min_shm_size=1 << 62))
            pipeline = pipeline.mp_prefetch(grain.MultiprocessingOptions(
                num_workers=loader.worker_count, per_worker_buffer_size=max(loader.prefetch, 1)))
        self._iterator = iter(pipeline)
        self.position, self.last_epoch = (epoch, start), epoch + epochs - 1
        self.batches = _placed_ahead(map(loader._place, _named_errors(self._iterator)), loader.prefetch)

    def close(self) -> None:
        close = getattr(self._iterator, "close", None)  # Grain's multiprocess iterator: stops the workers now
        if close is not None:
            close()


def _named_errors(batches: Iterator) -> Iterator:
    """``batches``, raising what a reader raised as it was raised, and turning Grain's
    report of a worker that died into one that says what to do."""
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except RuntimeError as err:
            if "terminated unexpectedly" not in str(err) and "died" not in str(err):
                raise
            raise WorkerError(
                f"a data-loading worker process ended before its batch was read ({err.args[0].splitlines()[0]}); "
                "its own message is above. A script that starts worker processes must run its training "
                'under `if __name__ == "__main__":` (each worker re-reads the script); or pass worker_count=0 '
                "to read in this process") from None
        if "error" in batch:
            raise batch["error"]
        yield batch


def _placed_ahead(batches: Iterator[Batch], ahead: int) -> Iterator[Batch]:
    """``batches``, each placed (``device_put`` is asynchronous) ``ahead`` batches before
    it is handed out, so the copy to the device overlaps the step before."""
    waiting: collections.deque = collections.deque()
    for batch in batches:
        waiting.append(batch)
        if len(waiting) > ahead:
            yield waiting.popleft()
    while waiting:
        yield waiting.popleft()


def _absl_flags_parsed() -> None:
    """Grain reads absl flags that a script not started by ``absl.app`` has not parsed
    (some Grain releases then fail in their worker profiling); parse none, as absl.app
    would with no flags given."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
