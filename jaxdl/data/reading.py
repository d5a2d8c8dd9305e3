"""What a Grain worker process runs: one batch of examples read from a random-access source.

This module imports no JAX: a worker process started for :class:`jaxdl.data.HostBatches`
unpickles a :class:`ReadBatch` and imports only what reading needs (NumPy, the
source's own module), so it starts quickly and never touches an accelerator.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class ByteImageSource(Protocol):
    """A random-access source of ``(image, label)`` that can also give each image as
    stored, uint8 HWC in 0-255 (:class:`~jaxdl.data.ImageFolder`,
    :class:`~jaxdl.data.TfdsImageSource`): a loader then moves a quarter of the bytes
    between processes and to the device, and scales them to [0, 1] there, as
    :meth:`~jaxdl.data.ArrayDataset.from_uint8` does."""

    def __len__(self) -> int: ...

    def read_uint8(self, index: int) -> tuple[np.ndarray, int]:
        """Example ``index``: its image as uint8 HWC, and its label."""
        ...


@dataclasses.dataclass(frozen=True, eq=False)
class ReadBatch:
    """The ``n``-th batch of a stream through consecutive epochs of one process's share,
    read from ``source``.

    ``indices`` and ``mask`` are ``(epochs, steps, local_batch_size)``: for each epoch
    of the stream and each step, the examples this process reads, and 0 where a slot pads
    the partial last batch. The stream starts at step ``start`` of its first epoch, so its
    ``n``-th batch is step ``(start + n) % steps`` of epoch ``(start + n) // steps``.
    ``source[i]`` returns ``(x_i, y_i)`` (with ``uint8``, ``source.read_uint8(i)`` of a
    :class:`ByteImageSource`); the batch is ``{"x": stacked x, "y": stacked y, "mask":
    ...}`` in NumPy, ready to be placed on the device. An exception while reading comes
    back as ``{"error": exception}``, for the training process to raise as it is (a
    worker's own report of it would carry only its text).
    """

    source: Any
    indices: np.ndarray
    mask: np.ndarray
    start: int = 0
    uint8: bool = False

    def __call__(self, n: int) -> dict[str, Any]:
        epoch, step = divmod(self.start + n, self.indices.shape[1])
        read = self.source.read_uint8 if self.uint8 else self.source.__getitem__
        try:
            pairs = [read(int(i)) for i in self.indices[epoch, step]]
        except Exception as err:  # noqa: BLE001 -- handed to the training process, raised there as it is
            return {"error": err}
        return {"x": np.stack([np.asarray(x) for x, _ in pairs]), "y": np.asarray([y for _, y in pairs]),
                "mask": self.mask[epoch, step]}
