"""Datasets held whole in memory: the images and labels of one split, and both splits of
a dataset.

What :func:`~jaxdl.data.load_dataset` returns and an :class:`~jaxdl.data.ImageFolder`
loads into: the course's ``train_data`` / ``test_data``, as arrays on the device.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.errors import ArgumentError, ArgumentTypeError, ShapeError
from jaxdl.support.labels import LabelError, check_labels


@dataclasses.dataclass(frozen=True)
class ArrayDataset:
    """A labelled image dataset held whole in memory (on the device, by default).

    ``images``: ``(N, H, W, C)`` float32 in [0, 1]; ``labels``: ``(N,)`` int32, each a
    class index (checked: a label outside ``class_names`` raises :class:`LabelError`).
    ``origin`` says where the examples came from, for error messages.
    Like the course's ``train_data``: ``len(ds)``, ``ds.classes``, ``ds.class_to_idx``.
    """

    images: jax.Array
    labels: jax.Array
    class_names: tuple[str, ...]
    origin: str = "an ArrayDataset"

    def __post_init__(self):
        if self.images.ndim != 4:
            raise ShapeError(f"images must be NHWC, got shape {tuple(self.images.shape)}")
        if self.labels.shape != self.images.shape[:1]:
            raise ShapeError(f"{self.images.shape[0]} images but labels of shape {tuple(self.labels.shape)}")
        if self.class_names:
            check_labels(self.labels, len(self.class_names), self.origin)

    @classmethod
    def from_uint8(cls, images: np.ndarray, labels: np.ndarray, class_names,
                   origin: str = "an ArrayDataset") -> ArrayDataset:
        """Put uint8 images on the device (4x fewer bytes to move) and scale them there:
        the course's ``ToTensor()``. Images of another dtype are refused: a cast would
        wrap floats and wider integers silently."""
        dtype = np.asarray(images).dtype if not hasattr(images, "dtype") else images.dtype
        if dtype != np.uint8:
            raise ArgumentTypeError(f"from_uint8 takes uint8 images (0-255), got dtype {dtype}; for float "
                            "images in [0, 1] construct ArrayDataset(images, labels, class_names)")
        labels = np.asarray(labels)
        if not np.issubdtype(labels.dtype, np.integer):
            raise LabelError(f"labels of {origin} must be integer class indices, got dtype {labels.dtype}")
        images = jnp.asarray(images).astype(jnp.float32) / 255.0
        return cls(images, jnp.asarray(labels, jnp.int32), tuple(class_names), origin)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def classes(self) -> tuple[str, ...]:
        return self.class_names

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.class_names)}

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def take(self, n: int) -> ArrayDataset:
        """The first ``n`` examples (for smoke runs and tests); all of them if there are fewer."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ArgumentError(f"take(n) needs a positive number of examples, got {n!r}")
        return dataclasses.replace(self, images=self.images[:n], labels=self.labels[:n])


@dataclasses.dataclass(frozen=True)
class ImageClassificationData:
    """Both splits of a dataset and where they came from: ``reader`` is
    ``"official files"`` or ``"tensorflow-datasets"`` (the two give the same examples,
    in different orders), ``source`` says where on disk."""

    train: ArrayDataset
    test: ArrayDataset
    name: str
    source: str
    reader: str = "official files"

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.train.class_names
